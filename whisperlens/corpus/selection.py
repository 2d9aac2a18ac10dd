"""Which clips of a corpus a study runs on, as a small value that can be saved with its
results: the corpus folder, its sets, at most N clips per voice, the first N clips.

    selection = CorpusSelection(sets=("english",), clips=500)
    corpus = selection.open()
    fingerprint = selection.key(corpus)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

import simple_parsing

from ..errors import WhisperLensError
from .corpus import Corpus


class _Clips(Protocol):  # a Corpus, or any list-like of clips with ids
    def __len__(self) -> int: ...

    def __getitem__(self, index: int): ...


@dataclass(frozen=True)
class CorpusSelection:
    """Which clips of a corpus a study uses; `open()` reads them, `key()` fingerprints them."""

    path: str | None = simple_parsing.field(default=None, alias=["--corpus"])  # corpus folder (default: the default corpus)
    sets: tuple[str, ...] = ("english",)  # empty: every clip; a lone name is read as one set
    clips: int | None = None  # keep the first N clips left after the other filters
    per_voice: int | None = None  # keep at most the first N clips of each engine voice

    def __post_init__(self) -> None:
        # Normalised, so that a selection read back from JSON (lists) equals the original.
        if isinstance(self.path, Path):
            object.__setattr__(self, "path", str(self.path))
        sets = (self.sets,) if isinstance(self.sets, str) else tuple(self.sets)
        object.__setattr__(self, "sets", sets)
        if not all(isinstance(name, str) and name for name in sets):
            raise WhisperLensError(f"corpus sets must be set names, got {self.sets!r}")
        for name in ("clips", "per_voice"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise WhisperLensError(f"--{name.replace('_', '-')} must be a positive whole number, got {value!r}")

    def open(self) -> Corpus:
        """The selected clips, in corpus order. Raises WhisperLensError for a missing or
        incomplete corpus, and for a set with no clips in it."""
        corpus = Corpus.open(self.path)
        if self.sets:
            present = {clip.set for clip in corpus}
            missing = [name for name in self.sets if name not in present]
            if missing:
                raise WhisperLensError(f"{corpus.root}: no clips in set {missing[0]!r} "
                                       f"(its sets: {', '.join(sorted(present)) or 'none'})")
            corpus = corpus.select(set=self.sets)
        if self.per_voice is not None:
            corpus = _first_per_voice(corpus, self.per_voice)
        if self.clips is not None:
            corpus = corpus[: self.clips]
        return corpus

    def key(self, corpus: Corpus) -> str:
        """A short hash of the clips `corpus` (what `open` gave) holds and of the corpus build
        they come from: what a fingerprint of results over them should include. It stays the
        same wherever the corpus folder is moved to, and changes with any clip."""
        return corpus_key(corpus)

    def to_dict(self) -> dict:
        return {**asdict(self), "sets": list(self.sets)}

    @classmethod
    def from_dict(cls, data: dict) -> CorpusSelection:
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WhisperLensError(f"unknown corpus selection field {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**data)


def corpus_key(corpus: _Clips) -> str:
    """A short stable hash of a corpus's clip ids (in order) and its build hash, if it has one."""
    ids = [corpus[i].id for i in range(len(corpus))]
    text = json.dumps([getattr(corpus, "hash", None), ids])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def english_speech(corpus) -> list:
    """The English clips with word alignments: those the decoding studies score against their transcripts."""
    return [clip for clip in corpus if clip.language == "en" and clip.words]


def _first_per_voice(corpus: Corpus, per_voice: int) -> Corpus:
    # A voice is an engine's voice, as corpus/align.py's sample_per_voice counts them.
    seen: Counter[tuple[str, str]] = Counter()
    kept = []
    for clip in corpus:
        seen[clip.engine, clip.voice] += 1
        if seen[clip.engine, clip.voice] <= per_voice:
            kept.append(clip)
    return Corpus(kept, corpus.info, corpus.root)


def short_asterisk_prompts(count: int, max_seconds: float, language: str = "en") -> list:
    """`count` of Asterisk's recorded prompts (real speech) of at most `max_seconds`, spread evenly
    over the list, without alignments; WhisperLensError when there are fewer."""
    if count == 0:
        return []
    short = [clip for clip in Corpus.from_asterisk(language, align=False) if clip.duration <= max_seconds]
    if count > len(short):
        raise WhisperLensError(f"--asterisk {count}: there are {len(short)} {language} prompts of at most {max_seconds} s")
    return [short[i * len(short) // count] for i in range(count)]
