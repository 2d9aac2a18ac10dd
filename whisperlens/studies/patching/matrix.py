"""The seed's source-layer x target-layer override matrix: A's encoder output at layer s written
over all of B's positions at layer t, scored with both metrics in one sweep."""

from __future__ import annotations

import numpy as np

from ...patching import Site, component_hook, logit_difference, patch_sites
from .outcome import BECAME_A, WordOutcome
from .pairs import WordPair, patch_pairs


def outcome_metric(model, pairs: list[WordPair], language: str | None) -> WordOutcome:
    return WordOutcome(model, np.array([p.word_a for p in pairs], dtype=object),
                       np.array([p.word_b for p in pairs], dtype=object), language)


def layer_matrix(model, pairs: list[WordPair], language: str | None, batch_size: int, progress=None) -> dict:
    """Per pair: the normalised logit difference and the outcome (1 A, -1 B, 0 other) of every
    (source layer, target layer) patch of the encoder's resid_post, and the clean and corrupted runs'."""
    n = model.dims.n_audio_layer
    resid = [component_hook("encoder", layer, "resid_post") for layer in range(n)]
    sites = [Site(resid[target], source_hook=resid[source]) for source in range(n) for target in range(n)]
    metrics = {"logit_diff": logit_difference, "outcome": outcome_metric(model, pairs, language)}
    measured = patch_sites(model, patch_pairs(model, pairs), sites, metrics=metrics, batch_size=batch_size,
                           progress=progress)
    return {"normalised": measured.normalised().reshape(len(pairs), n, n),
            "outcome": measured.patched["outcome"].reshape(len(pairs), n, n),
            "clean_logit_diff": measured.clean["logit_diff"], "corrupt_logit_diff": measured.corrupt["logit_diff"],
            "clean_outcome": measured.clean["outcome"], "corrupt_outcome": measured.corrupt["outcome"]}


def distinguishes(arrays: dict) -> np.ndarray:
    """Pairs where the model prefers A's token on A and B's on B: where the normalised logit
    difference means something (elsewhere clean - corrupt is small or of the wrong sign)."""
    return (arrays["clean_logit_diff"] > 0) & (arrays["corrupt_logit_diff"] < 0)


def became_a(outcome: np.ndarray) -> np.ndarray:
    return (outcome == BECAME_A).astype(float)


def matrix_summary(arrays: dict) -> dict:
    """Both metrics as (source, target) matrices with their diagonal and off-diagonal means."""
    valid = distinguishes(arrays)
    binary = became_a(arrays["outcome"]).mean(0)
    normalised = arrays["normalised"][valid].mean(0) if valid.any() else np.full(binary.shape, np.nan)
    off = ~np.eye(binary.shape[0], dtype=bool)
    return {"pairs": int(len(valid)), "distinguished": int(valid.sum()),
            "clean_a_rate": rounded(became_a(arrays["clean_outcome"]).mean()),
            "corrupt_a_rate": rounded(became_a(arrays["corrupt_outcome"]).mean()),
            "binary": _rounded(binary), "normalised": _rounded(normalised),
            "binary_diagonal": rounded(np.diag(binary).mean()), "binary_off_diagonal": rounded(binary[off].mean()),
            "normalised_diagonal": rounded(np.diag(normalised).mean()),
            "normalised_off_diagonal": rounded(normalised[off].mean())}


def rounded(value) -> float | None:
    value = float(value)
    return round(value, 4) if np.isfinite(value) else None


def _rounded(matrix: np.ndarray) -> list:
    return [[rounded(v) for v in row] for row in matrix]
