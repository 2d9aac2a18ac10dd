"""What the dashboard computes on a clip, as plain functions of a model: the transcript with
word times, the top features per encoder frame, a transcript under interventions, the word
removal of a span, and the attention each head pays around a frame. The server calls them one
at a time (workbench.py); they hold no state of their own (the encoder outputs they reuse are
passed in)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..audio import SAMPLE_RATE, encoder_positions, log_mel
from ..errors import WhisperLensError
from ..interventions import Intervention, Patch, Steer
from ..transcripts import word_timings
from .encoder_reuse import OUTPUT_HOOK, reusing_encoder

FRAME_SECONDS = 0.02
# Tokens per second of audio a transcript may hold: speech runs at 3-4 tokens a second, so an
# intervention that sends the decoder into a loop stops after a few seconds' worth, not at 224.
TOKENS_PER_SECOND, MIN_TOKENS = 5, 16
# Greedy decoding, one attempt: temperature fallback would sample, and the same request would
# not always give the same transcript.
DECODING = {"temperature": 0.0, "fp16": False, "condition_on_previous_text": False}


def transcript(model, audio: np.ndarray, language: str | None, interventions: list[Intervention] = (),
               words: bool = True, encoder_outputs=None) -> dict:
    """{"text", "words": [{"word", "start", "end"}]} from openai's transcribe on the hooked model,
    the encoder run once per window (encoder_reuse.py): `encoder_outputs` keeps its clean outputs
    across calls."""
    max_tokens = min(224, MIN_TOKENS + int(TOKENS_PER_SECOND * duration_seconds(audio)))
    with reusing_encoder(model, encoder_outputs, interventions):
        result = model.transcribe(audio, interventions=list(interventions), language=language, word_timestamps=words,
                                  verbose=None, sample_len=max_tokens, **DECODING)
    entry = {"text": result["text"].strip()}
    if words:
        entry["words"] = word_timings(result)
    return entry


def encoder_activations(model, audio: np.ndarray, hooks, short: bool) -> dict[str, torch.Tensor]:
    """Each matching hook's activation on the clip, batch axis dropped: {hook: tensor}. In short
    mode the encoder sees only the clip's own positions; in exact mode, the clip padded to 30 s."""
    _, cache = model.run_with_cache(log_mel(audio, model.dims.n_mels, short=short), names_filter=hooks, short_audio=short)
    return {name: cache[name][0] for name in cache.keys()}


def frame_features(model, audio: np.ndarray, hook: str, basis, short: bool, top: int = 3) -> dict:
    """The `top` features of `basis` with the largest value at each encoder frame of the clip:
    {"features": [[index, ...] per frame], "values": [[value, ...] per frame]}."""
    n = encoder_positions(len(audio))
    values = basis.encode(encoder_activations(model, audio, hook, short)[hook][:n])  # (frames, n_features)
    best = torch.topk(values, min(top, values.shape[1]), dim=1)
    return {"features": best.indices.tolist(), "values": [[round(v, 4) for v in row] for row in best.values.tolist()]}


def attention_around(model, audio: np.ndarray, frame: int, short: bool) -> np.ndarray:
    """(layers, heads, positions): the attention pattern of query `frame` over the clip's frames."""
    n = encoder_positions(len(audio))
    if not 0 <= frame < n:
        raise WhisperLensError(f"frame: this clip has frames 0-{n - 1}, not {frame}")
    activations = encoder_activations(model, audio, "encoder.blocks.*.attn.hook_pattern", short)
    layers = sorted(activations, key=lambda name: int(name.split(".")[2]))
    return np.stack([activations[name][:, frame, :n].float().numpy() for name in layers])


def span_frames(audio: np.ndarray, start: float, end: float) -> slice:
    """The encoder frames (20 ms each) a span of the clip touches, from `start` to `end` seconds."""
    n = encoder_positions(len(audio))
    # the tolerance keeps a time on a frame's edge (2.44 s / 0.02 s = 121.99999...) on that edge
    first, stop = math.floor(start / FRAME_SECONDS + 1e-6), min(n, math.ceil(end / FRAME_SECONDS - 1e-6))
    if not start < end or first >= n:
        raise WhisperLensError(f"span: give start < end within the clip's {duration_seconds(audio):.2f} s, "
                               f"not {start:g}-{end:g}")
    return slice(first, stop)


def word_removal(padding: torch.Tensor, frames: slice) -> Patch:
    """The seeds' word removal: the encoder output at `frames` replaced by the same frames of the
    output for padding-only audio (`transcripts.padding_features`)."""
    return Patch(hook=OUTPUT_HOOK, source={OUTPUT_HOOK: padding}, positions=frames)


def steering(hook: str, direction: torch.Tensor, scale: float) -> Steer:
    """Adding `scale` times a feature's direction at its hook, at every position: FREUD's "manipulate"."""
    return Steer(hook=hook, vector=direction.float(), scale=float(scale))


def duration_seconds(audio: np.ndarray) -> float:
    return len(audio) / SAMPLE_RATE
