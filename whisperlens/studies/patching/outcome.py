"""The seed's binary metric: decode the patched run and see which word came out."""

from __future__ import annotations

import re

import numpy as np

from ...greedy import cross_kv, greedy_decode, kv_of_modules

BECAME_A, STAYED_B, OTHER = 1.0, -1.0, 0.0
MAX_TOKENS = 16  # a one-word clip takes 2-5 tokens; the cap ends a loop early


def words_of(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class WordOutcome:
    """A patching metric (it reads the encoder output, not the logits): per pair, 1 if A's word is
    in the greedy transcript of the patched run (the seed's "override"), -1 if B's is and A's not,
    0 otherwise. `language` None lets a multilingual model detect it, as `transcribe` does."""

    needs_logits = False

    def __init__(self, model, words_a: list[str], words_b: list[str], language: str | None = "en"):
        self.model, self.words_a, self.words_b, self.language = model, words_a, words_b, language
        self._last: tuple | None = None  # runs that share an encoder output (whole-stream patches) decode once

    def __call__(self, run) -> np.ndarray:
        if self._last is not None and self._last[0] is run.features:
            return self._last[1]
        kv = kv_of_modules(self.model, run.cross_kv) if run.cross_kv else cross_kv(self.model, run.features)
        texts = [decoded.text for decoded in greedy_decode(self.model, kv, MAX_TOKENS, timestamps=False, language=self.language)]
        outcome = np.array([outcome_of(text, a, b) for text, a, b in
                            zip(texts, self.words_a[run.rows], self.words_b[run.rows], strict=True)])
        self._last = (run.features, outcome)
        return outcome


def outcome_of(text: str, word_a: str, word_b: str) -> float:
    words = words_of(text)
    return BECAME_A if word_a.lower() in words else STAYED_B if word_b.lower() in words else OTHER
