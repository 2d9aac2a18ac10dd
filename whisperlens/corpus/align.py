"""Forced alignment with pocketsphinx, to cross-check the engines' own timings and to
label real recordings.

pocketsphinx (PyPI) ships a US English acoustic model and CMUdict, so it aligns offline.
It needs silence around the speech (TTS clips may start at 0 s), so each clip is padded,
and it cannot align words missing from its dictionary: those clips get None.
"""

from __future__ import annotations

import statistics
from functools import lru_cache

import numpy as np

from .corpus import Clip, Corpus
from .phones import ARPABET, Interval

PADDING_SECONDS = 0.25
# Low white noise over the whole padded clip: TTS audio has stretches of exact digital
# silence, on which pocketsphinx's features degenerate and its beam loses the path
# (most espeak-ng clips failed to align without it). Fixed seed: same input, same output.
DITHER_AMPLITUDE = 1e-3
FRAMES_PER_SECOND = 100  # pocketsphinx's default frame rate
NON_WORDS = {"<s>", "</s>", "<sil>", "[NOISE]"}


@lru_cache(maxsize=1)
def _decoder():
    from pocketsphinx import Decoder

    return Decoder(lm=None, loglevel="FATAL")


@lru_cache(maxsize=1)
def dictionary_words() -> frozenset[str]:
    from pocketsphinx import get_model_path

    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as handle:
        return frozenset(line.split(maxsplit=1)[0] for line in handle if line.strip())


def pocketsphinx_align(audio: np.ndarray, words: list[str], sample_rate: int = 16_000
                       ) -> tuple[list[Interval], list[Interval]] | None:
    """Word and phone intervals (seconds, ARPAbet) of `words` in `audio`, or None when a
    word is not in the dictionary or the alignment fails."""
    words = [word.lower() for word in words]
    if not words or any(word not in dictionary_words() for word in words):
        return None
    padding = np.zeros(int(PADDING_SECONDS * sample_rate), np.float32)
    padded = np.concatenate([padding, np.asarray(audio, np.float32), padding])
    padded = padded + DITHER_AMPLITUDE * np.random.default_rng(0).standard_normal(len(padded))
    pcm = (np.clip(padded, -1, 1) * 32767).astype("<i2").tobytes()
    decoder = _decoder()
    try:
        decoder.set_align_text(" ".join(words))
        # Two passes, as pocketsphinx 5 wants: the first finds the word path, the second
        # (after set_alignment) its phone and state segmentation.
        for second_pass in (False, True):
            if second_pass:
                decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
        alignment = decoder.get_alignment()
    except RuntimeError:  # no path through the audio; the decoder is left unusable
        _decoder.cache_clear()
        return None
    if alignment is None:
        return None

    def seconds(frame: int) -> float:
        return round(frame / FRAMES_PER_SECOND - PADDING_SECONDS, 4)

    word_intervals, phone_intervals = [], []
    for word in alignment:
        if word.name in NON_WORDS:
            continue
        name = word.name.split("(")[0]  # "the(2)": the dictionary's second pronunciation
        word_intervals.append((name, seconds(word.start), seconds(word.start + word.duration)))
        for phone in word:
            if phone.name in ARPABET:
                phone_intervals.append((phone.name, seconds(phone.start), seconds(phone.start + phone.duration)))
    if [word for word, _, _ in word_intervals] != words:
        return None
    return word_intervals, phone_intervals


def boundary_errors(clip: Clip) -> dict[str, list[float]] | None:
    """Absolute differences (ms) between the clip's word/phone boundaries and pocketsphinx's."""
    result = pocketsphinx_align(clip.audio, [word for word, _, _ in clip.words])
    if result is None:
        return None
    reference_words, reference_phones = result
    word_errors = [
        abs(mine - theirs) * 1000
        for (_, *my_times), (_, *their_times) in zip(clip.words, reference_words)
        for mine, theirs in zip(my_times, their_times)
    ]
    phone_errors = []
    if [phone for phone, _, _ in clip.phones] == [phone for phone, _, _ in reference_phones]:
        phone_errors = [
            abs(mine - theirs) * 1000
            for (_, *my_times), (_, *their_times) in zip(clip.phones, reference_phones)
            for mine, theirs in zip(my_times, their_times)
        ]
    return {"word": word_errors, "phone": phone_errors}


def sample_per_voice(corpus: Corpus, per_voice: int, language: str = "en") -> dict[str, list[Clip]]:
    """The first `per_voice` clips of each engine voice (plan order, so the sample is fixed)."""
    groups: dict[str, list[Clip]] = {}
    for clip in corpus:
        if clip.language == language and clip.words:
            group = groups.setdefault(f"{clip.engine}/{clip.voice}", [])
            if len(group) < per_voice:
                group.append(clip)
    return dict(sorted(groups.items()))


def alignment_report(corpus: Corpus, per_voice: int = 40) -> dict:
    """Median word- and phone-boundary disagreement with pocketsphinx, per engine and voice."""
    english = corpus.select(set="english")
    rows = {}
    pooled: dict[str, dict[str, list[float]]] = {}
    for voice, clips in sample_per_voice(english, per_voice).items():
        errors = {"word": [], "phone": []}
        aligned = 0
        for clip in clips:
            result = boundary_errors(clip)
            if result is None:
                continue
            aligned += 1
            for kind in errors:
                errors[kind].extend(result[kind])
        engine = voice.split("/")[0]
        for kind in errors:
            pooled.setdefault(engine, {"word": [], "phone": []})[kind].extend(errors[kind])
        rows[voice] = _summary(errors, clips=len(clips), aligned=aligned)
    return {
        "per_voice": rows,
        "per_engine": {engine: _summary(errors) for engine, errors in sorted(pooled.items())},
    }


def _summary(errors: dict[str, list[float]], **counts) -> dict:
    def median(values):
        return round(statistics.median(values), 1) if values else None

    return {
        **counts,
        "word_boundaries": len(errors["word"]),
        "median_word_ms": median(errors["word"]),
        "phone_boundaries": len(errors["phone"]),
        "median_phone_ms": median(errors["phone"]),
    }


def format_alignment_report(report: dict) -> str:
    header = f"{'engine / voice':<20} {'clips':>5} {'aligned':>7} {'word bounds':>11} {'median word ms':>14} {'median phone ms':>15}"
    lines = [header, "-" * len(header)]
    for voice, row in report["per_voice"].items():
        lines.append(f"{voice:<20} {row['clips']:>5} {row['aligned']:>7} {row['word_boundaries']:>11} "
                     f"{_number(row['median_word_ms']):>14} {_number(row['median_phone_ms']):>15}")
    lines.append("")
    for engine, row in report["per_engine"].items():
        lines.append(f"{engine:<20} {'':>5} {'':>7} {row['word_boundaries']:>11} "
                     f"{_number(row['median_word_ms']):>14} {_number(row['median_phone_ms']):>15}")
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.1f}"
