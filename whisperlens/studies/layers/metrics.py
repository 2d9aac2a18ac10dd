"""How the transcripts of each configuration went: word and character error rates, empty
outputs, repetition loops and hallucinated (inserted) words, per clip and pooled.

Texts are compared after Whisper's English normaliser (both sides). Rates over clips are
fractions of clips; WER, CER and the hallucination rate are pooled over reference words (or
characters): errors / reference length, so a loop can push WER past 100%. The hallucination
rate is the insertions' share of that: words the output adds beyond what substitutions and
deletions account for. An output is empty when the normaliser leaves no word: punctuation alone
("...") and sound-event tags ("(music)") say nothing was heard. On non-speech any output with a
word is a hallucination.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...transcripts import edit_counts, is_repetition, word_splitter
from .removal import Decodes

SPEECH_COUNTS = ("substitutions", "deletions", "insertions", "reference_words", "char_errors", "reference_chars",
                 "empty", "repetition")
NONSPEECH_COUNTS = ("nonempty", "repetition")


def repetition_flags(decodes: Decodes, words_of) -> np.ndarray:
    """(configurations, clips): the decoder hit the token limit, or its tokens or words loop."""
    return np.array([[is_repetition(tokens, words_of(text), bool(limit))
                      for text, tokens, limit in zip(texts, token_lists, limits)]
                     for texts, token_lists, limits in zip(decodes.texts, decodes.tokens, decodes.hit_limit)],
                    dtype=bool).reshape(decodes.hit_limit.shape)


def score_speech(references: Sequence[str], decodes: Decodes) -> dict[str, np.ndarray]:
    """Per configuration and clip (int32 arrays, configurations x clips): the counts behind every rate."""
    words_of = word_splitter()
    reference_words = [words_of(text) for text in references]
    counts = {name: np.zeros(decodes.hit_limit.shape, dtype=np.int32) for name in SPEECH_COUNTS}
    for row, texts in enumerate(decodes.texts):
        for clip, (reference, text) in enumerate(zip(reference_words, texts)):
            words = words_of(text)
            edits = edit_counts(reference, words)
            characters = edit_counts(" ".join(reference), " ".join(words))
            for name, value in (("substitutions", edits.substitutions), ("deletions", edits.deletions),
                                ("insertions", edits.insertions), ("reference_words", len(reference)),
                                ("char_errors", characters.errors), ("reference_chars", len(" ".join(reference))),
                                ("empty", not words)):
                counts[name][row, clip] = value
    counts["repetition"] = repetition_flags(decodes, words_of).astype(np.int32)
    return counts


def score_nonspeech(decodes: Decodes) -> dict[str, np.ndarray]:
    """Per configuration and clip: whether anything was output (a hallucination here), and loops."""
    words_of = word_splitter()
    nonempty = np.array([[bool(words_of(text)) for text in texts] for texts in decodes.texts], dtype=np.int32)
    return {"nonempty": nonempty.reshape(decodes.hit_limit.shape),
            "repetition": repetition_flags(decodes, words_of).astype(np.int32)}


def speech_rates(counts: dict[str, np.ndarray], row: int) -> dict[str, float]:
    words = max(int(counts["reference_words"][row].sum()), 1)
    errors = sum(int(counts[name][row].sum()) for name in ("substitutions", "deletions", "insertions"))
    return {"wer": round(errors / words, 4),
            "cer": round(int(counts["char_errors"][row].sum()) / max(int(counts["reference_chars"][row].sum()), 1), 4),
            "empty_rate": round(float(counts["empty"][row].mean()), 4),
            "repetition_rate": round(float(counts["repetition"][row].mean()), 4),
            "hallucination_rate": round(int(counts["insertions"][row].sum()) / words, 4)}


def nonspeech_rates(counts: dict[str, np.ndarray], row: int) -> dict[str, float]:
    return {"hallucination_rate": round(float(counts["nonempty"][row].mean()), 4),
            "repetition_rate": round(float(counts["repetition"][row].mean()), 4)}


def failure_kind(counts: dict[str, np.ndarray], row: int, clip: int) -> str | None:
    """Why a clip's transcript under a configuration is a failure worth showing, or None."""
    if counts["repetition"][row, clip]:
        return "repetition"
    if "nonempty" in counts:
        return "hallucination" if counts["nonempty"][row, clip] else None
    if counts["empty"][row, clip]:
        return "empty"
    if counts["insertions"][row, clip]:
        return "hallucination"
    return None

