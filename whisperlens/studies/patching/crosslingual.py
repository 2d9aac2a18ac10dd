"""English word states into Spanish words on the multilingual model: the seed's transfer matrix,
overall and for cognates (teléfono) against non-cognates (gato)."""

from __future__ import annotations

import numpy as np

from .matrix import became_a, layer_matrix, matrix_summary, rounded
from .pairs import WordPair


def transfer(model, pairs: list[WordPair], batch_size: int, progress=None) -> dict:
    """The override matrix of English A into Spanish B. The binary metric decodes with language
    detection, as `transcribe` does (the seed's "did the English word appear"); the logit difference
    reads the first token where the two words differ after Spanish's start-of-transcript tokens."""
    return layer_matrix(model, pairs, None, batch_size, progress)


def transfer_summary(arrays: dict, pairs: list[WordPair]) -> dict:
    summary = {"all": matrix_summary(arrays)}
    binary = became_a(arrays["outcome"])
    summary["all"]["rate"] = rounded(binary.mean())
    for group in ("cognate", "non-cognate"):
        members = np.array([p.group == group for p in pairs])
        if members.any():
            part = matrix_summary({name: values[members] for name, values in arrays.items()})
            part["rate"] = rounded(binary[members].mean())
            summary[group] = part
    return summary
