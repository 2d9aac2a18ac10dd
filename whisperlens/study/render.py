"""The one renderer: view blocks -> HTML through jinja2 templates (autoescaped), for a study's
page and for its section of the main report. Pages open from disk: no script, no CDN."""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..storage import atomic_path
from .blocks import Block


@lru_cache(maxsize=1)
def environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("whisperlens", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["rebase"] = rebase
    env.filters["number"] = format_number
    return env


def rebase(path: str, base: str) -> str:
    """A path relative to a result's folder, as seen from a page `base` away from that folder."""
    if not base or "://" in path or path.startswith(("/", "#", "data:")):
        return path
    return posixpath.normpath(posixpath.join(base, path))


def format_number(value) -> str:
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def render(template: str, **values) -> str:
    return environment().get_template(template).render(**values)


def write_page(path: Path, template: str, **values) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(render(template, **values), encoding="utf-8")
    return path


def write_study_page(result, title: str, command: str, description: str = "") -> Path:
    """folder/index.html: the result's blocks on a page of their own."""
    return write_page(result.folder / "index.html", "study.html.j2", title=title, description=description,
                      blocks=result.views(), base="", command=command, fingerprint=result.fingerprint)


@dataclass
class ReportSection:
    name: str  # the anchor
    title: str
    blocks: list[Block] | None  # None: not run yet
    folder: Path | None = None  # the result's folder, that block paths are relative to
    command: str = ""


def write_report(path: Path, title: str, sections: list[ReportSection]) -> Path:
    """The main report: a section per study, each the same blocks as the study's own page."""
    path = Path(path)
    rows = []
    for section in sections:
        base = _relative(section.folder, path.parent) if section.folder is not None else ""
        has_page = section.folder is not None and (section.folder / "index.html").exists()
        page = posixpath.join(base, "index.html") if has_page else ""
        rows.append({"name": section.name, "title": section.title, "blocks": section.blocks, "base": base,
                     "command": section.command, "page": page})
    return write_page(path, "report.html.j2", title=title, sections=rows)


def _relative(folder: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(folder).resolve(), Path(start).resolve())).as_posix()
