"""The harvest: stream a corpus through the model once, in batches, and fold every feature's
activations into bounded running statistics (see stats.py), resumable from checkpoints."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from ..audio import log_mel_batch
from ..corpus.phones import ARPABET
from ..errors import WhisperLensError
from ..storage import atomic_path
from .bases import BASIS_KINDS, Basis, NeuronBasis, RandomBasis, SAEBasis, basis_name
from .stats import SiteStats, frame_priorities

MODES = ("exact", "short", "short-bf16")
DEFAULT_HOOKS = ("encoder.blocks.*.mlp.hook_post", "encoder.blocks.*.hook_resid_post", "decoder.blocks.*.mlp.hook_post")
PHONES = tuple(ARPABET) + ("sil",)  # ARPAbet as the corpus speaks it, then "sil" for frames under no phone
PHONE_INDEX = {phone: i for i, phone in enumerate(PHONES)}
CHECKPOINT_NAME = "harvest-checkpoint.npz"


class ClipLike(Protocol):
    id: str
    text: str

    @property
    def audio(self) -> np.ndarray: ...

    def frame_phones(self, n_frames: int) -> list[str | None]: ...


class CorpusLike(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> ClipLike: ...


@dataclass
class HarvestConfig:
    model: str = "tiny.en"
    hooks: tuple[str, ...] = DEFAULT_HOOKS  # names or globs; `encoder.blocks.2.mlp.1` aliases work
    layers: tuple[int, ...] | None = None  # keep only these block indices
    bases: tuple[str, ...] = ("neurons", "random")
    sae_paths: dict[str, str] = field(default_factory=dict)  # hook -> SAELens directory
    random_features: int = 384  # directions per hook for the random baseline (at most d)
    mode: str = "short"
    batch_size: int = 32
    top_k: int = 32
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 25  # batches
    threads: int | None = None

    def validate(self) -> None:
        if self.mode not in MODES:
            raise WhisperLensError(f"--mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        unknown = [kind for kind in self.bases if kind not in BASIS_KINDS]
        if unknown:
            raise WhisperLensError(f"unknown basis {unknown[0]!r}; choose from {', '.join(BASIS_KINDS)}")
        if self.batch_size < 1 or self.top_k < 1 or self.random_features < 1:
            raise WhisperLensError("batch size, top-k and random feature count must be positive")

    def fingerprint(self, corpus_key: str) -> str:
        """What a checkpoint must match to be resumed: everything that changes the statistics."""
        relevant = {k: v for k, v in asdict(self).items() if k not in ("checkpoint_every", "threads", "device")}
        return hashlib.sha256(json.dumps([relevant, corpus_key], sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Site:
    """One set of features: a hook point seen through a basis."""

    name: str
    basis: Basis
    stats: SiteStats

    @property
    def hook(self) -> str:
        return self.basis.hook

    @property
    def is_decoder(self) -> bool:
        return self.hook.startswith("decoder.")


@dataclass
class HarvestResult:
    sites: dict[str, SiteStats]  # finalized
    site_info: dict[str, dict]  # name -> {kind, hook, n_features}
    clip_ids: list[str]
    frames: dict[str, np.ndarray]  # ragged per-clip phone and token tables (store.FrameTable)
    config: HarvestConfig
    seconds: float
    clips_per_second: float


def resolve_hooks(model, config: HarvestConfig) -> list[str]:
    from ..hooked import resolve_alias

    names: list[str] = []
    for pattern in config.hooks:
        matched = model.hook_names(resolve_alias(pattern))
        if not matched:
            raise WhisperLensError(f"unknown hook {pattern!r}: no hook point of {config.model} matches it (e.g. encoder.blocks.2.mlp.hook_post)")
        names.extend(name for name in matched if name not in names)
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
        phones = 0 if hook.startswith("decoder.") else n_phones
        for kind in config.bases:
            if kind == "neurons":
                basis: Basis = NeuronBasis(hook, d)
            elif kind == "random":
                basis = RandomBasis(hook, d, min(config.random_features, d), config.seed)
            elif hook in config.sae_paths:
                basis = SAEBasis(config.sae_paths[hook], hook)
            else:
                continue  # an SAE basis exists only where a SAE was trained
            sites.append(Site(basis_name(kind, hook), basis, SiteStats.empty(basis.n_features, config.top_k, phones)))
    return sites


def _hook_width(model, hook: str) -> int:
    dims = model.dims
    d = dims.n_audio_state if hook.startswith("encoder.") else dims.n_text_state
    return 4 * d if hook.endswith("mlp.hook_post") or hook.endswith("mlp.hook_pre") else d


def model_for_mode(name: str, mode: str, device: str):
    from ..models.loading import load_model

    dtype = torch.bfloat16 if mode == "short-bf16" else torch.float32
    return load_model(name, device=device, dtype=dtype)


def clip_tokens(tokenizer, text: str, max_tokens: int) -> list[int]:
    """The teacher-forced transcript: the start-of-transcript sequence, the text, end-of-text."""
    tokens = list(tokenizer.sot_sequence_including_notimestamps) + tokenizer.encode(" " + text.strip()) + [tokenizer.eot]
    return tokens[:max_tokens]


class Harvester:
    """Runs the model over a corpus and updates every site's statistics."""

    def __init__(self, corpus: CorpusLike, config: HarvestConfig, model=None):
        config.validate()
        self.corpus, self.config = corpus, config
        self.model = model if model is not None else model_for_mode(config.model, config.mode, config.device)
        self.hooks = resolve_hooks(self.model, config)
        self.sites = build_sites(self.model, config, self.hooks)
        self.short = config.mode != "exact"
        self.decoder_hooks = [h for h in self.hooks if h.startswith("decoder.")]
        if self.decoder_hooks:
            from ..models.loading import tokenizer_for

            self.tokenizer = tokenizer_for(self.model)
        self.clips_done = 0
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
            ids = "\n".join(self.corpus[i].id for i in range(len(self.corpus)))
            self._corpus_key = hashlib.sha256(ids.encode()).hexdigest()[:16]
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

    def run(self, checkpoint: Path | None = None, progress: bool = True) -> HarvestResult:
        import time

        from tqdm import tqdm

        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        total = len(self.corpus)
        start_time, start_clips = time.perf_counter(), self.clips_done
        batches_since_checkpoint = 0
        with tqdm(total=total, initial=self.clips_done, unit="clip", desc="harvest", disable=not progress) as bar:
            while self.clips_done < total:
                end = min(self.clips_done + self.config.batch_size, total)
                self.process_batch(range(self.clips_done, end))
                bar.update(end - self.clips_done)
                self.clips_done = end
                batches_since_checkpoint += 1
                if checkpoint is not None and batches_since_checkpoint >= self.config.checkpoint_every and end < total:
                    self.save_checkpoint(checkpoint)
                    batches_since_checkpoint = 0
        seconds = time.perf_counter() - start_time
        if checkpoint is not None:
            self.save_checkpoint(checkpoint)
        return HarvestResult(
            sites={site.name: site.stats.finalized() for site in self.sites},
            site_info={site.name: {"kind": site.basis.kind, "hook": site.hook, "n_features": site.basis.n_features}
                       for site in self.sites},
            clip_ids=[self.corpus[i].id for i in range(total)], frames=self.frame_tables(),
            config=self.config, seconds=seconds,
            clips_per_second=(total - start_clips) / seconds if seconds > 0 else float("nan"),
        )

    @torch.inference_mode()
    def process_batch(self, indices: Sequence[int]) -> None:
        clips = [self.corpus[i] for i in indices]
        audio = [np.asarray(clip.audio, dtype=np.float32) for clip in clips]
        from ..audio import N_ENCODER_FRAMES, SAMPLES_PER_ENCODER_FRAME

        lengths = [min(N_ENCODER_FRAMES, max(1, -(-len(a) // SAMPLES_PER_ENCODER_FRAME))) for a in audio]
        mel = log_mel_batch(audio, short=self.short)
        tokens, token_lengths, sequences = None, [], [[] for _ in clips]
        if self.decoder_hooks:
            sequences = [clip_tokens(self.tokenizer, clip.text, self.model.dims.n_text_ctx) for clip in clips]
            token_lengths = [len(s) for s in sequences]
            width = max(token_lengths)
            tokens = torch.full((len(clips), width), self.tokenizer.eot, dtype=torch.long)
            for row, sequence in enumerate(sequences):
                tokens[row, : len(sequence)] = torch.tensor(sequence)
        captured: dict[str, torch.Tensor] = {}
        longest = max(lengths)

        def capture(activation: torch.Tensor, hook) -> None:
            # Keep only positions that some clip covers: in exact mode 1400 of 1500 are padding.
            keep = activation[:, :longest] if hook.name.startswith("encoder.") else activation
            captured[hook.name] = keep.float()  # a no-op in float32; nothing writes to it in place
            if len(captured) == len(self.hooks):
                raise _AllCaptured  # skip the rest, e.g. the decoder's 51k-way logits

        try:
            with self.model.hooks(fwd=[(self.hooks, capture)]):
                self.model.run(mel, tokens, short_audio=self.short)
        except _AllCaptured:
            pass
        clip_indices = np.asarray(indices, dtype=np.int64)
        encoder_rows = _rows(lengths, self.config.seed, clip_indices,
                             [clip.frame_phones(n) for clip, n in zip(clips, lengths)])
        decoder_rows = _rows(token_lengths, self.config.seed, clip_indices, None) if tokens is not None else None
        self.clip_phones.extend(np.split(encoder_rows.phones, encoder_rows.offsets[1:-1]))
        self.clip_tokens.extend(np.asarray(sequence, np.int32) for sequence in sequences)
        for site in self.sites:
            rows = decoder_rows if site.is_decoder else encoder_rows
            n_valid = token_lengths if site.is_decoder else lengths
            activations = _valid_frames(captured[site.hook], n_valid)
            values = site.basis.encode(activations).contiguous().numpy()
            site.stats.update(values, rows.offsets, clip_indices, rows.positions, rows.phones, rows.priorities)


class _AllCaptured(Exception):
    """Raised from a hook to end the forward pass once every wanted activation is in hand."""


@dataclass
class _Rows:
    offsets: np.ndarray
    positions: np.ndarray
    phones: np.ndarray | None
    priorities: np.ndarray


def _rows(lengths: list[int], seed: int, clip_indices: np.ndarray, frame_phones: list[list] | None) -> _Rows:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    positions = np.concatenate([np.arange(n) for n in lengths]).astype(np.int32)
    clips = np.repeat(clip_indices, lengths)
    phones = None
    if frame_phones is not None:
        phones = np.array([PHONE_INDEX.get(p, PHONE_INDEX["sil"]) if p is not None else PHONE_INDEX["sil"]
                           for labels in frame_phones for p in labels], dtype=np.int16)
    return _Rows(offsets, positions, phones, frame_priorities(seed, clips, positions))


def _valid_frames(activation: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """(batch, positions, d) -> (frames, d): each clip's covered positions, padding dropped."""
    if all(n == activation.shape[1] for n in lengths):
        return activation.reshape(-1, activation.shape[-1])
    return torch.cat([activation[i, :n] for i, n in enumerate(lengths)])


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
    from tqdm import tqdm

    from ..audio import N_ENCODER_FRAMES, SAMPLES_PER_ENCODER_FRAME

    short = mode != "exact"
    n_clips = len(corpus)
    keep_fraction = None
    gathered: dict[str, list[torch.Tensor]] = {hook: [] for hook in hooks}
    for start in tqdm(range(0, n_clips, batch_size), desc="activations", unit="batch", disable=not progress):
        indices = np.arange(start, min(start + batch_size, n_clips))
        audio = [np.asarray(corpus[i].audio, dtype=np.float32) for i in indices]
        lengths = [min(N_ENCODER_FRAMES, max(1, -(-len(a) // SAMPLES_PER_ENCODER_FRAME))) for a in audio]
        if keep_fraction is None:  # estimated from the first batch's clip lengths
            expected = int(np.mean(lengths) * n_clips)
            keep_fraction = min(1.0, max_vectors / max(expected, 1))
        captured: dict[str, torch.Tensor] = {}

        def capture(activation: torch.Tensor, hook) -> None:
            captured[hook.name] = activation[:, : max(lengths)].float()
            if len(captured) == len(hooks):
                raise _AllCaptured

        try:
            with model.hooks(fwd=[(hooks, capture)]):
                model.run(log_mel_batch(audio, short=short), short_audio=short)
        except _AllCaptured:
            pass
        rows = _rows(lengths, seed, indices.astype(np.int64), None)
        if keep_fraction >= 1:
            keep = torch.ones(len(rows.priorities), dtype=torch.bool)
        else:
            keep = torch.from_numpy(rows.priorities < np.uint64(int(keep_fraction * 2.0**64)))
        for hook in hooks:
            gathered[hook].append(_valid_frames(captured[hook], lengths)[keep])
    return {hook: torch.cat(parts)[:max_vectors] for hook, parts in gathered.items()}
