"""What a run directory holds, as the dashboard reads it: the studies' saved results (any study
the CLI knows, found by its result.json, so a study added later appears without a change here),
the feature store the results name, and files that may be served from it."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import WhisperLensError
from ..study.blocks import Link, Text
from ..study.result import read_record


@dataclass
class StudySection:
    name: str  # the study, and the anchor of its section
    title: str
    folder: Path
    media_base: str  # the URL its blocks' relative paths are served under
    blocks: list | None  # None: the study is not known to this whisperlens
    error: str = ""  # why its result could not be read


class RunDirectory:
    def __init__(self, root: str | Path, studies: list, store: str | Path | None = None):
        self.root = Path(root).resolve()
        self.studies = {study.name: study for study in studies}  # in the command line's order
        if not self.root.is_dir():
            raise WhisperLensError(f"{root}: no such run directory; run `whisperlens run` first, or name one")
        self._store_path = Path(store) if store else None

    def result_folders(self) -> list[tuple[str, Path]]:
        """(study, folder) of every finished result directly under the run directory."""
        found = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir()):
            record = read_record(folder)
            if record is not None and isinstance(record.get("study"), str):
                found.append((record["study"], folder))
        return found

    def sections(self) -> list[StudySection]:
        """A section per finished study, in the CLI's order of studies, then any others by name."""
        studies = self.studies
        order = {name: i for i, name in enumerate(studies)}
        sections = []
        for name, folder in sorted(self.result_folders(), key=lambda item: (order.get(item[0], len(order)), item[0])):
            base = "/media/" + folder.relative_to(self.root).as_posix()
            study = studies.get(name)
            if study is None:
                sections.append(StudySection(name, name, folder, base, None, "a study this whisperlens does not know"))
                continue
            try:
                blocks = study.result.load(folder).views()
            except (WhisperLensError, OSError, ValueError, KeyError) as error:
                sections.append(StudySection(name, study.title, folder, base, None, str(error)))
                continue
            sections.append(StudySection(name, study.title, folder, base, [self._served(block, folder) for block in blocks]))
        return sections

    def _served(self, block, folder: Path):
        """The block as the dashboard can serve it: a link to a file outside the run directory
        (which the media route refuses) becomes text naming the file, to open from disk."""
        if not isinstance(block, Link) or "://" in block.href or block.href.startswith(("/", "#")):
            return block
        target = (folder / block.href).resolve()
        if target.is_relative_to(self.root):
            return block
        return Text(f"{block.text}: {target} (outside the run directory, so not served here; open it from disk)")

    @cached_property
    def store(self):
        """The feature store: the one named with --store, else the first one a result's summary names."""
        from ..features.store import FeatureStore

        if self._store_path is not None:
            return FeatureStore(self._store_path)
        for _, folder in self.result_folders():
            named = (read_record(folder) or {}).get("summary", {})
            named = named.get("store") if isinstance(named, dict) else None
            if not isinstance(named, str):
                continue
            # relative to where the run was made: the working directory then, which may be the
            # run directory's parent (`--out report`), grandparent (`runs/main`) or further up
            for candidate in (Path(named), self.root / named, *(above / named for above in self.root.parents)):
                if (candidate / "manifest.json").exists():
                    return FeatureStore(candidate)
        return None

    def media_path(self, relative: str) -> Path:
        """The file at `relative` under the run directory; WhisperLensError (a 404) for anything
        else: a path that climbs out (.., absolute, a symlink pointing away), a hidden file, or
        no file at all."""
        normal = posixpath.normpath(relative)
        if relative.startswith("/") or normal.startswith("..") or "\x00" in relative or "\\" in relative \
                or any(part.startswith(".") for part in normal.split("/")):
            raise MediaNotFound(relative)
        path = (self.root / normal).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            raise MediaNotFound(relative)
        return path


class MediaNotFound(WhisperLensError):
    def __init__(self, relative: str):
        super().__init__(f"no such file in the run directory: {relative[:200]}")
