"""Engine timings against pocketsphinx's forced alignment (`sphinx.py`): per-clip boundary
errors and the per-voice report of `whisperlens corpus align`."""

from __future__ import annotations

import statistics

from .corpus import Clip, Corpus
from .sphinx import pocketsphinx_align


def boundary_errors(clip: Clip) -> dict[str, list[float]] | None:
    """Absolute differences (ms) between the clip's word/phone boundaries and pocketsphinx's."""
    result = pocketsphinx_align(clip.audio, [word for word, _, _ in clip.words])
    if result is None:
        return None
    reference_words, reference_phones = result
    word_errors = [
        abs(mine - theirs) * 1000
        for (_, *my_times), (_, *their_times) in zip(clip.words, reference_words, strict=True)  # same words
        for mine, theirs in zip(my_times, their_times, strict=True)
    ]
    phone_errors = []
    if [phone for phone, _, _ in clip.phones] == [phone for phone, _, _ in reference_phones]:
        phone_errors = [
            abs(mine - theirs) * 1000
            for (_, *my_times), (_, *their_times) in zip(clip.phones, reference_phones, strict=True)
            for mine, theirs in zip(my_times, their_times, strict=True)
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
    header = (f"{'engine / voice':<20} {'clips':>5} {'aligned':>7} {'word bounds':>11} "
              f"{'median word ms':>14} {'median phone ms':>15}")
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
