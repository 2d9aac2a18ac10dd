"""Non-speech clips: silence, coloured noise, tones, chords, arpeggios and clicks.

Each is drawn from numpy's PCG64 generator seeded by the clip's seed, so a clip is the same
on every machine with the same numpy.
"""

from __future__ import annotations

import numpy as np

from .engines import SAMPLE_RATE
from .render import RenderedClip, to_int16
from .sets import ClipSpec

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
CHORD_SHAPES = {"major": (0, 4, 7), "minor": (0, 3, 7), "seventh": (0, 4, 7, 10)}


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), shaped in the
    frequency domain rather than by filtering, so every colour is exact over the band."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    frequencies = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    frequencies[0] = frequencies[1]
    spectrum *= frequencies ** (-exponent / 2)
    return np.fft.irfft(spectrum, n)


def _note(rng: np.random.Generator, midi: float, seconds: float, n: int, start: int = 0) -> np.ndarray:
    """A harmonic tone with a soft attack and decay, so it sounds like an instrument."""
    t = np.arange(n) / SAMPLE_RATE
    frequency = 440.0 * 2 ** ((midi - 69) / 12)
    tone = sum(np.sin(2 * np.pi * frequency * k * t + rng.uniform(0, 2 * np.pi)) / k**1.5 for k in range(1, 6))
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-t / max(seconds, 1e-3))
    out = np.zeros(n)
    out[start:] = (tone * envelope)[: n - start]
    return out


def render_nonspeech(spec: ClipSpec, clip_seconds: float) -> RenderedClip:
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    n = int(round(clip_seconds * SAMPLE_RATE))
    kind = spec.meta["kind"]
    details: dict = {}
    if kind == "silence":
        audio = np.zeros(n)
        return RenderedClip(audio.astype(np.int16), [], [], details)
    if kind.endswith("_noise"):
        exponent = {"white_noise": 0.0, "pink_noise": 1.0, "brown_noise": 2.0}[kind]
        audio = _coloured_noise(rng, n, exponent)
    elif kind == "tone":
        frequency = float(np.round(np.exp(rng.uniform(np.log(80), np.log(4000))), 1))
        audio = np.sin(2 * np.pi * frequency * np.arange(n) / SAMPLE_RATE)
        details["frequency_hz"] = frequency
    elif kind in ("chord", "arpeggio"):
        root = int(rng.integers(48, 72))
        shape_name = str(rng.choice(list(CHORD_SHAPES)))
        notes = [root + step for step in CHORD_SHAPES[shape_name]]
        if kind == "chord":
            audio = sum(_note(rng, midi, clip_seconds, n) for midi in notes)
        else:
            step = n // (2 * len(notes))
            audio = sum(_note(rng, midi, 0.3, n, start=i * step) for i, midi in enumerate(notes * 2))
        details.update(root=NOTE_NAMES[root % 12] + str(root // 12 - 1), chord=shape_name)
    elif kind == "clicks":
        rate_hz = float(np.round(rng.uniform(2, 20), 2))
        audio = np.zeros(n)
        click = np.hanning(16)
        positions = np.arange(int(rng.integers(0, SAMPLE_RATE // 10)), n - len(click), int(SAMPLE_RATE / rate_hz))
        for position in positions:
            audio[position: position + len(click)] = click * rng.choice([-1.0, 1.0])
        details["clicks_per_second"] = rate_hz
    else:
        raise ValueError(f"unknown non-speech kind {kind!r}")
    return RenderedClip(to_int16(np.asarray(audio, np.float32), spec.peak), [], [], details)
