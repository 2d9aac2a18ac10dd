"""Query parameters, checked: each bad value is a WhisperLensError naming the parameter, which
the app answers with a 400 and that message (never a 500)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import WhisperLensError
from .feature_index import SORTABLE, FeatureQuery

MAX_PER_PAGE = 200
MAX_TEXT = 200  # characters of free-text search


def text(args: Mapping, name: str, default: str = "", choices: list[str] | None = None) -> str:
    value = args.get(name, default)
    if len(value) > MAX_TEXT or "\x00" in value:
        raise WhisperLensError(f"{name}: at most {MAX_TEXT} characters of text")
    if value and choices is not None and value not in choices:
        shown = ", ".join(choices[:12]) + (", ..." if len(choices) > 12 else "")
        raise WhisperLensError(f"{name}: unknown value {value!r}; one of {shown}")
    return value


def integer(args: Mapping, name: str, default: int, low: int, high: int) -> int:
    return _bounded(args, name, default, low, high, int, "a whole number")


def number(args: Mapping, name: str, default: float | None, low: float, high: float) -> float | None:
    return _bounded(args, name, default, low, high, float, "a number")


def _bounded(args: Mapping, name: str, default, low, high, convert, what: str):
    raw = args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = convert(raw)
    except ValueError:
        raise WhisperLensError(f"{name}: expected {what}, got {raw[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise WhisperLensError(f"{name}: must be {what} between {low:g} and {high:g}, got {raw[:40]!r}")
    return value


def flag(args: Mapping, name: str) -> bool | None:
    """A yes/no filter: absent or empty means either."""
    raw = args.get(name, "")
    if raw == "":
        return None
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise WhisperLensError(f"{name}: expected yes or no, got {raw[:40]!r}")


def feature_query(args: Mapping, sites: list[str], bases: list[str], phones: list[str]) -> FeatureQuery:
    return FeatureQuery(
        q=text(args, "q").strip(), site=text(args, "site", choices=sites), basis=text(args, "basis", choices=bases),
        phone=text(args, "phone", choices=phones),
        selective=flag(args, "selective"), polyphonetic=flag(args, "polyphonetic"),
        min_selectivity=number(args, "min_selectivity", None, 0, 1), max_selectivity=number(args, "max_selectivity", None, 0, 1),
        min_firing=number(args, "min_firing", None, 0, 1), max_firing=number(args, "max_firing", None, 0, 1),
        sort=text(args, "sort", "score", choices=list(SORTABLE)) or "score",
        descending=text(args, "order", "desc", choices=["asc", "desc"]) != "asc",
        page=integer(args, "page", 1, 1, 1_000_000), per_page=integer(args, "per_page", 50, 1, MAX_PER_PAGE),
    )
