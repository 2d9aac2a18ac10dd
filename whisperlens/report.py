"""The main job's report: one static HTML page, a section per step, opened from disk."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from .storage import atomic_path

_STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.2rem .6rem;text-align:left}
pre{background:#f6f6f6;padding:.6rem;overflow-x:auto}"""


@dataclass
class ReportSection:
    title: str
    body_html: str
    command: str  # the command that produced the section's figures


def table_html(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(path: Path, title: str, sections: list[ReportSection]) -> Path:
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{_STYLE}</style>",
             f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>{section.body_html}"
                     f"<p><small>Produced by <code>{html.escape(section.command)}</code></small></p>")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(parts))
    return path
