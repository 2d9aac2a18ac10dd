"""The study's figures, each drawn from numbers the result keeps beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...stream import FRAME_SECONDS
from ...study import new_figure, save_figure

SET_STYLES = {"english": ("#4a7ab5", "o", "-"), "asterisk": ("#c0504d", "^", "--")}


def _panels(count: int, width: float, height: float):
    figure, first = new_figure(width, height)
    first.remove()  # new_figure gives one axes; these figures lay several side by side
    return figure, figure.subplots(1, count, squeeze=False)[0]


def heads_figure(stats: dict, folder: Path, model: str) -> str:
    """Heat maps (layers x heads) of mean distance and mass within ±10, over clip frames and with padding."""
    panels = [(scope, measure, f"{title}, {where}") for scope, where in (("clip", "clip frames"), ("padded", "with padding"))
              for measure, title in (("distance_ms", "mean distance (ms)"), ("within_10", "mass within ±10"))]
    figure, axes = _panels(4, 15, 1.2 + 0.5 * len(stats["clip"]["distance_ms"]))
    for ax, (scope, measure, title) in zip(axes, panels):
        grid = np.array(stats[scope][measure])
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        for (layer, head), value in np.ndenumerate(grid):
            ax.text(head, layer, f"{value:.0f}" if measure == "distance_ms" else f"{value:.2f}", ha="center", va="center",
                    fontsize=6, color="white")
        ax.set(title=title, xlabel="head", ylabel="layer", xticks=range(grid.shape[1]), yticks=range(grid.shape[0]))
        figure.colorbar(image, ax=ax)
    figure.suptitle(f"{model}: encoder self-attention locality per head", fontsize=9, y=1.03)
    return save_figure(figure, folder, "heads.png")


def sweep_figure(rows: list[dict], folder: Path, model: str) -> str:
    """WER, empty and repetition rates and the reference's log-probability against k, per set."""
    figure, axes = _panels(3, 14, 3.4)
    ks = [r["half_width"] for r in rows]
    positions = np.arange(len(ks))
    labels = ["none" if k is None else str(k) for k in ks]
    for name, (color, marker, line) in SET_STYLES.items():
        if name not in rows[0]:
            continue
        axes[0].plot(positions, [100 * r[name]["wer"] for r in rows], color=color, marker=marker, linestyle=line, label=name)
        for key, style in (("empty_rate", ":"), ("repetition_rate", "-")):
            axes[1].plot(positions, [100 * r[name][key] for r in rows], color=color, marker=marker, linestyle=style,
                         label=f"{name}: {key.split('_')[0]}")
        axes[2].plot(positions, [r[name]["log_prob"] for r in rows], color=color, marker=marker, linestyle=line, label=name)
    for ax, ylabel, title in zip(axes, ("WER (%)", "% of clips", "mean log p(reference token)"),
                                 ("WER", "empty output and repetition loops", "teacher-forced reference")):
        ax.set(xlabel="k (±frames of 20 ms), all heads", ylabel=ylabel, title=title)
        ax.set_xticks(positions, labels)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(f"{model}: the ±k band sweep", fontsize=9, y=1.03)
    return save_figure(figure, folder, "sweep.png")


def head_sweep_figure(heads: list[dict], groups: list[dict], baseline: dict, shape: tuple[int, int], folder: Path,
                      model: str) -> str:
    """Per head, the WER and log-probability change (against `baseline`, no mask on the same clips)
    when that head alone is masked to k=10; and the groups (sweep rows, no mask first) on all clips."""
    figure, axes = _panels(3, 14, 1.4 + 0.5 * shape[0])
    for ax, key, title, scale in ((axes[0], "wer", "WER change (points), one head at k=10", 100),
                                  (axes[1], "log_prob", "log-prob change, one head at k=10", 1)):
        grid = np.full(shape, np.nan)
        for h in heads:
            grid[h["layer"], h["head"]] = scale * (h["english"][key] - baseline[key])
        image = ax.imshow(grid, cmap="magma_r" if key == "wer" else "magma", aspect="auto")
        marks = {(h["layer"], h["head"]): "L" if h["local"] else "G" for h in heads}
        for (layer, head), value in np.ndenumerate(grid):
            ax.text(head, layer, f"{marks[(layer, head)]} {value:.1f}" if key == "wer" else f"{marks[(layer, head)]} {value:.2f}",
                    ha="center", va="center", fontsize=6, color="grey")
        ax.set(title=title, xlabel="head", ylabel="layer", xticks=range(shape[1]), yticks=range(shape[0]))
        figure.colorbar(image, ax=ax)
    names = [g["name"] for g in groups]
    colors = {"all": "#9bbb59", "local": "#4a7ab5", "global": "#c0504d"}
    axes[2].bar(range(len(names)), [100 * g["english"]["wer"] for g in groups], color=[colors[g["family"]] for g in groups])
    axes[2].set_xticks(range(len(names)), names, rotation=20, fontsize=7)
    axes[2].set(ylabel="WER (%)", title="groups of heads masked to k=10")
    figure.suptitle(f"{model}: masking heads to ±10 frames (L: local head, G: global head)", fontsize=9, y=1.03)
    return save_figure(figure, folder, "head_sweep.png")


def relevance_figure(maps: dict[str, np.ndarray], n_frames: int, folder: Path, name: str, title: str) -> str:
    """Heat maps of (queries, keys) relevance, with the end of the audio marked."""
    figure, axes = _panels(len(maps), 5.5 * len(maps), 4.6)
    for ax, (label, grid) in zip(axes, maps.items()):
        shown = np.log10(np.maximum(grid.astype(np.float32), 1e-6))
        image = ax.imshow(shown, cmap="viridis", aspect="auto", vmin=np.percentile(shown, 50), vmax=shown.max())
        ax.axvline(n_frames, color="white", linewidth=0.8, linestyle="--")
        ax.axhline(n_frames, color="white", linewidth=0.8, linestyle="--")
        ax.set(title=f"{label} (log10)", xlabel="input position (20 ms)", ylabel="output position")
        figure.colorbar(image, ax=ax)
    figure.suptitle(title, fontsize=9, y=1.03)
    return save_figure(figure, folder, name)


def token_maps_figure(maps: dict[str, np.ndarray], words: list[str], n_frames: int, folder: Path, title: str) -> str:
    """Per target token (rows), its map over the clip's frames (columns), per method."""
    figure, axes = _panels(len(maps), 5 * len(maps), 1 + 0.3 * len(words))
    for ax, (label, grid) in zip(axes, maps.items()):
        rows = grid[:, :n_frames]
        rows = rows / np.maximum(rows.max(1, keepdims=True), 1e-12)
        ax.imshow(rows, cmap="viridis", aspect="auto", extent=(0, n_frames * FRAME_SECONDS, len(words) - 0.5, -0.5))
        ax.set_yticks(range(len(words)), words, fontsize=7)
        ax.set(title=f"{label} (each row / its max)", xlabel="time (s)")
    figure.suptitle(title, fontsize=9, y=1.03)
    return save_figure(figure, folder, "relevance_tokens.png")


def faithfulness_figure(curves: dict[str, list[float]], fractions: list[float], folder: Path, model: str) -> str:
    figure, ax = new_figure(7, 3.6)
    colors = {"seed": "#4a7ab5", "chefer": "#c0504d", "rollout": "#9bbb59", "cross_attention": "#8064a2"}
    for name, curve in curves.items():
        method = name.rsplit(" ", 1)[0]
        ax.plot(fractions, curve, color=colors.get(method, "black"), linestyle="-" if name.endswith("most") else
                ("--" if name.endswith("least") else ":"), marker="o", markersize=3, label=name)
    ax.set(xlabel="fraction of the clip's frames replaced by padding output", ylabel="mean log p(reference token)",
           title=f"{model}: perturbation test (most relevant first: solid; least: dashed; random: dotted)")
    ax.legend(fontsize=6, ncol=2)
    ax.grid(alpha=0.3)
    return save_figure(figure, folder, "faithfulness.png")


def removal_figure(rows: list[dict], folder: Path, model: str) -> str:
    figure, ax = new_figure(8, 3.4)
    labels = [f"{r['method']}\n±{r['margin']}" for r in rows]
    width = 0.2
    for offset, (key, color) in enumerate((("gone_rate", "#4a7ab5"), ("kept_rate", "#9bbb59"), ("exact_rate", "#c0504d"),
                                           ("neighbour_instead_rate", "#8064a2"))):
        ax.bar(np.arange(len(rows)) + (offset - 1.5) * width, [100 * r[key] for r in rows], width, color=color,
               label=key.replace("_rate", "").replace("_", " "))
    ax.set_xticks(range(len(rows)), labels, fontsize=7)
    ax.set(ylabel="% of target words", title=f"{model}: removing a word's span of encoder outputs", ylim=(0, 118))
    ax.legend(fontsize=7, ncol=4, loc="upper center")  # above the bars, which reach 100
    ax.grid(alpha=0.3, axis="y")
    return save_figure(figure, folder, "removal.png")
