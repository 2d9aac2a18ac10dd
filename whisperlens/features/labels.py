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
- negative side (encoder MLP neurons, from their most negative pre-GELU examples): the same
  top phone, share and top three over the negative examples; negative-selective like
  phone-selective. The two sides *agree* when both are selective for the same phone.
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
    negative_min: float | None = None  # the most negative pre-GELU value; None where the site keeps no negatives
    negative_top_phone: str | None = None  # over the negative examples
    negative_top_share: float = 0.0
    negative_top3: list[tuple[str, float]] = field(default_factory=list)
    negative_selective: bool = False


@dataclass
class TokenLabel:
    feature: int
    max_value: float
    firing_rate: float
    top_token: str | None
    top_share: float
    contexts: list[str] = field(default_factory=list)  # "... previous [token] next ..." per top example
    score: float = 0.0


def _phone_shares(phones: np.ndarray) -> list[tuple[str, float]]:
    """The three commonest phones among example phones (-1: an empty slot) with their shares."""
    present = phones[phones >= 0]
    histogram = np.bincount(present, minlength=len(PHONES))
    order = np.argsort(-histogram, kind="stable")
    total = max(len(present), 1)
    return [(PHONES[p], float(histogram[p] / total)) for p in order[:3] if histogram[p] > 0]


def _is_selective(top3: list[tuple[str, float]]) -> bool:
    return bool(top3) and top3[0][0] != "sil" and top3[0][1] >= SELECTIVE_SHARE


def phone_labels(stats: SiteStats, frames) -> list[PhoneLabel]:
    """Label every feature of an encoder site from its statistics and the frame phone table."""
    n_phones = len(PHONES)
    top_phones = frames.phone_at(stats.top_clips, stats.top_positions)  # (n, k), -1 for empty slots
    negative_phones = frames.phone_at(stats.negative_clips, stats.negative_positions) if stats.has_negatives else None
    counts = stats.complete_phone_counts()  # (n, bands, phones)
    firing_rates = stats.firing_rate()
    max_values = stats.max_values()
    max_bands = band_of(np.maximum(max_values, 0))
    labels = []
    for f in range(stats.n_features):
        top3 = _phone_shares(top_phones[f])
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
        selective = _is_selective(top3)
        populated = [b["phone"] for b in bands if b["frames"] >= MIN_BAND_FRAMES][:POLY_BANDS]
        spread = top_share < SELECTIVE_SHARE and sum(share for _, share in top3) >= TOP3_SHARE
        polyphonetic = len(set(populated)) > 1 or spread
        label = PhoneLabel(
            feature=f, max_value=float(max_values[f]), firing_rate=float(firing_rates[f]),
            top_phone=top_phone, top_share=float(top_share), top3=top3, bands=bands,
            precision=precision, recall=recall, selective=selective, polyphonetic=bool(polyphonetic),
            score=float(top_share) if top_phone not in (None, "sil") else 0.0,
        )
        if negative_phones is not None:
            negative3 = _phone_shares(negative_phones[f])
            label.negative_min = -float(stats.negative_values[f, 0]) if stats.negative_clips[f, 0] >= 0 else None
            label.negative_top_phone, label.negative_top_share = negative3[0] if negative3 else (None, 0.0)
            label.negative_top3, label.negative_selective = negative3, _is_selective(negative3)
        labels.append(label)
    return labels


@dataclass
class NegativeAgreement:
    """Do an MLP site's neurons fire negatively on the phone they fire positively on?"""

    site: str
    neurons: int  # with negative examples
    positive_selective: int
    negative_selective: int
    both: int  # selective on both sides
    agree: int  # selective on both sides, for the same phone
    chance: float  # expected `agree` if the sides were unrelated: the negative sides of other neurons

    @property
    def agree_share(self) -> float:
        return self.agree / max(self.both, 1)

    @property
    def chance_share(self) -> float:
        return self.chance / max(self.both, 1)


def negative_agreement(site: str, labels: list[PhoneLabel]) -> NegativeAgreement | None:
    """Agreement of the two sides over the neurons selective on both (None: no negatives kept).
    The chance level pairs each neuron's positive phone with the negative phones of every other
    neuron selective on both sides: how often they would match if the sides were unrelated."""
    kept = [label for label in labels if label.negative_min is not None]
    if not kept:
        return None
    both = [label for label in kept if label.selective and label.negative_selective]
    agree = sum(label.top_phone == label.negative_top_phone for label in both)
    chance = 0.0
    if len(both) > 1:
        negative = Counter(label.negative_top_phone for label in both)
        chance = sum((negative[label.top_phone] - (label.top_phone == label.negative_top_phone)) / (len(both) - 1)
                     for label in both)
    return NegativeAgreement(site, len(kept), sum(label.selective for label in kept),
                             sum(label.negative_selective for label in kept), len(both), agree, chance)


def negative_table(agreements: list[NegativeAgreement]) -> str:
    """Markdown: per MLP site, how often the negative side agrees with the positive side."""
    lines = ["| site | neurons | positive-selective | negative-selective | both | same phone | share | chance |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for a in agreements:
        lines.append(f"| {a.site} | {a.neurons} | {a.positive_selective} | {a.negative_selective} | {a.both} | "
                     f"{a.agree} | {a.agree_share:.1%} | {a.chance_share:.1%} |")
    return "\n".join(lines)


def store_negative_agreement(store: FeatureStore) -> list[NegativeAgreement]:
    """negative_agreement for every site of `store` that kept negative examples."""
    agreements = (negative_agreement(site, labels) for site, _, labels in encoder_site_labels(store))
    return [agreement for agreement in agreements if agreement is not None]


def encoder_site_labels(store: FeatureStore):
    """(site, site info, phone labels) for each encoder site of `store`, from its saved labels."""
    for site in store.sites:
        info = store.site_info(site)
        if not info["hook"].startswith("decoder."):
            yield site, info, [PhoneLabel(**label) for label in store.labels(site)]


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
    return [summarize(site, info["kind"], info["hook"], labels) for site, info, labels in encoder_site_labels(store)]
