"""How much the Ray executor adds to an installed .venv: the files of `ray` and of every package
it pulled in that nothing else installed needs (from the installed packages' own file lists).

    .venv/bin/python scripts/ray_install_size.py
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def name_of(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def closure(roots: list[str], needs: dict[str, set[str]]) -> set[str]:
    """The installed packages `roots` name and all they require, transitively."""
    found, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in needs and name not in found:
            found.add(name)
            todo.extend(needs[name])
    return found


def main() -> None:
    dists = {dist.metadata["Name"].lower().replace("_", "-"): dist for dist in metadata.distributions()}
    needs = {name: {name_of(r) for r in (dist.requires or []) if "extra ==" not in r} for name, dist in dists.items()}
    ray_tree = closure(["ray"], needs)
    # what everything else installed needs, transitively, was there anyway (numpy, requests, ...)
    anyway = closure([name for name in dists if name not in ray_tree], needs)
    only_for_ray = sorted(ray_tree - anyway)
    total = 0
    for name in only_for_ray:
        files = dists[name].files or []
        size = sum(Path(dists[name].locate_file(f)).stat().st_size for f in files if Path(dists[name].locate_file(f)).is_file())
        total += size
        print(f"{name:28s} {dists[name].version:12s} {size / 2**20:8.1f} MiB")
    print(f"{'total':41s} {total / 2**20:8.1f} MiB")


if __name__ == "__main__":
    main()
