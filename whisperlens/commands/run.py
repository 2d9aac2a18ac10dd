"""`whisperlens run`: the main job on the embedded default (tiny.en, the bundled example, the built-in corpus).

Each step writes under --out and skips work already done, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
from pathlib import Path

from ..storage import atomic_path
from .common import add_model_arguments, load_model_from_args


def example_audio_path() -> Path:
    return Path(str(importlib.resources.files("whisperlens") / "data" / "example.flac"))


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="the main job: transcribe and inspect the bundled example, build the corpus, study features", description=__doc__)
    add_model_arguments(parser)
    parser.add_argument("--out", default="runs/main", help="output folder (default: runs/main)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    model = load_model_from_args(args)
    example_step(model, out)
    return 0


def example_step(model, out: Path) -> None:
    from ..audio import load_audio
    from .inspect import inspect_audio, summary_rows
    from .transcribe import transcribe_file

    print("== transcribing the bundled example with word timestamps")
    entry = transcribe_file(model, str(example_audio_path()), "en" if not model.is_multilingual else None, True)
    print(entry["text"])
    print("== inspecting the encoder's residual stream on it")
    _, cache = inspect_audio(model, load_audio(example_audio_path()), "encoder.blocks.*.hook_resid_post", entry["language"])
    rows = summary_rows(cache)
    for name, shape, mean, std, low, high in rows:
        print(f"{name:40} {shape:14} mean {mean:7.3f} std {std:7.3f} max {high:8.3f}")
    with atomic_path(out / "example.json") as tmp:
        tmp.write_text(json.dumps({**entry, "hooks": [dict(zip(("name", "shape", "mean", "std", "min", "max"), r)) for r in rows]}, indent=2))
    print(f"wrote {out / 'example.json'}")
