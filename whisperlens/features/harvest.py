"""The harvest: stream a corpus through the model once, in batches, and fold every feature's
activations into bounded running statistics (see stats.py), resumable from checkpoints."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..corpus.phones import ARPABET
from ..corpus.selection import corpus_key
from ..errors import WhisperLensError
from ..storage import atomic_path
from ..stream import ActivationBatch, ActivationStream, CorpusLike, is_decoder_hook
from ..stream import resolve_hooks as resolve_hook_patterns
from .bases import BASIS_KINDS, Basis, NeuronBasis, RandomBasis, SAEBasis, basis_name
from .stats import SiteStats, frame_priorities

MODES = ("exact", "short", "short-bf16")
AUTO = "auto"  # short-bf16 where the matmul probe finds bf16 fast on this CPU, short otherwise
MODE_CHOICES = (AUTO, *MODES)
BF16_SPEEDUP_NEEDED = 1.5  # bf16 matmul must beat fp32 by this much: the rest of the pass gains less
DEFAULT_HOOKS = ("encoder.blocks.*.mlp.hook_post", "encoder.blocks.*.hook_resid_post", "decoder.blocks.*.mlp.hook_post")
PHONES = tuple(ARPABET) + ("sil",)  # ARPAbet as the corpus speaks it, then "sil" for frames under no phone
PHONE_INDEX = {phone: i for i, phone in enumerate(PHONES)}


@dataclass
class HarvestConfig:
    model: str = "tiny.en"
    hooks: tuple[str, ...] = DEFAULT_HOOKS  # names or globs; `encoder.blocks.2.mlp.1` aliases work
    layers: tuple[int, ...] | None = None  # keep only these block indices
    bases: tuple[str, ...] = ("neurons", "random")
    sae_paths: dict[str, str] = field(default_factory=dict)  # hook -> SAELens directory
    random_features: int = 384  # directions per hook for the random baseline (at most d)
    mode: str = AUTO  # one of MODE_CHOICES; the Harvester resolves auto with the matmul probe
    negatives: bool = True  # keep the most negative pre-GELU examples (mlp.hook_pre) of encoder MLP neurons
    batch_size: int = 32
    top_k: int = 32
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 25  # batches
    threads: int | None = None
    pipeline: bool = False  # fold each batch on a second thread while the model runs the next (slower on 2 quiet cores)

    def validate(self) -> None:
        if self.mode not in MODE_CHOICES:
            raise WhisperLensError(f"--mode must be one of {', '.join(MODE_CHOICES)}, not {self.mode!r}")
        unknown = [kind for kind in self.bases if kind not in BASIS_KINDS]
        if unknown:
            raise WhisperLensError(f"unknown basis {unknown[0]!r}; choose from {', '.join(BASIS_KINDS)}")
        if self.batch_size < 1 or self.top_k < 1 or self.random_features < 1:
            raise WhisperLensError("batch size, top-k and random feature count must be positive")

    def fingerprint(self, corpus_key: str) -> str:
        """What a checkpoint must match to be resumed: everything that changes the statistics."""
        relevant = {k: v for k, v in asdict(self).items() if k not in ("checkpoint_every", "threads", "device", "pipeline")}
        return hashlib.sha256(json.dumps([relevant, corpus_key], sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MatmulProbe:
    """Measured matmul throughput (GFLOP/s) on an encoder-shaped product, fp32 and bf16."""

    fp32_gflops: float
    bf16_gflops: float

    @property
    def bf16_fast(self) -> bool:
        return self.bf16_gflops >= BF16_SPEEDUP_NEEDED * self.fp32_gflops


@lru_cache(maxsize=1)
def probe_matmul(rows: int = 3200, width: int = 384, repeats: int = 5) -> MatmulProbe:
    """Time the encoder's commonest product (a batch of 32 two-second clips through an MLP's
    first layer) in fp32 and bf16; about a quarter of a second. CPUs without bf16 matrix
    instructions (AVX512-BF16, AMX) run bf16 several times slower than fp32, those with them
    several times faster, so a probe decides better than a list of CPU flags."""
    def gflops(dtype: torch.dtype) -> float:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(rows, width, generator=generator).to(dtype)
        b = torch.randn(width, 4 * width, generator=generator).to(dtype)
        a @ b  # warm-up: oneDNN picks and caches its kernel
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        return 2 * rows * width * 4 * width / best / 1e9

    return MatmulProbe(gflops(torch.float32), gflops(torch.bfloat16))


def choose_mode(mode: str) -> str:
    """The harvest mode to run: `mode` itself, or for auto short-bf16 when bf16 matmul is fast here."""
    if mode != AUTO:
        return mode
    return "short-bf16" if probe_matmul().bf16_fast else "short"


def mode_record(requested: str) -> dict:
    """What the store keeps about the mode: asked for, chosen, and the probe behind an auto choice."""
    record: dict = {"requested": requested, "chosen": choose_mode(requested)}
    if requested == AUTO:
        record["probe"] = asdict(probe_matmul())
    return record


@dataclass
class Site:
    """One set of features: a hook point seen through a basis (and, for encoder MLP neurons,
    the pre-GELU hook whose most negative values it keeps)."""

    name: str
    basis: Basis
    stats: SiteStats
    negative_hook: str | None = None

    @property
    def hook(self) -> str:
        return self.basis.hook

    @property
    def is_decoder(self) -> bool:
        return is_decoder_hook(self.hook)


@dataclass
class HarvestResult:
    sites: dict[str, SiteStats]  # finalized
    site_info: dict[str, dict]  # name -> {kind, hook, n_features}
    clip_ids: list[str]
    frames: dict[str, np.ndarray]  # ragged per-clip phone and token tables (store.FrameTable)
    config: HarvestConfig  # with the mode resolved
    seconds: float
    clips_per_second: float
    mode: dict = field(default_factory=dict)  # mode_record: requested, chosen, probe


def resolve_hooks(model, config: HarvestConfig) -> list[str]:
    names = resolve_hook_patterns(model, config.hooks)
    if config.layers is not None:
        n_layers = model.dims.n_audio_layer
        bad = [layer for layer in config.layers if not 0 <= layer < n_layers]
        if bad:
            raise WhisperLensError(f"unknown layer {bad[0]}: {config.model} has blocks 0-{n_layers - 1}")
        names = [n for n in names if (m := re.search(r"blocks\.(\d+)\.", n)) and int(m.group(1)) in config.layers]
        if not names:
            raise WhisperLensError(f"no hook among {', '.join(config.hooks)} lies in layers {config.layers}")
    return names


def build_sites(model, config: HarvestConfig, hooks: list[str]) -> list[Site]:
    n_phones = len(PHONES)
    sites: list[Site] = []
    for hook in hooks:
        d = _hook_width(model, hook)
        phones = 0 if is_decoder_hook(hook) else n_phones
        for kind in config.bases:
            negative_hook = None
            if kind == "neurons":
                basis: Basis = NeuronBasis(hook, d)
                negative_hook = negative_hook_of(hook) if config.negatives else None
            elif kind == "random":
                basis = RandomBasis(hook, d, min(config.random_features, d), config.seed)
            elif hook in config.sae_paths:
                basis = SAEBasis(config.sae_paths[hook], hook)
            else:
                continue  # an SAE basis exists only where a SAE was trained
            stats = SiteStats.empty(basis.n_features, config.top_k, phones, config.top_k if negative_hook else 0)
            sites.append(Site(basis_name(kind, hook), basis, stats, negative_hook))
    return sites


def negative_hook_of(hook: str) -> str | None:
    """The pre-GELU hook of an encoder MLP's neurons, whose negative side the harvest keeps."""
    if is_decoder_hook(hook) or not hook.endswith("mlp.hook_post"):
        return None
    return hook.removesuffix("hook_post") + "hook_pre"


def _hook_width(model, hook: str) -> int:
    dims = model.dims
    d = dims.n_text_state if is_decoder_hook(hook) else dims.n_audio_state
    return 4 * d if hook.endswith("mlp.hook_post") or hook.endswith("mlp.hook_pre") else d


def model_for_mode(name: str, mode: str, device: str):
    from ..models.loading import load_model

    dtype = torch.bfloat16 if choose_mode(mode) == "short-bf16" else torch.float32
    return load_model(name, device=device, dtype=dtype)


def stream_mode(mode: str) -> str:
    """The activation stream's mode for a harvest mode: short-bf16 is short mode on a bf16 model."""
    return "exact" if mode == "exact" else "short"


class Harvester:
    """Runs the model over a corpus and updates every site's statistics."""

    def __init__(self, corpus: CorpusLike, config: HarvestConfig, model=None):
        config.validate()
        self.mode = mode_record(config.mode)
        config = replace(config, mode=self.mode["chosen"])
        self.corpus, self.config = corpus, config
        self.model = model if model is not None else model_for_mode(config.model, config.mode, config.device)
        self.hooks = resolve_hooks(self.model, config)
        self.sites = build_sites(self.model, config, self.hooks)
        negative_hooks = [site.negative_hook for site in self.sites if site.negative_hook]
        self.stream_hooks = self.hooks + [hook for hook in dict.fromkeys(negative_hooks) if hook not in self.hooks]
        self.clips_done = 0
        self._batches_since_checkpoint = 0
        self._corpus_key: str | None = None
        self.clip_phones: list[np.ndarray] = []  # per clip: phone index of each encoder frame
        self.clip_tokens: list[np.ndarray] = []  # per clip: the teacher-forced tokens (decoder sites)

    def frame_tables(self) -> dict[str, np.ndarray]:
        def ragged(parts: list[np.ndarray], dtype) -> tuple[np.ndarray, np.ndarray]:
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
            return offsets, (np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype))

        phone_offsets, phones = ragged(self.clip_phones, np.int16)
        token_offsets, tokens = ragged(self.clip_tokens, np.int32)
        return {"phone_offsets": phone_offsets, "phones": phones, "token_offsets": token_offsets, "tokens": tokens}

    def _restore_frame_tables(self, data) -> None:
        def split(offsets, values) -> list[np.ndarray]:
            return [values[offsets[i]: offsets[i + 1]] for i in range(len(offsets) - 1)]

        self.clip_phones = split(data["frames/phone_offsets"], data["frames/phones"])
        self.clip_tokens = split(data["frames/token_offsets"], data["frames/tokens"])

    # ---- checkpoints -------------------------------------------------------------------------

    def corpus_key(self) -> str:
        if self._corpus_key is None:
            self._corpus_key = corpus_key(self.corpus)
        return self._corpus_key

    def save_checkpoint(self, path: Path) -> None:
        arrays = {"clips_done": np.array(self.clips_done),
                  "fingerprint": np.array(self.config.fingerprint(self.corpus_key()))}
        for i, site in enumerate(self.sites):
            arrays.update({f"{i}/{key}": value for key, value in site.stats.arrays().items()})
        arrays.update({f"frames/{key}": value for key, value in self.frame_tables().items()})
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    def load_checkpoint(self, path: Path) -> bool:
        if not path.exists():
            return False
        with np.load(path) as data:
            if str(data["fingerprint"]) != self.config.fingerprint(self.corpus_key()):
                return False  # a different corpus or configuration: start afresh
            for i, site in enumerate(self.sites):
                site.stats = SiteStats.from_arrays({k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{i}/")})
            self._restore_frame_tables(data)
            self.clips_done = int(data["clips_done"])
        return True

    # ---- the pass ----------------------------------------------------------------------------

    def stream(self, progress: bool = False) -> ActivationStream:
        """The activations the sites read, from the first clip not yet done."""
        return ActivationStream(self.model, self.corpus, self.stream_hooks, mode=stream_mode(self.config.mode),
                                batch_size=self.config.batch_size, device="cpu",
                                teacher_forcing=any(is_decoder_hook(hook) for hook in self.hooks),
                                start=self.clips_done, progress=progress and "harvest")

    def run(self, checkpoint: Path | None = None, progress: bool = True) -> HarvestResult:
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        total = len(self.corpus)
        start_time, start_clips = time.perf_counter(), self.clips_done
        folding = _BatchFolder(self, checkpoint, total) if self.config.pipeline else None
        try:
            for batch in self.stream(progress):
                if folding is None:
                    self.process_batch(batch)
                    self._folded(len(batch), checkpoint, total)
                else:
                    folding.submit(batch)
        finally:
            if folding is not None:
                folding.close()  # an interrupted pass still folds (and checkpoints) the batch in flight
        seconds = time.perf_counter() - start_time
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        return HarvestResult(
            sites={site.name: site.stats.finalized() for site in self.sites},
            site_info={site.name: {"kind": site.basis.kind, "hook": site.hook, "n_features": site.basis.n_features}
                       for site in self.sites},
            clip_ids=[self.corpus[i].id for i in range(total)], frames=self.frame_tables(),
            config=self.config, seconds=seconds,
            clips_per_second=(total - start_clips) / seconds if seconds > 0 else float("nan"), mode=self.mode,
        )

    def _folded(self, clips: int, checkpoint: Path | None, total: int) -> None:
        """Count a folded batch and checkpoint every `checkpoint_every` batches."""
        self.clips_done += clips
        self._batches_since_checkpoint += 1
        if checkpoint is not None and self._batches_since_checkpoint >= self.config.checkpoint_every and self.clips_done < total:
            self.save_checkpoint(checkpoint)
            self._batches_since_checkpoint = 0

    @torch.inference_mode()
    def process_batch(self, batch: ActivationBatch) -> None:
        """Fold one batch of the stream into every site's statistics and the frame tables."""
        clip_phones = [np.array([_phone_index(phone) for phone in labels], dtype=np.int16) for labels in batch.frame_phones]
        phones = np.concatenate(clip_phones)
        self.clip_phones.extend(clip_phones)
        self.clip_tokens.extend(_clip_token_arrays(batch))
        priorities: dict[bool, np.ndarray] = {}  # the same for every encoder site, and every decoder site
        for site in self.sites:
            rows = batch.rows(site.hook)
            if site.is_decoder not in priorities:
                priorities[site.is_decoder] = frame_priorities(self.config.seed, rows.clips, rows.positions)
            values = site.basis.encode(batch.valid(site.hook)).contiguous().numpy()
            site.stats.update(values, rows.offsets, batch.clip_indices, rows.positions,
                              None if site.is_decoder else phones, priorities[site.is_decoder])
            if site.negative_hook:
                site.stats.update_negative(batch.valid(site.negative_hook).contiguous().numpy(), rows.offsets,
                                           batch.clip_indices, rows.positions)


class _BatchFolder:
    """Folds batches into the statistics on a second thread while the model computes the next
    batch: the statistics kernel (nogil) and the forward pass overlap instead of taking turns.
    One batch is folded at a time, in stream order, so the result is the unpipelined one."""

    def __init__(self, harvester: Harvester, checkpoint: Path | None, total: int):
        from concurrent.futures import ThreadPoolExecutor

        self.harvester, self.checkpoint, self.total = harvester, checkpoint, total
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="harvest-fold")
        self.pending = None  # (future, clips) of the batch being folded

    def settle(self) -> None:
        if self.pending is not None:
            future, clips = self.pending
            self.pending = None
            future.result()
            self.harvester._folded(clips, self.checkpoint, self.total)

    def submit(self, batch: ActivationBatch) -> None:
        self.settle()
        self.pending = (self.pool.submit(self.harvester.process_batch, batch), len(batch))

    def close(self) -> None:
        try:
            self.settle()
        finally:
            self.pool.shutdown(wait=True)


def _phone_index(phone: str | None) -> int:
    return PHONE_INDEX.get(phone, PHONE_INDEX["sil"]) if phone is not None else PHONE_INDEX["sil"]


def _clip_token_arrays(batch: ActivationBatch) -> list[np.ndarray]:
    """Each clip's teacher-forced tokens, or no tokens when the decoder did not run."""
    if batch.tokens is None:
        return [np.zeros(0, np.int32) for _ in range(len(batch))]
    return [batch.tokens[row, :n].numpy().astype(np.int32) for row, n in enumerate(batch.token_lengths)]


def harvest(corpus: CorpusLike, config: HarvestConfig, checkpoint: Path | None = None, progress: bool = True,
            model=None) -> HarvestResult:
    """Stream `corpus` through the model once and return every feature's statistics."""
    if len(corpus) == 0:
        raise WhisperLensError("the corpus has no clips")
    return Harvester(corpus, config, model).run(checkpoint, progress)


@torch.inference_mode()
def collect_activations(corpus: CorpusLike, model, hooks: list[str], mode: str, max_vectors: int, seed: int = 0,
                        batch_size: int = 32, progress: bool = True) -> dict[str, torch.Tensor]:
    """Activation vectors (frames, d) at `hooks` over the corpus's covered frames, for SAE
    training. Beyond `max_vectors` frames, a seeded hash keeps each frame with equal chance."""
    keep_fraction = None
    gathered: dict[str, list[torch.Tensor]] = {hook: [] for hook in hooks}
    stream = ActivationStream(model, corpus, hooks, mode=stream_mode(mode), batch_size=batch_size, device="cpu",
                              progress=progress and "activations")
    for batch in stream:
        if keep_fraction is None:  # estimated from the first batch's clip lengths
            keep_fraction = sample_keep_fraction(batch.lengths, len(corpus), max_vectors)
        for hook in hooks:
            vectors = batch.valid(hook)
            if keep_fraction < 1:
                rows = batch.rows(hook)
                kept = frame_priorities(seed, rows.clips, rows.positions) < np.uint64(int(keep_fraction * 2.0**64))
                vectors = vectors[torch.from_numpy(kept)]
            gathered[hook].append(vectors)
    return {hook: torch.cat(parts)[:max_vectors] for hook, parts in gathered.items()}


def sample_keep_fraction(first_batch_lengths: list[int], n_clips: int, max_vectors: int) -> float:
    """The share of frames `collect_activations` keeps: about `max_vectors` of the frames the
    corpus is expected to have, estimated from its first batch's clip lengths."""
    expected = int(np.mean(first_batch_lengths) * n_clips)
    return min(1.0, max_vectors / max(expected, 1))
