"""A study's result: its config, a JSON summary, named arrays and the files it made (figures,
audio), in one folder that `load()` reads back exactly.

    folder/config.json       the config, as config_to_dict writes it
    folder/arrays.safetensors  the named numpy arrays (absent when there are none)
    folder/*.png, *.flac     files the study made, named by its view blocks
    folder/result.json       study, format version, fingerprint, package version, summary

result.json is written last: a folder without it (or with another fingerprint) is not a result,
so an interrupted save is never mistaken for a finished one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import WhisperLensError
from ..storage import atomic_path
from .blocks import Block
from .config import config_from_dict, config_to_dict

RESULT_FILE, CONFIG_FILE, ARRAYS_FILE = "result.json", "config.json", "arrays.safetensors"


class Result:
    """Subclass per study: set `study`, `config_type` and `format_version`, write `views()`."""

    study: ClassVar[str] = ""
    config_type: ClassVar[type]
    format_version: ClassVar[int] = 1

    def __init__(self, config, summary: dict, arrays: dict[str, np.ndarray] | None = None,
                 folder: Path | None = None, fingerprint: str = ""):
        self.config = config
        self.summary = summary
        self.arrays = dict(arrays or {})
        self.folder = Path(folder) if folder is not None else None  # where its files are
        self.fingerprint = fingerprint

    def views(self) -> list[Block]:
        raise NotImplementedError(f"{type(self).__name__} must say how it renders (views)")

    # ---- persistence --------------------------------------------------------------------------

    def save(self, folder: Path | None = None) -> Path:
        folder = Path(folder or self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / CONFIG_FILE, config_to_dict(self.config))
        arrays_path = folder / ARRAYS_FILE
        if self.arrays:
            from safetensors.numpy import save_file

            with atomic_path(arrays_path) as tmp:
                save_file({k: np.ascontiguousarray(v) for k, v in self.arrays.items()}, str(tmp))
        else:
            arrays_path.unlink(missing_ok=True)
        from .. import __version__

        _write_json(folder / RESULT_FILE, {"study": self.study, "format_version": self.format_version,
                                           "fingerprint": self.fingerprint, "package_version": __version__,
                                           "summary": self.summary})
        self.folder = folder
        return folder

    @classmethod
    def load(cls, folder: Path):
        folder = Path(folder)
        record = read_record(folder)
        if record is None:
            raise WhisperLensError(f"{folder}: no {cls.study} result there; run `whisperlens {cls.study} run` first")
        if record.get("study") != cls.study or record.get("format_version") != cls.format_version:
            raise WhisperLensError(f"{folder}: holds a {record.get('study')} result of format {record.get('format_version')}, "
                                   f"not {cls.study} format {cls.format_version}; rerun the study")
        config = config_from_dict(cls.config_type, json.loads((folder / CONFIG_FILE).read_text()))
        arrays = {}
        if (folder / ARRAYS_FILE).exists():
            from safetensors.numpy import load_file

            arrays = load_file(str(folder / ARRAYS_FILE))
        return cls(config, record["summary"], arrays, folder, record["fingerprint"])

    def __eq__(self, other) -> bool:
        return (type(self) is type(other) and self.config == other.config and self.summary == other.summary
                and self.fingerprint == other.fingerprint and self.arrays.keys() == other.arrays.keys()
                and all(np.array_equal(self.arrays[k], other.arrays[k]) for k in self.arrays))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.folder}, fingerprint={self.fingerprint})"


def read_record(folder: Path) -> dict | None:
    """result.json of a finished result, or None (missing or unreadable: not finished)."""
    try:
        return json.loads((Path(folder) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")
