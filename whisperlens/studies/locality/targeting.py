"""A word's frames from its token relevance map (relevance.py's Chefer rows): the map summed
over the word's tokens, and the shortest run of frames grown from its peak (one frame at a time,
towards the larger neighbour) that holds half of the map's mass over the clip. The third way to
target a word, beside the corpus's alignment and Whisper's word timestamps. Mass rather than a
share of the peak: Chefer's maps are sharp, and frames above half the peak are often one or two."""

from __future__ import annotations

import numpy as np

from ...audio import encoder_positions
from ...stream import FRAME_SECONDS

MASS_SHARE = 0.5  # the span holds this share of the word's relevance over the clip


def peak_run(values: np.ndarray, share: float = MASS_SHARE) -> tuple[int, int]:
    """(first, stop): the run grown from the maximum, each step taking the larger neighbour, until
    it holds `share` of the values' sum (values are non-negative)."""
    first = int(np.argmax(values))
    stop, wanted, held = first + 1, share * values.sum(), values[first]
    while held < wanted and (first > 0 or stop < len(values)):
        left = values[first - 1] if first > 0 else -1.0
        right = values[stop] if stop < len(values) else -1.0
        if left >= right:
            first, held = first - 1, held + left
        else:
            stop, held = stop + 1, held + right
    return first, stop


def relevance_spans(tokenizer, clip, chefer: np.ndarray) -> list[tuple[float, float]] | None:
    """(start s, end s) per reference word from its tokens' Chefer rows (`chefer`: tokens × 1500), or
    None when the tokenizer's words do not line up with the clip's."""
    tokens = tokenizer.encode(" " + clip.text.strip())
    words, word_tokens = tokenizer.split_to_word_tokens(tokens)
    if [w.strip() for w in words] != [w for w, _, _ in clip.words]:
        return None
    n_frames = encoder_positions(len(clip.audio))
    rows = chefer[:, :n_frames]
    spans, index = [], 0
    for pieces in word_tokens:
        first, stop = peak_run(rows[index: index + len(pieces)].sum(0))
        spans.append((first * FRAME_SECONDS, stop * FRAME_SECONDS))
        index += len(pieces)
    return spans
