"""The study's figures, each drawn from the result's summary alone: the logit-lens curves, and
per stack the metrics against the fraction of depth removed, with the seed's whisper-medium
points overlaid from its published numbers."""

from __future__ import annotations

from pathlib import Path

from ...study import new_figure, save_figure

# Published by the whisper_logit_lens notebook (seed 002) for whisper-medium (24 + 24 layers), on
# its own test audio: WER (%) by the number of layers kept. Quoted, not re-measured here.
SEED_MEDIUM = {
    "source": "seed 002 (whisper_logit_lens notebook), whisper-medium, published WER",
    "layers": 24,
    "full": 3.73,
    "encoder": {23: 4.68, 22: 16.6, 20: 23.8, 18: 33.2, 12: 103.0},
    "decoder": {23: 9.8, 22: 45.7, 21: 75.5, 20: 92.4},
}
SET_STYLES = {"english": ("#4a7ab5", "o", "-"), "asterisk": ("#c0504d", "^", "--")}


def seed_points(stack: str) -> list[tuple[int, float, float]]:
    """(layers kept, fraction of depth removed, WER %) of the seed's whisper-medium, full model first."""
    n = SEED_MEDIUM["layers"]
    return [(n, 0.0, SEED_MEDIUM["full"])] + [(kept, (n - kept) / n, wer) for kept, wer in SEED_MEDIUM[stack].items()]


def _two_panels(width: float = 11.0, height: float = 3.4):
    figure, first = new_figure(width, height)
    first.remove()  # new_figure gives one axes; these figures put two side by side
    return figure, figure.subplots(1, 2)


def lens_figure(points: list[dict], folder: Path, model: str) -> str:
    figure, (left, right) = _two_panels()
    depth = [p["depth"] for p in points]
    for key, label in (("top1_agreement", "top-1 = model's own top-1"), ("top1_accuracy", "top-1 = reference token"),
                       ("p_correct", "P(reference token)")):
        left.plot(depth, [p[key] for p in points], marker="o", markersize=3, label=label)
    tuned = "tuned_kl" in points[0]  # the tuned lens was trained: its curves beside the logit lens's
    if tuned:
        left.plot(depth, [p["tuned_top1_agreement"] for p in points], marker="s", markersize=3, linestyle="--",
                  color="black", label="tuned lens: top-1 = model's own top-1")
    left.set(xlabel="fraction of decoder depth (sub-layers)", ylabel="fraction / probability", ylim=(-0.02, 1.02),
             title=f"{model}: decoder logit lens" + (" and tuned lens" if tuned else ""))
    left.legend(fontsize=7)
    right.plot(depth, [p["kl"] for p in points], marker="o", markersize=3, color="#c0504d", label="logit lens")
    if tuned:
        right.plot(depth, [p["tuned_kl"] for p in points], marker="s", markersize=3, linestyle="--", color="black",
                   label="tuned lens (held-out clips)")
        right.legend(fontsize=7)
    right.set(xlabel="fraction of decoder depth (sub-layers)", ylabel="KL(final ‖ lens), nats", title="distance to the output")
    for axes in (left, right):
        axes.set_xticks(depth, [p["point"] for p in points], rotation=60, fontsize=6)
        axes.grid(alpha=0.3)
    return save_figure(figure, folder, "lens.png")


def removal_figure(stack: str, rows: list[dict], folder: Path, model: str) -> str:
    """rows: the full model and the stack's configurations, each with `removed_fraction`,
    `keeps_first` and per-set rates."""
    figure, (left, right) = _two_panels()
    curve = sorted((r for r in rows if r["keeps_first"]), key=lambda r: r["removed_fraction"])
    single = [r for r in rows if not r["keeps_first"]]
    for name, (color, marker, line) in SET_STYLES.items():
        if name not in rows[0]:
            continue
        left.plot([r["removed_fraction"] for r in curve], [100 * r[name]["wer"] for r in curve], color=color,
                  marker=marker, linestyle=line, label=f"{model}, {name}: keep first n")
        left.scatter([r["removed_fraction"] for r in single], [100 * r[name]["wer"] for r in single], color=color,
                     marker="x", label=f"{model}, {name}: skip one block")
        for r in single:
            left.annotate(r["name"].split()[-1], (r["removed_fraction"], 100 * r[name]["wer"]), fontsize=6,
                          xytext=(3, 2), textcoords="offset points", color=color)
    seed = seed_points(stack)
    left.plot([s[1] for s in seed], [s[2] for s in seed], color="black", marker="s", markersize=4, linestyle=":",
              label="whisper-medium, keep first n (seed 002, published)")
    left.set(xlabel=f"fraction of {stack} depth removed", ylabel="WER (%)", title=f"{stack} layers removed: WER")
    left.legend(fontsize=6)
    fractions = [r["removed_fraction"] for r in curve]
    for key, label, color in (("repetition_rate", "repetition (English clips)", "#c0504d"),
                              ("empty_rate", "empty output (English clips)", "#9bbb59"),
                              ("hallucination_rate", "inserted words per reference word", "#8064a2")):
        right.plot(fractions, [100 * r["english"][key] for r in curve], marker="o", markersize=3, label=label, color=color)
    if "nonspeech" in rows[0]:
        right.plot(fractions, [100 * r["nonspeech"]["hallucination_rate"] for r in curve], marker="^", markersize=3,
                   linestyle="--", color="black", label="non-speech clips with any word output")
    right.set(xlabel=f"fraction of {stack} depth removed (keep first n)", ylabel="%", title="failures")
    right.legend(fontsize=6)
    for axes in (left, right):
        axes.grid(alpha=0.3)
    return save_figure(figure, folder, f"removal_{stack}.png")


def heads_figure(traced: dict, n_layers: int, n_heads: int, folder: Path, model: str) -> str:
    """Heat maps, blocks x heads, of the share of loops each zeroed head stops: self- and cross-attention."""
    import numpy as np

    figure, panels = _two_panels(9.0, 0.8 + 0.45 * n_layers)
    for axes, kind, title in zip(panels, ("attn", "cross_attn"), ("self-attention", "cross-attention")):
        grid = np.full((n_layers, n_heads), np.nan)  # blank: a block the configuration skips
        for head in traced["heads"]:
            if head["kind"] == kind:
                grid[head["block"], head["head"]] = 100 * head["loops_stopped"]
        image = axes.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        axes.set(xlabel="head", ylabel="decoder block", title=title,
                 xticks=range(n_heads), yticks=range(n_layers))
        figure.colorbar(image, ax=axes)
    figure.suptitle(f"{model}, {traced['configuration']}: share of its {traced['clips']} looping clips that stop looping "
                    "when one head is zeroed (%)", fontsize=9, y=1.04)
    return save_figure(figure, folder, "loop_heads.png")
