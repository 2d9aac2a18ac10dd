"""View blocks: what a result shows, independent of where it is shown.

A study's result turns itself into a list of blocks; the renderer (render.py) turns the same
blocks into the study's page, its section of the main report and, later, its dashboard view.
Paths in blocks are relative to the result's folder; the renderer rebases them per page.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Text:
    text: str  # plain text; blank lines separate paragraphs
    kind: str = field(default="text", init=False)


@dataclass
class Table:
    header: list[str]
    rows: list[list]
    caption: str = ""
    kind: str = field(default="table", init=False)

    def as_text(self) -> str:
        """A fixed-width rendering for the terminal (`whisperlens STUDY show`)."""
        cells = [[str(h) for h in self.header]] + [[_cell(c) for c in row] for row in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.caption] if self.caption else []) + lines)


@dataclass
class Figure:
    path: str  # a PNG made with matplotlib (figures.save_figure)
    alt: str  # what the figure shows, for screen readers and for `show`
    caption: str = ""
    numbers: Table | None = None  # the figure's numbers, shown beside it
    kind: str = field(default="figure", init=False)


@dataclass
class Audio:
    path: str
    caption: str = ""
    kind: str = field(default="audio", init=False)


@dataclass
class Link:
    href: str
    text: str
    kind: str = field(default="link", init=False)


@dataclass
class Code:
    text: str  # preformatted: a transcript, a command, a markdown table
    caption: str = ""
    kind: str = field(default="code", init=False)


Block = Text | Table | Figure | Audio | Link | Code


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def blocks_as_text(blocks: list[Block]) -> str:
    """What `whisperlens STUDY show` prints: every block, as text."""
    parts = []
    for block in blocks:
        if isinstance(block, Table):
            parts.append(block.as_text())
        elif isinstance(block, Figure):
            parts.append(f"[figure {block.path}: {block.alt}]" + (f"\n{block.numbers.as_text()}" if block.numbers else ""))
        elif isinstance(block, Audio):
            parts.append(f"[audio {block.path}] {block.caption}")
        elif isinstance(block, Link):
            parts.append(f"{block.text}: {block.href}")
        elif isinstance(block, Code):
            parts.append((block.caption + "\n" if block.caption else "") + block.text)
        else:
            parts.append(block.text)
    return "\n\n".join(parts)
