"""Hook names: the alias table and name filters, shared by the model and the cache."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence

NameFilter = str | Sequence[str] | Callable[[str], bool] | None

# Names used in the seed write-ups (openai's module paths) that resolve to hook points.
_ALIASES = [(re.compile(r"^((?:en|de)coder\.blocks\.\d+)\.mlp\.1$"), r"\1.mlp.hook_post")]


def resolve_alias(name: str) -> str:
    for pattern, replacement in _ALIASES:
        name = pattern.sub(replacement, name)
    return name


def resolve_filter(names: NameFilter) -> NameFilter:
    """The filter with every alias it names replaced by the hook point's own name."""
    if isinstance(names, str):
        return resolve_alias(names)
    if isinstance(names, (list, tuple)):
        return [resolve_alias(n) for n in names]
    return names


def name_matcher(names: NameFilter) -> Callable[[str], bool]:
    """Turn a hook-name filter into a predicate.

    A filter is None (everything), a predicate, a name, a glob (`encoder.blocks.*.hook_resid_post`),
    or a list of those.
    """
    if names is None:
        return lambda name: True
    if callable(names):
        return names
    patterns = [names] if isinstance(names, str) else list(names)
    regexes = [re.compile(fnmatch.translate(p)) for p in patterns]
    return lambda name: any(r.match(name) for r in regexes)
