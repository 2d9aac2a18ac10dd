"""How a set of transcripts went against their references: WER (pooled over reference words,
after Whisper's English normaliser on both sides), the share of empty outputs (no word left
after normalising), the share in a repetition loop (`transcripts.is_repetition`: the token
limit reached, or an n-gram said three times back to back), and the mean teacher-forced
log-probability of the reference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...transcripts import edit_counts, hit_token_limit, is_repetition, word_splitter

COUNTS = ("errors", "reference_words", "empty", "repetition")


@dataclass
class Transcripts:
    """One configuration's outputs on a list of clips."""

    texts: list[str]
    tokens: list[list[int]]
    hit_limit: list[bool]
    log_prob: list[float]  # mean teacher-forced log-probability of each clip's reference

    @classmethod
    def empty(cls) -> Transcripts:
        return cls([], [], [], [])

    def extend(self, results, log_prob: np.ndarray, max_tokens: int) -> None:
        self.texts += [result.text for result in results]
        self.tokens += [list(result.tokens) for result in results]
        self.hit_limit += [hit_token_limit(result, max_tokens) for result in results]
        self.log_prob += [float(value) for value in log_prob]


def clip_counts(references: Sequence[str], outputs: Transcripts, words_of=None) -> dict[str, np.ndarray]:
    """(clips,) int32 each: word errors, reference words, empty output, repetition loop."""
    words_of = words_of or word_splitter()
    counts = {name: np.zeros(len(references), dtype=np.int32) for name in COUNTS}
    for clip, (reference, text) in enumerate(zip(references, outputs.texts, strict=True)):
        expected, words = words_of(reference), words_of(text)
        counts["errors"][clip] = edit_counts(expected, words).errors
        counts["reference_words"][clip] = len(expected)
        counts["empty"][clip] = not words
        counts["repetition"][clip] = is_repetition(outputs.tokens[clip], words, outputs.hit_limit[clip])
    return counts


def rates(counts: dict[str, np.ndarray], log_prob: Sequence[float]) -> dict[str, float]:
    return {"wer": round(int(counts["errors"].sum()) / max(int(counts["reference_words"].sum()), 1), 4),
            "empty_rate": round(float(counts["empty"].mean()), 4),
            "repetition_rate": round(float(counts["repetition"].mean()), 4),
            "log_prob": round(float(np.mean(log_prob)), 4)}
