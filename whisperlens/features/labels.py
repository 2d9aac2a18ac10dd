"""Labels for features: the phones an encoder feature fires on, the tokens a decoder feature
fires on, and per-layer summaries against the random-direction baseline.

Definitions (docs/features.md explains the choices):
- top-k phones: the phone under each top-k example's frame (one example per clip); the top
  phone and its share among them. "sil" is the label of frames under no phone.
- bands: octave bands of activation (stats.py). Band b's phone distribution is exact over the
  corpus. The feature's top band holds its maximum; the bands below it are listed top-down.
- firing, for precision and recall: activation in the top two octaves below the maximum
  (at least max/4). precision(p) = firing frames on p / firing frames; recall(p) = firing
  frames on p / frames on p.
- phone-selective: top-k top phone share >= SELECTIVE_SHARE, the phone not being "sil".
- polyphonetic: the top phones of the top POLY_BANDS populated bands (>= MIN_BAND_FRAMES
  frames each) are not all the same, or no phone reaches SELECTIVE_SHARE over the top-k while
  the three commonest phones together reach TOP3_SHARE.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..storage import atomic_path
from .harvest import PHONES
from .stats import SiteStats, band_lower_edges, band_of
from .store import FeatureStore, labels_path

SELECTIVE_SHARE = 0.5
TOP3_SHARE = 0.75
POLY_BANDS = 3
MIN_BAND_FRAMES = 20
BANDS_SHOWN = 10
BAND_EDGES = band_lower_edges()


@dataclass
class PhoneLabel:
    feature: int
    max_value: float
    firing_rate: float  # fraction of frames > 0
    top_phone: str | None  # over the top-k examples
    top_share: float
    top3: list[tuple[str, float]]  # commonest phones over the top-k, with shares
    bands: list[dict]  # top-down: {"band", "low", "frames", "phone", "share"}
    precision: dict[str, float]  # per phone, at the firing threshold (>= max/4); the top 5
    recall: dict[str, float]
    selective: bool
    polyphonetic: bool
    score: float  # for ordering pages: top-k top phone share (0 for silence or dead features)


@dataclass
class TokenLabel:
    feature: int
    max_value: float
    firing_rate: float
    top_token: str | None
    top_share: float
    contexts: list[str] = field(default_factory=list)  # "... previous [token] next ..." per top example
    score: float = 0.0


def phone_labels(stats: SiteStats, frames) -> list[PhoneLabel]:
    """Label every feature of an encoder site from its statistics and the frame phone table."""
    n_phones = len(PHONES)
    top_phones = frames.phone_at(stats.top_clips, stats.top_positions)  # (n, k), -1 for empty slots
    counts = stats.complete_phone_counts()  # (n, bands, phones)
    firing_rates = stats.firing_rate()
    max_values = stats.max_values()
    max_bands = band_of(np.maximum(max_values, 0))
    labels = []
    for f in range(stats.n_features):
        present = top_phones[f][top_phones[f] >= 0]
        histogram = np.bincount(present, minlength=n_phones)
        order = np.argsort(-histogram, kind="stable")
        total = max(len(present), 1)
        top3 = [(PHONES[p], histogram[p] / total) for p in order[:3] if histogram[p] > 0]
        top_phone, top_share = (top3[0] if top3 else (None, 0.0))
        bands = []
        for band in range(int(max_bands[f]), 1, -1)[:BANDS_SHOWN]:
            band_counts = counts[f, band]
            n = int(band_counts.sum())
            if n:
                p = int(np.argmax(band_counts))
                bands.append({"band": band, "low": float(BAND_EDGES[band]), "frames": n,
                              "phone": PHONES[p], "share": float(band_counts[p] / n)})
        firing = counts[f, max(int(max_bands[f]) - 1, 2):].sum(0) if max_bands[f] >= 2 else np.zeros(n_phones)
        n_firing = firing.sum()
        best = np.argsort(-firing, kind="stable")[:5]
        precision = {PHONES[p]: float(firing[p] / n_firing) for p in best if firing[p] > 0}
        recall = {PHONES[p]: float(firing[p] / max(stats.phone_totals[p], 1)) for p in best if firing[p] > 0}
        selective = top_phone not in (None, "sil") and top_share >= SELECTIVE_SHARE
        populated = [b["phone"] for b in bands if b["frames"] >= MIN_BAND_FRAMES][:POLY_BANDS]
        spread = top_share < SELECTIVE_SHARE and sum(share for _, share in top3) >= TOP3_SHARE
        polyphonetic = len(set(populated)) > 1 or spread
        labels.append(PhoneLabel(
            feature=f, max_value=float(max_values[f]), firing_rate=float(firing_rates[f]),
            top_phone=top_phone, top_share=float(top_share), top3=[(p, float(s)) for p, s in top3], bands=bands,
            precision=precision, recall=recall, selective=bool(selective), polyphonetic=bool(polyphonetic),
            score=float(top_share) if top_phone not in (None, "sil") else 0.0,
        ))
    return labels


def token_labels(stats: SiteStats, frames, tokenizer) -> list[TokenLabel]:
    """Label decoder features with the token at their top positions and its neighbours."""
    labels = []
    firing_rates, max_values = stats.firing_rate(), stats.max_values()
    for f in range(stats.n_features):
        seen, contexts = Counter(), []
        for clip, position in zip(stats.top_clips[f], stats.top_positions[f], strict=True):
            if clip < 0:
                continue
            tokens = frames.clip_tokens(int(clip))
            token = tokenizer.decode([int(tokens[position])]) if position < len(tokens) else ""
            seen[token] += 1
            before = tokenizer.decode([int(t) for t in tokens[max(0, position - 3): position] if t < tokenizer.eot])
            after = tokenizer.decode([int(t) for t in tokens[position + 1: position + 3] if t < tokenizer.eot])
            contexts.append(f"{before}[{token}]{after}")
        total = max(sum(seen.values()), 1)
        top_token, count = seen.most_common(1)[0] if seen else (None, 0)
        labels.append(TokenLabel(f, float(max_values[f]), float(firing_rates[f]), top_token, count / total,
                                 contexts, score=count / total))
    return labels


def save_labels(root: Path, site: str, labels: list) -> Path:
    path = labels_path(root, site)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps([asdict(label) for label in labels]))
    return path


@dataclass
class SiteSummary:
    site: str
    kind: str
    hook: str
    n_features: int
    live: int  # features with a positive maximum
    selective: int  # phone-selective (top-k top phone share >= 0.5, not silence)
    silence: int  # top-k top phone is "sil" with share >= 0.5
    polyphonetic: int

    @property
    def selective_share(self) -> float:
        return self.selective / max(self.n_features, 1)


def summarize(site: str, kind: str, hook: str, labels: list[PhoneLabel]) -> SiteSummary:
    return SiteSummary(
        site=site, kind=kind, hook=hook, n_features=len(labels),
        live=sum(label.max_value > 0 for label in labels),
        selective=sum(label.selective for label in labels),
        silence=sum(label.top_phone == "sil" and label.top_share >= SELECTIVE_SHARE for label in labels),
        polyphonetic=sum(label.polyphonetic for label in labels),
    )


def summary_table(summaries: list[SiteSummary]) -> str:
    """Markdown: per hook, the share of phone-selective features for each basis."""
    lines = ["| hook | basis | features | live | phone-selective | share | silence | polyphonetic |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in sorted(summaries, key=lambda s: (s.hook, s.kind)):
        lines.append(f"| {s.hook} | {s.kind} | {s.n_features} | {s.live} | {s.selective} | "
                     f"{s.selective_share:.1%} | {s.silence} | {s.polyphonetic} |")
    return "\n".join(lines)


def site_summaries(store: FeatureStore) -> list[SiteSummary]:
    """Per-site summaries of the encoder sites, recomputed from the labels saved in `store`."""
    summaries = []
    for site in store.sites:
        info = store.site_info(site)
        if not info["hook"].startswith("decoder."):
            labels = [PhoneLabel(**label) for label in store.labels(site)]
            summaries.append(summarize(site, info["kind"], info["hook"], labels))
    return summaries
