"""The harvest and the SAE training sample as shard jobs (whisperlens.distributed): the same
statistics and the same sample as one pass of `Harvester` / `collect_activations`, computed on
shards of whole batches here or on a Ray cluster and merged on the driver."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import encoder_positions
from ..corpus.selection import CorpusSelection, corpus_key
from ..distributed import ExecutorSpec, ModelRequest, run_sharded, shard_ranges
from ..stream import ActivationStream, is_decoder_hook
from .harvest import HarvestConfig, Harvester, HarvestResult, sample_keep_fraction, stream_mode
from .stats import SiteStats, frame_priorities


def _ragged_concat(first: dict[str, np.ndarray], later: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two sets of ragged per-clip tables (NAME_offsets, NAMEs: phones, tokens), the later clips after the first."""
    merged = {}
    for name in first:
        if name.endswith("_offsets"):
            values = name.removesuffix("_offsets") + "s"
            shifted = later[name][1:] + first[name][-1]
            merged[name] = np.concatenate([first[name], shifted]).astype(first[name].dtype)
            merged[values] = np.concatenate([first[values], later[values]]).astype(first[values].dtype)
    return merged


@dataclass
class HarvestPartial:
    """Every site's streaming statistics and the frame tables over consecutive clips."""

    sites: dict[str, SiteStats]
    frames: dict[str, np.ndarray]  # Harvester.frame_tables() of these clips

    def merge(self, later: HarvestPartial) -> HarvestPartial:
        return HarvestPartial({name: stats.merge(later.sites[name]) for name, stats in self.sites.items()},
                              _ragged_concat(self.frames, later.frames))

    def arrays(self) -> dict[str, np.ndarray]:
        arrays = {"site_names": np.array(list(self.sites))}
        for i, stats in enumerate(self.sites.values()):
            arrays.update({f"{i}/{key}": value for key, value in stats.arrays().items()})
        arrays.update({f"frames/{key}": value for key, value in self.frames.items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict) -> HarvestPartial:
        sites = {str(name): SiteStats.from_arrays({k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(f"{i}/")})
                 for i, name in enumerate(arrays["site_names"].tolist())}
        return cls(sites, {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("frames/")})


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class HarvestJob:
    """The harvest of a corpus selection's clips; the corpus must be readable where the workers run."""

    corpus: CorpusSelection
    config: HarvestConfig
    model: ModelRequest
    corpus_key: str  # the selection's content key, computed once on the driver

    def fingerprint(self) -> str:
        return _digest("harvest", self.config.fingerprint(self.corpus_key), self.model.key())

    def open(self, model):
        return model, self.corpus.open()

    def run(self, state, indices) -> HarvestPartial:
        model, corpus = state
        harvester = Harvester(corpus, self.config, model)  # fresh statistics; the bases are cheap to rebuild
        # stream_hooks: the sites' hooks and the pre-GELU hooks whose negative top-k they keep
        stream = ActivationStream(model, corpus, harvester.stream_hooks, mode=stream_mode(self.config.mode),
                                  batch_size=self.config.batch_size, device="cpu", indices=indices,
                                  teacher_forcing=any(is_decoder_hook(hook) for hook in harvester.hooks))
        for batch in stream:
            harvester.process_batch(batch)
        return HarvestPartial({site.name: site.stats for site in harvester.sites}, harvester.frame_tables())

    def partial_from_arrays(self, arrays: dict) -> HarvestPartial:
        return HarvestPartial.from_arrays(arrays)


def model_request(name: str, mode: str, device: str, interventions: list | None = None) -> ModelRequest:
    """The model a harvest mode runs on (short-bf16 loads it in bfloat16, as `model_for_mode`)."""
    return ModelRequest(name, "bfloat16" if mode == "short-bf16" else "float32", device, json.dumps(interventions or []))


def harvest_sharded(corpus, selection: CorpusSelection, config: HarvestConfig, model, executor: ExecutorSpec,
                    checkpoint: Path | None = None, progress: bool = True, request: ModelRequest | None = None) -> HarvestResult:
    """`Harvester(corpus, config, model).run()`'s result, computed in shards of
    `executor.shard_batches` batches by `executor`. `corpus` is `selection` opened here;
    `request` is `model` as a worker loads it (default: the harvest mode's model)."""
    started = time.perf_counter()
    request = request or model_request(config.model, config.mode, config.device)
    job = HarvestJob(selection, config, request, corpus_key(corpus))
    shards = shard_ranges(len(corpus), config.batch_size * executor.shard_batches)
    merged = run_sharded(job, shards, executor, checkpoint_path=checkpoint, progress=progress and "harvest", model=model)
    seconds = time.perf_counter() - started
    sites = Harvester(corpus, config, model).sites  # what each site is (the driver holds the model already)
    return HarvestResult(
        sites={name: stats.finalized() for name, stats in merged.sites.items()},
        site_info={site.name: {"kind": site.basis.kind, "hook": site.hook, "n_features": site.basis.n_features}
                   for site in sites},
        clip_ids=corpus.ids() if hasattr(corpus, "ids") else [corpus[i].id for i in range(len(corpus))],
        frames=merged.frames, config=config, seconds=seconds,
        clips_per_second=len(corpus) / seconds if seconds > 0 else float("nan"),
    )


# ---- the SAE training sample ---------------------------------------------------------------


@dataclass
class VectorSample:
    """Activation vectors per hook, kept by a fixed seeded-hash threshold, in corpus order, at most
    `limit`. Held as the shards' parts: merging the prefix again and again would copy it each time."""

    parts: dict[str, list[np.ndarray]]
    limit: int

    def merge(self, later: VectorSample) -> VectorSample:
        merged = {}
        for hook, parts in self.parts.items():
            room = self.limit - sum(len(part) for part in parts)
            taken = []
            for part in later.parts[hook]:
                if room <= 0:
                    break
                taken.append(part[:room])
                room -= len(taken[-1])
            merged[hook] = parts + taken
        return VectorSample(merged, self.limit)

    def vectors(self) -> dict[str, np.ndarray]:
        return {hook: np.concatenate(parts) for hook, parts in self.parts.items()}

    def arrays(self) -> dict[str, np.ndarray]:
        return {**self.vectors(), "__limit__": np.array(self.limit)}


@dataclass
class SampleJob:
    """`collect_activations` on shards: the keep threshold is fixed before any shard runs."""

    corpus: CorpusSelection
    hooks: tuple[str, ...]
    mode: str
    batch_size: int
    seed: int
    keep_fraction: float
    limit: int
    model: ModelRequest
    corpus_key: str

    def fingerprint(self) -> str:
        return _digest("sae-sample", self.corpus_key, self.hooks, self.mode, self.batch_size, self.seed,
                       self.keep_fraction, self.limit, self.model.key())

    def open(self, model):
        return model, self.corpus.open()

    @torch.inference_mode()
    def run(self, state, indices) -> VectorSample:
        model, corpus = state
        gathered: dict[str, list[torch.Tensor]] = {hook: [] for hook in self.hooks}
        stream = ActivationStream(model, corpus, list(self.hooks), mode=stream_mode(self.mode), batch_size=self.batch_size,
                                  device="cpu", indices=indices)
        for batch in stream:
            for hook in self.hooks:
                vectors = batch.valid(hook)
                if self.keep_fraction < 1:
                    rows = batch.rows(hook)
                    kept = frame_priorities(self.seed, rows.clips, rows.positions) < np.uint64(int(self.keep_fraction * 2.0**64))
                    vectors = vectors[torch.from_numpy(kept)]
                gathered[hook].append(vectors)
        return VectorSample({hook: [torch.cat(parts)[: self.limit].numpy()] for hook, parts in gathered.items()}, self.limit)

    def partial_from_arrays(self, arrays: dict) -> VectorSample:
        return VectorSample({k: [v] for k, v in arrays.items() if k != "__limit__"}, int(arrays["__limit__"]))


def collect_activations_sharded(corpus, selection: CorpusSelection, model, request: ModelRequest, hooks: list[str], mode: str,
                                max_vectors: int, seed: int, batch_size: int, executor: ExecutorSpec,
                                progress: bool = True) -> dict[str, torch.Tensor]:
    """`collect_activations(...)`'s vectors, computed in shards by `executor` (`request`: the
    model as a worker loads it; `model`: the same, loaded here)."""
    first = [encoder_positions(len(corpus[i].audio)) for i in range(min(batch_size, len(corpus)))]
    keep_fraction = sample_keep_fraction(first, len(corpus), max_vectors)
    job = SampleJob(selection, tuple(hooks), mode, batch_size, seed, keep_fraction, max_vectors, request, corpus_key(corpus))
    shards = shard_ranges(len(corpus), batch_size * executor.shard_batches)
    merged = run_sharded(job, shards, executor, progress=progress and "activations", model=model)
    return {hook: torch.from_numpy(vectors) for hook, vectors in merged.vectors().items()}
