"""Figures as real images: matplotlib, headless, byte-identical for the same data."""

from __future__ import annotations

from pathlib import Path

from ..storage import atomic_path


def new_figure(width: float = 7.0, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none needed
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=100)


def save_figure(figure, folder: Path, name: str) -> str:
    """Write `figure` as folder/name (PNG) and close it; return the name, relative to `folder`.

    The PNG carries no software or date metadata, so the same data gives the same bytes.
    """
    import matplotlib.pyplot as plt

    with atomic_path(Path(folder) / name) as tmp:
        figure.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight")
    plt.close(figure)
    return name
