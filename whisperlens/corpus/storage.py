"""On-disk layout of a built corpus.

    DIR/shards/NAME.flac    the shard's clips, int16 16 kHz, back to back
    DIR/shards/NAME.jsonl   a header line, then one line per clip (offset into the FLAC)
    DIR/manifest.jsonl      every clip line, in plan order (written when all shards exist)
    DIR/info.json           versions, counts, content hash; written last: its presence
                            means the corpus is complete

Each file is written under a temporary name and renamed into place, the FLAC before the
JSON lines, so a shard whose .jsonl exists is whole. FLAC rather than .npy: lossless and
about a third of the size on speech with silent lead-ins.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import soundfile

from .engines import SAMPLE_RATE

SHARDS = "shards"
MANIFEST = "manifest.jsonl"
INFO = "info.json"
TEMPORARY_MARK = ".partial-"


def shard_files(root: Path, name: str) -> tuple[Path, Path]:
    return root / SHARDS / f"{name}.flac", root / SHARDS / f"{name}.jsonl"


def _temporary(path: Path) -> Path:
    return path.with_name(f"{path.name}{TEMPORARY_MARK}{os.getpid()}")


def _publish(temporary: Path, path: Path) -> None:
    with open(temporary, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_text_atomically(path: Path, text: str) -> None:
    temporary = _temporary(path)
    temporary.write_text(text, encoding="utf-8")
    _publish(temporary, path)


def json_line(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def write_shard(root: Path, name: str, header: dict, records: list[dict], audio: np.ndarray) -> None:
    flac_path, jsonl_path = shard_files(root, name)
    flac_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(flac_path)
    soundfile.write(temporary, audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    _publish(temporary, flac_path)
    header = dict(header, pcm_sha256=hashlib.sha256(audio.astype("<i2").tobytes()).hexdigest(), clips=len(records))
    write_text_atomically(jsonl_path, json_line(header) + "".join(json_line(record) for record in records))


def read_shard_header(root: Path, name: str) -> dict | None:
    _, jsonl_path = shard_files(root, name)
    try:
        with open(jsonl_path, encoding="utf-8") as handle:
            return json.loads(handle.readline())
    except (OSError, ValueError):
        return None


def read_shard_lines(root: Path, name: str) -> tuple[str, list[str]]:
    _, jsonl_path = shard_files(root, name)
    lines = jsonl_path.read_text(encoding="utf-8").splitlines(keepends=True)
    return lines[0], lines[1:]


def read_shard_audio(root: Path, name: str) -> np.ndarray:
    flac_path, _ = shard_files(root, name)
    audio, rate = soundfile.read(flac_path, dtype="int16", always_2d=False)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{flac_path}: sample rate {rate}, expected {SAMPLE_RATE}")
    return audio


def remove_temporaries(root: Path) -> None:
    """Drop what a killed build left half-written; nothing reads these names."""
    for folder in (root, root / SHARDS):
        if folder.is_dir():
            for path in folder.iterdir():
                if TEMPORARY_MARK in path.name:
                    path.unlink(missing_ok=True)
