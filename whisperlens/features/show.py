"""A feature as text: its labels and top examples, for `whisperlens features describe`."""

from __future__ import annotations

from .harvest import PHONES
from .listening import listening_order
from .stats import band_lower_edges
from .store import FeatureStore, site_filename


def describe_feature(store: FeatureStore, feature_id: str, examples: int = 10) -> str:
    site, f = store.parse_feature(feature_id)
    info = store.site_info(site)
    stats = store.stats(site)
    label = store.labels(site)[f]
    clip_ids = store.clip_ids
    frames = store.frames
    lines = [f"{site}:{f}  ({info['kind']} at {info['hook']}; {store.manifest['model']}, {store.mode_description})"]
    if stats.top_clips[f, 0] < 0:
        lines.append(f"never positive on the {int(stats.n_clips)} clips of this store: a dead feature")
        return "\n".join(lines)
    lines.append(f"max {label['max_value']:.3f}; fires (> 0) on {label['firing_rate']:.2%} of {int(stats.n_frames)} frames")
    decoder = info["hook"].startswith("decoder.")
    if decoder:
        lines.append(f"top token: {label['top_token']!r} ({label['top_share']:.0%} of top examples)")
        lines += [f"  {context}" for context in label["contexts"][:examples]]
        return "\n".join(lines)
    flags = [name for name, on in (("phone-selective", label["selective"]), ("polyphonetic", label["polyphonetic"])) if on]
    top3 = ", ".join(f"{p} {s:.0%}" for p, s in label["top3"])
    lines.append(f"top phone: {label['top_phone']} ({label['top_share']:.0%} of top-{stats.k}); top-k: {top3}"
                 + (f"  [{', '.join(flags)}]" if flags else ""))
    if label["precision"]:
        lines.append("precision/recall at >= max/4: " + ", ".join(
            f"{p} {v:.0%}/{label['recall'][p]:.0%}" for p, v in label["precision"].items()))
    if label["bands"]:
        lines.append("bands (octaves, top-down): " + "; ".join(
            f">={b['low']:.3g}: {b['phone']} {b['share']:.0%} of {b['frames']}" for b in label["bands"]))
    lines += listen_first(store, site, f, label)
    lines.append("top examples (value, clip, frame, time, phone):")
    for rank in range(min(examples, stats.k)):
        clip, position = int(stats.top_clips[f, rank]), int(stats.top_positions[f, rank])
        if clip < 0:
            break
        phone = PHONES[frames.clip_phones(clip)[position]]
        lines.append(f"  {stats.top_values[f, rank]:8.3f}  {clip_ids[clip]}  {position:4d}  {position * 0.02:5.2f}s  {phone}")
    edges = band_lower_edges()
    samples = [(b, s) for b in range(stats.sample_clips.shape[1] - 1, 1, -1) for s in range(stats.sample_clips.shape[2])
               if stats.sample_clips[f, b, s] >= 0][: examples]
    if samples:
        lines.append("band samples (band >=, value, clip, frame, phone):")
        for band, s in samples:
            clip, position = int(stats.sample_clips[f, band, s]), int(stats.sample_positions[f, band, s])
            lines.append(f"  >={edges[band]:<7.3g} {stats.sample_values[f, band, s]:8.3f}  {clip_ids[clip]}  {position:4d}  "
                         f"{PHONES[frames.clip_phones(clip)[position]]}")
    if stats.has_negatives and stats.negative_clips[f, 0] >= 0:
        negative3 = ", ".join(f"{p} {s:.0%}" for p, s in label["negative_top3"])
        lines.append(f"negative side (pre-GELU, most negative first): min {label['negative_min']:.3f}; top phone "
                     f"{label['negative_top_phone']} ({label['negative_top_share']:.0%}); {negative3}"
                     + ("  [agrees with the positive side]" if label["selective"] and label["negative_selective"]
                        and label["negative_top_phone"] == label["top_phone"] else ""))
        for rank in range(min(examples, stats.negative_clips.shape[1])):
            clip, position = int(stats.negative_clips[f, rank]), int(stats.negative_positions[f, rank])
            if clip < 0:
                break
            lines.append(f"  {-stats.negative_values[f, rank]:8.3f}  {clip_ids[clip]}  {position:4d}  {position * 0.02:5.2f}s  "
                         f"{PHONES[frames.clip_phones(clip)[position]]}")
    return "\n".join(lines)


def listen_first(store: FeatureStore, site: str, f: int, label: dict) -> list[str]:
    """`describe`'s advice on what to play first, with the page's button for each example."""
    stats, clip_ids = store.stats(site), store.clip_ids
    order = listening_order(stats, store.frames, f, label["top_phone"])
    if not order:
        return []
    page = f"html/{site_filename(site)}.html#f{f}"
    lines = [f"listen first (buttons #rank on {page}; amplified windows centre the frame):"]
    for why, rank in order:
        clip, position = int(stats.top_clips[f, rank]), int(stats.top_positions[f, rank])
        lines.append(f"  #{rank + 1}  {clip_ids[clip]} at {position * 0.02:.2f}s  value {stats.top_values[f, rank]:.3f}: {why}")
    return lines


# The seed write-ups' labels for encoder block 2 MLP neurons of Whisper tiny (letters, as
# published), and the ARPAbet phones each letter label can stand for (our reading of them).
SEED_BLOCK2_LABELS = {
    0: ("m", {"M"}), 1: ("j/ch/sh", {"JH", "CH", "SH", "ZH", "Y"}), 2: ("e/a", {"EH", "AE", "EY", "AH", "AA", "ER"}),
    3: ("c/q", {"K", "G"}), 5: ("i", {"IH", "IY", "AY"}), 7: ("w", {"W"}), 8: ("l", {"L"}), 10: ("I", {"AY", "IH"}),
    14: ("r", {"R", "ER"}), 15: ("st", {"S", "T"}), 16: ("l", {"L"}), 18: ("ch", {"CH", "SH", "JH"}), 19: ("p", {"P"}),
}


def seed_comparison(store: FeatureStore, site: str = "encoder.blocks.2.mlp.hook_post") -> str:
    """Markdown: our phone labels for the neurons the seeds labelled, beside theirs."""
    site = store.check_site(site)
    labels = store.labels(site)
    lines = ["| neuron | seeds' label | our top phone (top-k share) | top-k phones | polyphonetic | compatible |",
             "|---:|---|---|---|---|---|"]
    matches = 0
    for neuron, (seed_label, phones) in SEED_BLOCK2_LABELS.items():
        label = labels[neuron]
        compatible = label["top_phone"] in phones
        matches += compatible
        top3 = ", ".join(f"{p} {s:.0%}" for p, s in label["top3"])
        lines.append(f"| {neuron} | {seed_label} | {label['top_phone']} ({label['top_share']:.0%}) | {top3} | "
                     f"{'yes' if label['polyphonetic'] else ''} | {'yes' if compatible else 'no'} |")
    lines.append(f"\n{matches} of {len(SEED_BLOCK2_LABELS)} seed labels compatible with our top phone ({site}, "
                 f"{store.manifest['model']}, {store.manifest['mode']} mode).")
    return "\n".join(lines)
