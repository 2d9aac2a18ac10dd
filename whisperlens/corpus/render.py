"""Turning an engine's utterance into a fixed-length clip: speech placed at the planned
onset, words that would run past the clip's end dropped, level set to the planned peak."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import WhisperLensError
from .engines import SAMPLE_RATE, Synthesis
from .phones import Interval
from .sets import ClipSpec

FADE_SECONDS = 0.005  # ramps at the cut, so the end of a dropped word leaves no click
TIME_DECIMALS = 4  # 0.1 ms: finer than any engine's timing, and keeps the manifest short


@dataclass
class RenderedClip:
    audio: np.ndarray  # int16
    words: list[Interval]
    phones: list[Interval]
    meta_extra: dict


def to_int16(audio: np.ndarray, peak: float) -> np.ndarray:
    largest = float(np.max(np.abs(audio))) if audio.size else 0.0
    scaled = audio * (peak / largest) if largest > 0 else audio
    return np.round(np.clip(scaled, -1.0, 1.0) * 32767).astype(np.int16)


def place_speech(spec: ClipSpec, synthesis: Synthesis, clip_seconds: float) -> RenderedClip:
    if not synthesis.words:
        raise WhisperLensError(f"{spec.id}: the engine produced no words for {spec.text!r}")
    lead = synthesis.words[0][1]
    onset = spec.onset
    kept = [word for word in synthesis.words if onset + word[2] - lead <= clip_seconds]
    if not kept:  # the first word alone is longer than the room after the onset
        onset = max(0.0, clip_seconds - (synthesis.words[0][2] - lead))
        kept = [word for word in synthesis.words if onset + word[2] - lead <= clip_seconds + 1e-9]
    if not kept:
        raise WhisperLensError(f"{spec.id}: {synthesis.words[0][0]!r} alone is longer than {clip_seconds} s")
    shift = onset - lead
    cut = kept[-1][2]
    n_clip = int(round(clip_seconds * SAMPLE_RATE))
    source_start = max(0, int(round((lead - onset) * SAMPLE_RATE)))
    source_end = min(len(synthesis.audio), int(round(cut * SAMPLE_RATE)))
    piece = synthesis.audio[source_start:source_end].copy()
    fade = min(len(piece), int(FADE_SECONDS * SAMPLE_RATE))
    if fade:
        piece[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    audio = np.zeros(n_clip, np.float32)
    target_start = int(round((source_start / SAMPLE_RATE + shift) * SAMPLE_RATE))
    piece = piece[: n_clip - target_start]
    audio[target_start: target_start + len(piece)] = piece

    def shifted(intervals, upto: float) -> list[Interval]:
        return [
            (label, round(start + shift, TIME_DECIMALS), round(min(end + shift, clip_seconds), TIME_DECIMALS))
            for label, start, end in intervals if end <= upto + 1e-9
        ]

    meta_extra = {"onset": round(onset, TIME_DECIMALS), "dropped_words": len(synthesis.words) - len(kept)}
    if spec.language not in (None, "en"):
        meta_extra["ipa_phones"] = [list(interval) for interval in shifted(synthesis.native_phones, cut)]
    return RenderedClip(to_int16(audio, spec.peak), shifted(kept, cut), shifted(synthesis.phones, cut), meta_extra)
