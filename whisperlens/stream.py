"""One activation stream: a corpus goes through the model in batches, and the activations at
chosen hook points come out with what each frame is (clip, position, phone, word, token).

Every corpus-wide pass (the feature harvest, SAE training vectors, the listening pages'
traces) reads its activations from here, so batching, padding and trimming exist once.

    stream = ActivationStream(model, corpus, ["encoder.blocks.2.mlp.1"], mode="short", progress=True)
    for batch in stream:
        values = batch.valid("encoder.blocks.2.mlp.hook_post")  # (frames, 1536): padding dropped
        rows = batch.rows("encoder.blocks.2.mlp.hook_post")  # the clip and position of each frame
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
import torch

from .audio import (
    SAMPLE_RATE,
    SAMPLES_PER_ENCODER_FRAME,
    encoder_positions,
    log_mel_batch,
)
from .errors import WhisperLensError

MODES = ("short", "exact")  # short: each batch cut to its longest clip; exact: every clip padded to 30 s
FRAME_SECONDS = SAMPLES_PER_ENCODER_FRAME / SAMPLE_RATE  # 20 ms per encoder position

# Hook points whose activations are not laid out (batch, position, ...) over audio positions in
# the encoder or tokens in the decoder: attention scores, the mel and conv stages, the decoder's
# cross-attention keys and values (audio positions) and its batch-less positional embedding.
_NOT_PER_POSITION = re.compile(
    r"hook_scores$|hook_pattern$|^encoder\.hook_(mel|conv1|conv2)$"
    r"|^decoder\.blocks\.\d+\.cross_attn\.hook_[kv]$|^decoder\.hook_pos_embed$"
)


class ClipLike(Protocol):
    id: str
    text: str
    words: list[tuple[str, float, float]]

    @property
    def audio(self) -> np.ndarray: ...

    def frame_phones(self, n_frames: int) -> list[str | None]: ...


class CorpusLike(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> ClipLike: ...


def is_decoder_hook(hook: str) -> bool:
    return hook.startswith("decoder.")


def resolve_hooks(model, patterns: str | Sequence[str]) -> list[str]:
    """The hook names matching `patterns` (names, globs, or aliases such as
    encoder.blocks.2.mlp.1), in order, each once. WhisperLensError for a pattern that
    matches nothing."""
    from .hooked import resolve_alias

    names: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        matched = model.hook_names(resolve_alias(pattern))
        if not matched:
            raise WhisperLensError(f"unknown hook {pattern!r}: no hook point of {getattr(model, 'name', 'the model')} "
                                   "matches it (e.g. encoder.blocks.2.mlp.hook_post)")
        names.extend(name for name in matched if name not in names)
    return names


def clip_tokens(tokenizer, text: str, max_tokens: int) -> list[int]:
    """The teacher-forced transcript: the start-of-transcript sequence, the text, end-of-text."""
    tokens = list(tokenizer.sot_sequence_including_notimestamps) + tokenizer.encode(" " + text.strip()) + [tokenizer.eot]
    return tokens[:max_tokens]


def frame_labels(intervals: Sequence[tuple[str, float, float]], n_frames: int) -> list[str | None]:
    """The label of the interval under the centre of each encoder position (None where no
    interval is), by the rule of `Clip.frame_phones`."""
    ordered = sorted(intervals, key=lambda interval: interval[1])
    if not ordered:
        return [None] * n_frames
    starts = np.array([start for _, start, _ in ordered])
    ends = np.array([end for _, _, end in ordered])
    centres = (np.arange(n_frames) + 0.5) * FRAME_SECONDS
    index = np.searchsorted(starts, centres, side="right") - 1
    inside = (index >= 0) & (centres < ends[np.maximum(index, 0)])
    return [ordered[i][0] if hit else None for i, hit in zip(index.tolist(), inside.tolist(), strict=True)]


@dataclass(frozen=True)
class FrameRows:
    """Where each row of `ActivationBatch.valid(hook)` comes from."""

    offsets: np.ndarray  # (clips + 1,) int64: the row where each clip's frames start
    clips: np.ndarray  # (frames,) int64: the corpus index of each row's clip
    positions: np.ndarray  # (frames,) int32: each row's position within its clip

    @classmethod
    def of(cls, clip_indices: np.ndarray, lengths: Sequence[int]) -> FrameRows:
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        positions = np.concatenate([np.arange(n) for n in lengths]).astype(np.int32)
        return cls(offsets, np.repeat(clip_indices, lengths), positions)


@dataclass(eq=False)
class ActivationBatch:
    """One batch of clips and their activations, each (clips, positions, ...).

    Encoder activations are cut to the batch's longest clip; a shorter clip's positions past
    its own length (`lengths`) are padding. Decoder activations run over the teacher-forced
    tokens; a clip's positions past `token_lengths` are padding.
    """

    activations: dict[str, torch.Tensor]
    clip_indices: np.ndarray  # (clips,) int64: indices into the stream's corpus
    clip_ids: list[str]
    lengths: list[int]  # encoder positions covering each clip (audio.encoder_positions)
    clips: list[ClipLike]
    tokens: torch.Tensor | None = None  # (clips, T) long, padded with end-of-text; teacher forcing only
    token_lengths: list[int] | None = None
    _rows: dict[bool, FrameRows] = field(default_factory=dict, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.clip_ids)

    @cached_property
    def frame_phones(self) -> list[list[str | None]]:
        """Per clip, the phone under each of its encoder positions (None: no phone there)."""
        return [clip.frame_phones(n) for clip, n in zip(self.clips, self.lengths, strict=True)]

    @cached_property
    def frame_words(self) -> list[list[str | None]]:
        """Per clip, the word under each of its encoder positions (None: no word there)."""
        return [frame_labels(clip.words, n) for clip, n in zip(self.clips, self.lengths, strict=True)]

    def lengths_of(self, hook: str) -> list[int]:
        """Each clip's valid positions at `hook`: encoder positions, or tokens for decoder hooks."""
        if not is_decoder_hook(hook):
            return self.lengths
        if self.token_lengths is None:
            raise WhisperLensError(f"{hook} is a decoder hook; its positions are tokens, which need teacher forcing")
        return self.token_lengths

    def valid(self, hook: str) -> torch.Tensor:
        """(clips, positions, ...) -> (frames, ...): each clip's valid positions, one clip after another."""
        activation = self[hook]
        lengths = self.lengths_of(hook)
        if all(n == activation.shape[1] for n in lengths):
            return activation.reshape(-1, *activation.shape[2:])
        return torch.cat([activation[row, :n] for row, n in enumerate(lengths)])

    def rows(self, hook: str) -> FrameRows:
        """The clip and position of each row of `valid(hook)`: the same for all encoder hooks,
        and for all decoder hooks, so computed once for each."""
        decoder = is_decoder_hook(hook)
        if decoder not in self._rows:
            self._rows[decoder] = FrameRows.of(self.clip_indices, self.lengths_of(hook))
        return self._rows[decoder]

    def __getitem__(self, hook: str) -> torch.Tensor:
        from .hooked import resolve_alias

        name = resolve_alias(hook)
        if name not in self.activations:
            raise KeyError(f"{hook} is not among the stream's hooks ({', '.join(self.activations)})")
        return self.activations[name]


class ActivationStream:
    """Iterate to run `corpus` through `model` in batches; each step gives an ActivationBatch.

    hooks: names, globs or aliases of hook points laid out (batch, position, ...).
    interventions: specs for `model.intervene`, in force during each batch's forward pass.
    mode: "short" (a batch's mels cut to its longest clip, the encoder on fewer positions) or
        "exact" (every clip padded to 30 s: the same activations as running each clip alone).
    dtype, device: what the activations are converted to and moved to (default float32,
        left where the model computed them).
    teacher_forcing: also run the decoder on each clip's transcript (needed by decoder hooks).
    start: the position in the clip order to begin at, to resume a pass.
    indices: the corpus clips to stream, in order (default all of them).
    progress: show a progress bar over clips (a string labels it).
    stop_early: end each forward pass once every hook has fired (skipping, e.g., the logits).
    """

    def __init__(self, model, corpus: CorpusLike, hooks: str | Sequence[str], *, interventions: Sequence = (),
                 mode: str = "short", dtype: torch.dtype | None = None, batch_size: int = 32,
                 device: str | torch.device | None = None, teacher_forcing: bool = False, start: int = 0,
                 progress: bool | str = False, stop_early: bool = True, indices: Sequence[int] | None = None):
        if mode not in MODES:
            raise WhisperLensError(f"stream mode must be one of {', '.join(MODES)}, not {mode!r}")
        if batch_size < 1:
            raise WhisperLensError(f"batch size must be positive, got {batch_size}")
        self.model, self.corpus = model, corpus
        self.hooks = resolve_hooks(model, hooks)
        laid_out_otherwise = [name for name in self.hooks if _NOT_PER_POSITION.search(name)]
        if laid_out_otherwise:
            raise WhisperLensError(f"{laid_out_otherwise[0]} is not an activation per position; the stream delivers "
                                   "(batch, position, ...) activations (use model.run_with_cache for the others)")
        decoder_hooks = [name for name in self.hooks if is_decoder_hook(name)]
        if decoder_hooks and not teacher_forcing:
            raise WhisperLensError(f"{decoder_hooks[0]} is a decoder hook: the decoder runs only with teacher_forcing=True")
        self.indices = range(len(corpus)) if indices is None else list(indices)
        if not 0 <= start <= len(self.indices):
            raise WhisperLensError(f"start must lie in 0-{len(self.indices)}, got {start}")
        self.interventions = tuple(interventions)
        self.mode, self.batch_size, self.start = mode, batch_size, start
        self.dtype = dtype if dtype is not None else torch.float32
        self.device, self.progress, self.stop_early = device, progress, stop_early
        self.tokenizer = None
        if teacher_forcing:
            from .models.loading import tokenizer_for

            self.tokenizer = tokenizer_for(model)

    def __len__(self) -> int:
        """The number of batches."""
        return -(-(len(self.indices) - self.start) // self.batch_size)

    def __iter__(self) -> Iterator[ActivationBatch]:
        from tqdm import tqdm

        label = self.progress if isinstance(self.progress, str) else "activations"
        with tqdm(total=len(self.indices), initial=self.start, unit="clip", desc=label, disable=not self.progress) as bar:
            for first in range(self.start, len(self.indices), self.batch_size):
                batch = self.run_batch(self.indices[first: first + self.batch_size])
                yield batch
                bar.update(len(batch))

    def run_batch(self, indices: Sequence[int]) -> ActivationBatch:
        """The batch of the given corpus clips, as iterating would give it."""
        clips = [self.corpus[i] for i in indices]
        audio = [np.asarray(clip.audio, dtype=np.float32) for clip in clips]
        lengths = [encoder_positions(len(samples)) for samples in audio]
        tokens, token_lengths = self._teacher_tokens(clips) if self.tokenizer is not None else (None, None)
        short = self.mode == "short"
        activations = self._forward(log_mel_batch(audio, short=short), tokens, short, longest=max(lengths))
        return ActivationBatch(activations, np.asarray(indices, dtype=np.int64), [clip.id for clip in clips], lengths,
                               clips, tokens, token_lengths)

    def _teacher_tokens(self, clips: list[ClipLike]) -> tuple[torch.Tensor, list[int]]:
        sequences = [clip_tokens(self.tokenizer, clip.text, self.model.dims.n_text_ctx) for clip in clips]
        lengths = [len(sequence) for sequence in sequences]
        tokens = torch.full((len(clips), max(lengths)), self.tokenizer.eot, dtype=torch.long)
        for row, sequence in enumerate(sequences):
            tokens[row, : len(sequence)] = torch.tensor(sequence)
        return tokens, lengths

    def _forward(self, mel: torch.Tensor, tokens: torch.Tensor | None, short: bool, longest: int) -> dict[str, torch.Tensor]:
        captured: dict[str, torch.Tensor] = {}

        def capture(activation: torch.Tensor, hook) -> None:
            # Keep only positions some clip covers: in exact mode 1400 of 1500 are padding.
            kept = activation[:, :longest] if not is_decoder_hook(hook.name) else activation
            captured[hook.name] = kept.to(device=self.device, dtype=self.dtype)  # no copy when nothing changes
            if self.stop_early and len(captured) == len(self.hooks):
                raise _AllCaptured  # skip the rest of the pass, e.g. the decoder's 51k-way logits

        intervening = self.model.intervene(*self.interventions) if self.interventions else contextlib.nullcontext()
        try:
            with torch.inference_mode(), intervening, self.model.hooks(fwd=[(self.hooks, capture)]):
                self.model.run(mel, tokens, short_audio=short)
        except _AllCaptured:
            pass
        return {name: captured[name] for name in self.hooks}


class _AllCaptured(Exception):
    """Raised from a hook to end the forward pass once every wanted activation is in hand."""
