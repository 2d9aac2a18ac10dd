"""One feature as the feature page shows it, read from the store: labels, top examples, the
activation-range bands with a sample each, the histogram's numbers and the phone table."""

from __future__ import annotations

import numpy as np

from ..features.harvest import PHONES
from ..features.html import EXAMPLES_SHOWN
from ..features.stats import band_lower_edges, bin_lower_edges
from ..features.store import FeatureStore


def feature_view(store: FeatureStore, feature_id: str) -> dict:
    site, f = store.parse_feature(feature_id)
    info, stats, label = store.site_info(site), store.stats(site), store.labels(site)[f]
    clip_ids, frames = store.clip_ids, store.frames
    decoder = info["hook"].startswith("decoder.")
    feature_id = f"{site}:{f}"

    def example(clip: int, position: int, value: float) -> dict:
        phone = None if decoder else PHONES[frames.phone_at(np.array([clip]), np.array([position]))[0]]
        time = None if decoder else round(position * 0.02, 2)  # a decoder position is a token, not a frame
        return {"clip": clip, "clip_id": clip_ids[clip], "position": position, "time": time, "value": float(value),
                "phone": phone}

    top = [example(int(stats.top_clips[f, r]), int(stats.top_positions[f, r]), stats.top_values[f, r]) | {"rank": r}
           for r in range(min(EXAMPLES_SHOWN, stats.k)) if stats.top_clips[f, r] >= 0]
    edges = band_lower_edges()
    bands = []
    for band in range(stats.sample_clips.shape[1] - 1, 1, -1):
        if stats.sample_clips[f, band, 0] >= 0:
            sample = example(int(stats.sample_clips[f, band, 0]), int(stats.sample_positions[f, band, 0]),
                             stats.sample_values[f, band, 0])
            described = next((b for b in label.get("bands", []) if b["band"] == band), None)
            bands.append({"band": band, "low": float(edges[band]), "high": float(edges[band] * 2), "sample": sample,
                          "frames": described["frames"] if described else None,
                          "phone": described["phone"] if described else None,
                          "share": described["share"] if described else None})
    histogram = stats.complete_histogram()[f]
    bin_edges = bin_lower_edges()
    return {
        "id": feature_id, "site": site, "feature": f, "kind": info["kind"], "hook": info["hook"], "decoder": decoder,
        "label": label, "top": top, "bands": bands, "n_frames": int(stats.n_frames), "n_clips": int(stats.n_clips),
        "histogram": [{"low": _edge(bin_edges[b]), "count": int(histogram[b])} for b in np.flatnonzero(histogram)],
        "phones": [{"phone": p, "precision": v, "recall": label["recall"][p]} for p, v in label.get("precision", {}).items()],
    }


def histogram_arrays(store: FeatureStore, feature_id: str) -> tuple[np.ndarray, np.ndarray]:
    site, f = store.parse_feature(feature_id)
    return bin_lower_edges(), store.stats(site).complete_histogram()[f]


def example_location(store: FeatureStore, feature_id: str, kind: str, index: int) -> tuple[str, int, int]:
    """(site, clip, encoder frame) of top example `index` or of band `index`'s sample; KeyError if
    none (a decoder feature's examples are tokens, with no frame to centre a window on)."""
    site, f = store.parse_feature(feature_id)
    if store.site_info(site)["hook"].startswith("decoder."):
        raise KeyError(index)
    stats = store.stats(site)
    if kind == "top":
        if not 0 <= index < stats.k or stats.top_clips[f, index] < 0:
            raise KeyError(index)
        return site, int(stats.top_clips[f, index]), int(stats.top_positions[f, index])
    if not 0 <= index < stats.sample_clips.shape[1] or stats.sample_clips[f, index, 0] < 0:
        raise KeyError(index)
    return site, int(stats.sample_clips[f, index, 0]), int(stats.sample_positions[f, index, 0])


def _edge(value: float) -> str:
    return "≤ 0" if not np.isfinite(value) else f"{value:.3g}"
