"""The study's figures that are not plain heatmaps: position-restricted patches per layer."""

from __future__ import annotations

from pathlib import Path

from ...study import new_figure, save_figure
from .positions import REGIONS, SOURCES

STYLES = {"A": ("#4a7ab5", "-"), "random": ("#c0504d", "--"), "B": ("#7f7f7f", ":")}
MARKERS = {"word": "o", "outside": "s", "all": "^"}


def restricted_figure(summary: dict, folder: Path, model: str) -> str:
    """Two panels, per encoder layer: the normalised logit difference and the share of transcripts
    that became A, for each region patched and each source."""
    figure, first = new_figure(11.0, 3.4)
    first.remove()
    left, right = figure.subplots(1, 2)
    for source in SOURCES:
        color, line = STYLES[source]
        for region in REGIONS:
            values = summary[source][region]
            layers = range(len(values["normalised"]))
            label = f"{source} → B, {region}"
            left.plot(layers, [float("nan") if v is None else v for v in values["normalised"]], color=color,
                      linestyle=line, marker=MARKERS[region], label=label)
            right.plot(layers, values["became_a"], color=color, linestyle=line, marker=MARKERS[region], label=label)
    left.set(xlabel="encoder layer (resid_post)", ylabel="normalised logit difference", title="A's token over B's")
    right.set(xlabel="encoder layer (resid_post)", ylabel="share of transcripts with A's word", ylim=(-0.02, 1.02),
              title="the seed's binary metric")
    for axes in (left, right):
        axes.grid(alpha=0.3)
    right.legend(fontsize=6, ncol=1, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.suptitle(f"{model}: patching only some positions", fontsize=9)
    return save_figure(figure, folder, "positions.png")
