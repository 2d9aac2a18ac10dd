"""Speech engines that return audio together with their own word and phone timings.

Each engine runs in-process (flite and espeak-ng through ctypes on their shared libraries)
or as one subprocess per batch (festival), so a shard of a few hundred clips costs one
start-up at most. All engines hand back 16 kHz float32 audio and ARPAbet phone intervals.
"""

from __future__ import annotations

import ctypes
import importlib
import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import soxr

from ...audio import SAMPLE_RATE
from ...errors import WhisperLensError
from ..phones import Interval, cmu_to_arpabet


@dataclass(frozen=True)
class Request:
    """One utterance to synthesize. `seed` makes engines that draw noise repeatable."""

    text: str
    voice: str
    rate: float = 1.0  # duration stretch: 1.2 means 20% slower speech
    seed: int = 0


@dataclass
class Synthesis:
    audio: np.ndarray  # float32, mono, SAMPLE_RATE
    words: list[Interval]  # one per input word, in order
    phones: list[Interval]  # ARPAbet without stress; silences left out
    native_phones: list[Interval] = field(default_factory=list)  # the engine's own symbols


class Engine(ABC):
    name: str
    debian_package: str
    voices: tuple[str, ...]
    voice_packages: tuple[str, ...] = ()

    @abstractmethod
    def synthesize_batch(self, requests: list[Request]) -> list[Synthesis]:
        """Synthesize requests in order; the result depends only on the list, never on
        what this process synthesized before (engines reset their own state per request
        where they can; callers run each shard in a fresh process for the rest)."""

    def versions(self) -> dict[str, str]:
        """Debian package versions behind this engine, for info.json: the audio depends on them."""
        return {package: debian_package_version(package) for package in (self.debian_package, *self.voice_packages)}

    def check_available(self) -> None:
        """Raise WhisperLensError naming the Debian package when the engine is missing."""
        if not self.is_available():
            raise WhisperLensError(
                f"speech engine {self.name!r} is not installed; install the Debian package "
                f"{self.debian_package} (apt-get install {self.debian_package})"
            )

    def check_voice(self, voice: str) -> None:
        """Raise WhisperLensError when the engine or this voice of it is missing."""
        self.check_available()
        if voice not in self.voices:
            raise WhisperLensError(f"{self.name} has no voice {voice!r}; known: {', '.join(self.voices)}")

    @abstractmethod
    def is_available(self) -> bool: ...


ENGINE_MODULES = {"flite": "flite", "festival": "festival", "espeak": "espeak"}


def get_engine(name: str) -> Engine:
    if name not in ENGINE_MODULES:
        raise WhisperLensError(f"unknown speech engine {name!r}; known: {', '.join(ENGINE_MODULES)}")
    module = importlib.import_module(f"{__name__}.{ENGINE_MODULES[name]}")
    return module.ENGINE


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if rate == SAMPLE_RATE:
        return audio
    return soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def find_shared_library(soname: str) -> str | None:
    """The library's soname if the dynamic loader can open it (Debian's sonames are fixed;
    the -dev packages with the unversioned names are not needed)."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return None
    return soname


def binary_available(name: str) -> bool:
    return shutil.which(name) is not None


def synthesis_from_segments(audio: np.ndarray, segments, text: str, engine: str) -> Synthesis:
    """Word and phone intervals from an engine's (symbol, start, end, word key) segments,
    where the word key identifies the word item a segment belongs to (falsy for silence).

    Words are the engine's own; they must match the text's words one to one, which holds
    for the plain lower-case words the corpus feeds the engines.
    """
    words = text.split()
    word_spans: list[list[float]] = []
    phones, native = [], []
    previous_key = None
    for symbol, start, end, word_key in segments:
        phone = cmu_to_arpabet(symbol)
        if phone is None or end <= start or not word_key:
            continue
        if word_key != previous_key:
            word_spans.append([start, end])
            previous_key = word_key
        word_spans[-1][1] = end
        phones.append((phone, start, end))
        native.append((symbol, start, end))
    if len(word_spans) != len(words):
        raise WhisperLensError(f"{engine} read {len(word_spans)} words in {text!r}, expected {len(words)}")
    word_intervals = [(word, start, end) for word, (start, end) in zip(words, word_spans)]
    return Synthesis(audio, word_intervals, phones, native)


def debian_package_version(package: str) -> str:
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "not installed"
