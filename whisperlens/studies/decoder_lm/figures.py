"""The study's figures, each drawn from numbers the result keeps, and each with its Table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...study import Table, new_figure, save_figure
from .neighbours import CATEGORIES

CATEGORY_COLOURS = {"same word": "#8064a2", "sound and meaning": "#c0504d", "sound only": "#f79646",
                    "meaning only": "#4a7ab5", "neither": "#bfbfbf", "not a word": "#404040"}


def token_label(token: str) -> str:
    """The token quoted; escaped where the figure font has no glyph for it (kana, Greek, ...)."""
    return repr(token) if all(ord(c) < 0x250 for c in token) else ascii(token)


def _panels(count: int, width: float, height: float):
    figure, first = new_figure(width, height)
    first.remove()  # new_figure gives one axes; these figures put several side by side
    return figure, np.atleast_1d(figure.subplots(1, count))


def next_token_figure(prompt: dict, folder: Path, name: str, model: str) -> str:
    """prompt: {"prompt", "conditions": {condition: [[token, logit], ...]}}: the top next tokens
    and their logits under each no-audio condition, likeliest at the top (the seeds' plots)."""
    conditions = prompt["conditions"]
    figure, panels = _panels(len(conditions), 3.6 * len(conditions), 0.5 + 0.2 * max(map(len, conditions.values())))
    for axes, (condition, top) in zip(panels, conditions.items()):
        labels = [token_label(token) for token, _ in top]
        axes.barh(range(len(top)), [logit for _, logit in top], color="#4a7ab5")
        axes.set_yticks(range(len(top)), labels, fontsize=7)
        axes.invert_yaxis()
        axes.set(xlabel="logit", title=condition)
        axes.grid(axis="x", alpha=0.3)
    figure.suptitle(f"{model}: next token after {prompt['prompt']!r}, no audio", fontsize=10)
    return save_figure(figure, folder, name)


def next_token_table(prompt: dict, conditions) -> Table:
    """The next-token figure's numbers, the conditions in the given order."""
    rows = []
    for rank in range(max(len(top) for top in prompt["conditions"].values())):
        row = [rank + 1]
        for condition in conditions:
            top = prompt["conditions"][condition]
            row += [repr(top[rank][0]), round(top[rank][1], 2)] if rank < len(top) else ["", ""]
        rows.append(row)
    header = ["rank"] + [f"{c} {part}" for c in conditions for part in ("token", "logit")]
    return Table(header, rows)


def bigram_scores_figure(rows: list[dict], folder: Path, model: str) -> str:
    figure, (left, right) = _panels(2, 11.0, 3.6)
    labels = [row["label"] for row in rows]
    positions = np.arange(len(rows))
    left.barh(positions, [row["cross_entropy_bits"] for row in rows], color="#4a7ab5")
    left.set(xlabel="cross-entropy of the text's next word (bits; lower is better)")
    for k, colour in zip((1, 5, 10), ("#c0504d", "#f79646", "#9bbb59")):
        right.scatter([row[f"top{k}"] for row in rows], positions, color=colour, label=f"top-{k} hit rate")
    right.set(xlabel="share of the text's bigrams whose next word is in the top k")
    right.legend(fontsize=7)
    for axes in (left, right):
        axes.set_yticks(positions, labels, fontsize=7)
        axes.invert_yaxis()
        axes.grid(axis="x", alpha=0.3)
    right.set_yticklabels([])
    figure.suptitle(f"{model}: next-word prediction without audio, against the fortunes text", fontsize=10)
    return save_figure(figure, folder, "bigram_scores.png")


def neighbours_figure(entry: dict, methods: list[str], folder: Path, name: str, model: str) -> str:
    """entry: {"word", "methods": {method: [{"token", "cosine", "category", ...}, ...] or None}}."""
    shown = [method for method in methods if entry["methods"].get(method)]
    figure, panels = _panels(len(shown), 3.4 * len(shown), 0.6 + 0.2 * max(len(entry["methods"][m]) for m in shown))
    for axes, method in zip(panels, shown):
        neighbours = entry["methods"][method]
        axes.barh(range(len(neighbours)), [n["cosine"] for n in neighbours],
                  color=[CATEGORY_COLOURS[n["category"]] for n in neighbours])
        axes.set_yticks(range(len(neighbours)), [token_label(n["token"]) for n in neighbours], fontsize=7)
        axes.invert_yaxis()
        axes.set(xlabel="cosine", title=method)
        axes.grid(axis="x", alpha=0.3)
    handles = [_patch(colour) for colour in CATEGORY_COLOURS.values()]
    figure.legend(handles, list(CATEGORY_COLOURS), loc="lower center", ncol=len(CATEGORY_COLOURS), fontsize=7,
                  bbox_to_anchor=(0.5, -0.06))
    figure.suptitle(f"{model}: nearest tokens to {entry['word']!r} in the token embedding", fontsize=10)
    return save_figure(figure, folder, name)


def methods_figure(rows: list[dict], folder: Path, model: str) -> str:
    """rows: {"label", "sound", "meaning", "shares"} per method and for the baseline."""
    figure, (left, right) = _panels(2, 11.0, 3.4)
    positions = np.arange(len(rows))
    left.barh(positions - 0.2, [row["sound"] for row in rows], height=0.4, color="#f79646", label="sound")
    left.barh(positions + 0.2, [row["meaning"] for row in rows], height=0.4, color="#4a7ab5", label="meaning")
    left.set(xlabel="mean similarity of the top neighbours")
    left.legend(fontsize=7)
    start = np.zeros(len(rows))
    for name in CATEGORIES:
        shares = np.array([row["shares"][name] for row in rows])
        right.barh(positions, shares, left=start, color=CATEGORY_COLOURS[name], label=name)
        start += shares
    right.set(xlabel="share of neighbours", xlim=(0, 1))
    right.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for axes in (left, right):
        axes.set_yticks(positions, [row["label"] for row in rows], fontsize=7)
        axes.invert_yaxis()
        axes.grid(axis="x", alpha=0.3)
    right.set_yticklabels([])
    figure.suptitle(f"{model}: embedding neighbours by method, against random words of matched frequency", fontsize=10)
    return save_figure(figure, folder, "neighbour_methods.png")


def neurons_figure(rows: list[dict], classes: dict[str, dict[str, int]], folder: Path, model: str, hook: str) -> str:
    """rows: {"label", "dominant", "semantic"} per feature kind; classes: kind -> class -> features with it dominant."""
    figure, (left, right) = _panels(2, 11.0, 3.4)
    positions = np.arange(len(rows))
    left.barh(positions - 0.2, [row["dominant"] for row in rows], height=0.4, color="#4a7ab5", label="any class")
    left.barh(positions + 0.2, [row["semantic"] for row in rows], height=0.4, color="#c0504d", label="a class of meaning")
    left.set_yticks(positions, [row["label"] for row in rows], fontsize=7)
    left.invert_yaxis()
    left.legend(fontsize=7)
    left.set(xlabel="share with a dominant class (>= half their top words)")
    names = sorted({name for counts in classes.values() for name in counts},
                   key=lambda name: -sum(counts.get(name, 0) for counts in classes.values()))[:12]
    width = 0.8 / max(len(classes), 1)
    for offset, (kind, counts) in enumerate(classes.items()):
        total = max(sum(counts.values()), 1)
        right.bar(np.arange(len(names)) + offset * width, [counts.get(name, 0) / total for name in names], width=width,
                  label=kind)
    right.set_xticks(np.arange(len(names)) + width * (len(classes) - 1) / 2, names, rotation=50, fontsize=7, ha="right")
    right.set(ylabel="share of the features with a class")
    right.legend(fontsize=7)
    for axes in (left, right):
        axes.grid(alpha=0.3)
    figure.suptitle(f"{model}: semantic classes of {hook} features", fontsize=10)
    return save_figure(figure, folder, "neurons.png")


def _patch(colour: str):
    from matplotlib.patches import Patch

    return Patch(color=colour)


def neighbour_table(entry: dict, methods: list[str]) -> Table:
    """A word's neighbours under each method side by side: token, cosine, scores, kind."""
    methods = [m for m in methods if entry["methods"].get(m)]
    rows = []
    for rank in range(max(len(entry["methods"][m]) for m in methods)):
        row = [rank + 1]
        for m in methods:
            found = entry["methods"][m]
            cell = found[rank] if rank < len(found) else None
            row += [repr(cell["token"]), cell["cosine"], _score(cell["sound"]), _score(cell["meaning"]),
                    cell["category"]] if cell else [""] * 5
        rows.append(row)
    header = ["rank"] + [f"{m} {part}" for m in methods for part in ("token", "cosine", "sound", "meaning", "kind")]
    return Table(header, rows, caption=f"Nearest tokens to {entry['word']!r}")


def _score(value) -> str | float:
    return "-" if value is None else round(value, 3)
