"""The study's word pairs: the corpus's minimal pairs (A = member 0, B = member 1, one voice) and
English/Spanish translation pairs (A = English, B = Spanish), with A's audio shifted so that its
word starts where B's does, so that "the word's frames" are the same encoder positions in both."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...audio import N_ENCODER_FRAMES, SAMPLE_RATE
from ...errors import WhisperLensError
from ...patching import PatchPairs
from ...stream import FRAME_SECONDS

VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


@dataclass
class WordPair:
    pair_id: int
    word_a: str  # the clean (source) word
    word_b: str  # the corrupted (target) word
    audio_a: np.ndarray  # A, shifted to start its word where B's starts
    audio_b: np.ndarray
    onset_frame: int  # the encoder position where both words start
    word_frames: np.ndarray  # (1500,) bool: positions under A's word or B's
    group: str  # minimal pairs: "vowel" or "consonant" contrast; translation pairs: "cognate" or "non-cognate"
    position: str = ""  # minimal pairs: where the contrast lies (initial, medial, final)
    language_b: str = "en"


def transcript_form(word: str) -> str:
    """How Whisper writes a one-word clip: capitalised, as a sentence start."""
    return word[:1].upper() + word[1:]


def shifted(audio: np.ndarray, onset: float, to_onset: float, length: int) -> np.ndarray:
    """`audio` moved in time so that what started at `onset` s starts at `to_onset` s, cut or
    padded with silence to `length` samples."""
    shift = int(round((to_onset - onset) * SAMPLE_RATE))
    moved = np.concatenate([np.zeros(shift, np.float32), audio]) if shift >= 0 else audio[-shift:]
    out = np.zeros(length, np.float32)
    out[: min(length, len(moved))] = moved[:length]
    return out


def frames_between(start: float, end: float) -> np.ndarray:
    mask = np.zeros(N_ENCODER_FRAMES, dtype=bool)
    mask[int(start / FRAME_SECONDS): int(np.ceil(end / FRAME_SECONDS))] = True
    return mask


def make_pair(pair_id: int, clip_a, clip_b, group: str, position: str = "") -> WordPair:
    (word_a, start_a, end_a), (word_b, start_b, end_b) = clip_a.words[0], clip_b.words[0]
    length = max(len(clip_b.audio), int(np.ceil((start_b + end_a - start_a) * SAMPLE_RATE)))
    audio_a = shifted(np.asarray(clip_a.audio, np.float32), start_a, start_b, length)
    audio_b = np.zeros(length, np.float32)
    audio_b[: len(clip_b.audio)] = clip_b.audio
    frames = frames_between(start_b, end_b) | frames_between(start_b, start_b + end_a - start_a)
    return WordPair(pair_id, word_a, word_b, audio_a, audio_b, int(start_b / FRAME_SECONDS), frames, group, position,
                    clip_b.language)


def _members(corpus, set_name: str) -> dict[int, dict[int, object]]:
    members: dict[int, dict[int, object]] = {}
    for clip in corpus:
        if clip.set == set_name and clip.words:
            members.setdefault(clip.meta["pair_id"], {})[clip.meta["member"]] = clip
    return {pair_id: m for pair_id, m in sorted(members.items()) if len(m) == 2}


def spread(items: list, count: int) -> list:
    """At most `count` items, spread evenly over the list (the corpus orders pairs by contrast)."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def minimal_pairs(corpus, count: int) -> tuple[list[WordPair], int]:
    """(at most `count` minimal pairs spread over the set, how many the corpus has)."""
    found = _members(corpus, "minimal_pairs")
    if not found:
        raise WhisperLensError("the corpus selection has no complete minimal pair (sets: minimal_pairs)")
    pairs = []
    for pair_id, members in found.items():
        a, b = members[0], members[1]
        phones = a.meta["contrast"].split("-")
        group = "vowel" if all(p in VOWELS for p in phones) else "consonant" if not any(p in VOWELS for p in phones) \
            else "vowel-consonant"
        pairs.append(make_pair(pair_id, a, b, group, a.meta["position"]))
    return spread(pairs, count), len(pairs)


def translation_pairs(corpus, count: int) -> tuple[list[WordPair], list[str]]:
    """(at most `count` English/Spanish pairs, half cognates and half not, the pairs left out because both words are spelt
    alike: 'hospital'/'hospital' shares every token, so neither metric can tell them apart)."""
    pairs, alike = [], []
    for pair_id, members in _members(corpus, "en_es_pairs").items():
        english, spanish = members[0], members[1]
        if english.text.lower() == spanish.text.lower():
            alike.append(english.text)
            continue
        pairs.append(make_pair(pair_id, english, spanish, "cognate" if english.meta["cognate"] else "non-cognate"))
    cognates = [p for p in pairs if p.group == "cognate"]
    others = [p for p in pairs if p.group != "cognate"]
    half = min(len(cognates), count // 2)  # as many of each as there are, cognates first when odd
    chosen = spread(cognates, max(half, count - len(others))) + spread(others, count - max(half, count - len(others)))
    return sorted(chosen, key=lambda p: p.pair_id), alike


def patch_pairs(model, pairs: list[WordPair], sources: list[np.ndarray] | None = None) -> PatchPairs:
    """The API's pairs: A (or the given source audio) clean, B corrupted, scored at A's and B's first
    distinguishing token, with B's language token on a multilingual model."""
    return PatchPairs.from_audio(model, sources if sources is not None else [p.audio_a for p in pairs],
                                 [p.audio_b for p in pairs], [transcript_form(p.word_a) for p in pairs],
                                 [transcript_form(p.word_b) for p in pairs], languages=[p.language_b for p in pairs])


def random_sources(pairs: list[WordPair], seed: int) -> list[np.ndarray]:
    """For each pair, another pair's A, shifted to this pair's onset: the random-pair baseline."""
    if len(pairs) < 2:
        raise WhisperLensError("the random-pair baseline needs at least 2 pairs")
    offset = int(np.random.default_rng(seed).integers(1, len(pairs)))
    sources = []
    for index, pair in enumerate(pairs):
        other = pairs[(index + offset) % len(pairs)]
        onset = other.onset_frame * FRAME_SECONDS
        sources.append(shifted(other.audio_a, onset, pair.onset_frame * FRAME_SECONDS, len(pair.audio_b)))
    return sources
