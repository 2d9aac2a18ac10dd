"""Position-restricted patches at each encoder layer (A's resid_post at the same layer): only
the word's frames, only the frames outside it, or a window sliding over the word; against two
baselines, another pair's A (random) and B itself (the null)."""

from __future__ import annotations

import numpy as np

from ...audio import N_ENCODER_FRAMES
from ...patching import PatchPairs, Site, component_hook, logit_difference, patch_sites
from .matrix import became_a, outcome_metric, rounded
from .pairs import WordPair, patch_pairs, random_sources

REGIONS = ("word", "outside", "all")
SOURCES = ("A", "random", "B")  # A: the pair's own clean word; random: another pair's A; B: itself (null)


def region_masks(pairs: list[WordPair]) -> dict[str, np.ndarray | None]:
    words = np.stack([p.word_frames for p in pairs])
    return {"word": words, "outside": ~words, "all": None}


def restricted(model, pairs: list[WordPair], seed: int, batch_size: int, progress=None) -> dict:
    """(source, pair, layer, region) arrays of the normalised logit difference (against A's clean
    run and B's) and of the outcome, and the clean and corrupted logit differences."""
    n = model.dims.n_audio_layer
    masks = region_masks(pairs)
    sites = [Site(component_hook("encoder", layer, "resid_post"), positions=masks[region])
             for layer in range(n) for region in REGIONS]
    real = patch_pairs(model, pairs)
    sources = {"A": real, "random": patch_pairs(model, pairs, random_sources(pairs, seed)),
               "B": _with_clean(real, real.corrupt_mel)}
    normalised, outcome, reference = [], [], None
    for name in SOURCES:
        measured = patch_sites(model, sources[name], sites, batch_size=batch_size, progress=progress,
                               metrics={"logit_diff": logit_difference, "outcome": outcome_metric(model, pairs, "en")})
        if name == "A":
            reference = measured
        gap = reference.clean["logit_diff"] - reference.corrupt["logit_diff"]
        with np.errstate(divide="ignore", invalid="ignore"):
            values = (measured.patched["logit_diff"] - reference.corrupt["logit_diff"][:, None]) / gap[:, None]
        normalised.append(values.reshape(len(pairs), n, len(REGIONS)))
        outcome.append(measured.patched["outcome"].reshape(len(pairs), n, len(REGIONS)))
    return {"normalised": np.stack(normalised), "outcome": np.stack(outcome),
            "clean_logit_diff": reference.clean["logit_diff"], "corrupt_logit_diff": reference.corrupt["logit_diff"]}


def _with_clean(pairs: PatchPairs, mel) -> PatchPairs:
    from dataclasses import replace

    return replace(pairs, clean_mel=mel)


def window_offsets(window: int, before: int, after: int) -> list[int]:
    """Window starts, in encoder positions relative to the word's onset."""
    return list(range(-before, after, window))


def windows(model, pairs: list[WordPair], window: int, offsets: list[int], batch_size: int, progress=None) -> dict:
    """(pair, layer, window) normalised logit differences of A's resid_post patched over `window`
    positions starting at each offset from the word's onset."""
    n = model.dims.n_audio_layer
    masks = {}
    for offset in offsets:
        mask = np.zeros((len(pairs), N_ENCODER_FRAMES), dtype=bool)
        for row, pair in enumerate(pairs):
            start = max(0, pair.onset_frame + offset)
            mask[row, start: max(start, pair.onset_frame + offset + window)] = True
        masks[offset] = mask
    sites = [Site(component_hook("encoder", layer, "resid_post"), positions=masks[offset])
             for layer in range(n) for offset in offsets]
    measured = patch_sites(model, patch_pairs(model, pairs), sites, batch_size=batch_size, progress=progress)
    return {"normalised": measured.normalised().reshape(len(pairs), n, len(offsets)),
            "clean_logit_diff": measured.clean["logit_diff"], "corrupt_logit_diff": measured.corrupt["logit_diff"]}


def restricted_summary(arrays: dict, valid: np.ndarray) -> dict:
    """Per source and region, per layer: the mean normalised logit difference (pairs the model
    distinguishes) and the share of transcripts that became A (all pairs)."""
    summary = {}
    for index, source in enumerate(SOURCES):
        normalised = arrays["normalised"][index][valid]
        rates = became_a(arrays["outcome"][index]).mean(0)
        summary[source] = {region: {"normalised": [rounded(v) for v in _nanmean(normalised[:, :, r])],
                                    "became_a": [rounded(v) for v in rates[:, r]]}
                           for r, region in enumerate(REGIONS)}
    return summary


def group_summary(arrays: dict, valid: np.ndarray, groups: list[str]) -> list[dict]:
    """Word-frame patches from A, per group of pairs (contrast type, or where the contrast lies)."""
    rows = []
    word = REGIONS.index("word")
    for group in sorted(set(groups)):
        members = np.array([g == group for g in groups])
        chosen = members & valid
        rows.append({"group": group, "pairs": int(members.sum()), "distinguished": int(chosen.sum()),
                     "normalised": [rounded(v) for v in _nanmean(arrays["normalised"][0][chosen][:, :, word])],
                     "became_a": [rounded(v) for v in became_a(arrays["outcome"][0][members][:, :, word]).mean(0)]})
    return rows


def _nanmean(values: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return np.full(values.shape[1:], np.nan)
    return values.mean(0)

