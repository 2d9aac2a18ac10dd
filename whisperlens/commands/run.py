"""`whisperlens run`: the main job on the embedded default (tiny.en, the bundled example, the built-in corpus).

Steps: transcribe and inspect the bundled example; build the default corpus if it is missing;
harvest, label and render the features; write runs/main/index.html. Each step keeps its work on
disk and skips what is done, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import html
import importlib.resources
import json
import os
import shutil
from pathlib import Path

from ..errors import WhisperLensError
from ..report import ReportSection, table_html, write_report
from ..storage import atomic_path
from .common import add_model_arguments, load_model_from_args


def example_audio_path() -> Path:
    return Path(str(importlib.resources.files("whisperlens") / "data" / "example.flac"))


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="the main job: example, corpus, features, report", description=__doc__)
    add_model_arguments(parser)
    parser.add_argument("--out", default="runs/main", help="output folder (default: runs/main)")
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus, built if missing)")
    parser.add_argument("--clips", type=int, default=None, help="use only the first N English clips for the features (default: all)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.clips is not None and args.clips < 1:
        raise WhisperLensError(f"--clips must be positive, got {args.clips}")
    progress = not args.no_progress
    model = load_model_from_args(args)
    corpus_dir, corpus_section = corpus_step(args.corpus, progress)  # first: a bad --corpus fails before any output
    sections = [example_step(model, out), corpus_section, features_step(args, corpus_dir, out, progress)]
    index = write_report(out / "index.html", f"whisperlens: {args.model}", sections)
    print(f"== report: {index}")
    return 0


def example_step(model, out: Path) -> ReportSection:
    from ..audio import load_audio
    from ..inspection import inspect_audio, summary_rows, transcribe_file

    print("== transcribing the bundled example with word timestamps")
    entry = transcribe_file(model, str(example_audio_path()), "en" if not model.is_multilingual else None, True)
    print(entry["text"])
    print("== inspecting the encoder's residual stream on it")
    _, cache = inspect_audio(model, load_audio(example_audio_path()), "encoder.blocks.*.hook_resid_post", entry["language"])
    rows = summary_rows(cache)
    for name, shape, mean, std, low, high in rows:
        print(f"{name:40} {shape:14} mean {mean:7.3f} std {std:7.3f} max {high:8.3f}")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "example.json") as tmp:
        tmp.write_text(json.dumps({**entry, "hooks": [dict(zip(("name", "shape", "mean", "std", "min", "max"), r)) for r in rows]}, indent=2))
    shutil.copyfile(example_audio_path(), out / "example.flac")
    words = table_html(["word", "start (s)", "end (s)"], [[w["word"], w["start"], w["end"]] for w in entry["words"]])
    hooks = table_html(["hook", "shape", "mean", "std", "max"], [[n, s, f"{m:.3f}", f"{sd:.3f}", f"{hi:.2f}"] for n, s, m, sd, _, hi in rows])
    body = (f"<audio controls src='example.flac'></audio><p><b>{html.escape(entry['text'])}</b></p>"
            f"<details><summary>word timestamps</summary>{words}</details>{hooks}")
    return ReportSection("The bundled example", body, f"whisperlens inspect {example_audio_path().name} --hooks 'encoder.blocks.*.hook_resid_post'")


def corpus_step(corpus_dir: str | None, progress: bool) -> tuple[Path, ReportSection]:
    from ..corpus import Corpus, CorpusConfig, build_corpus
    from ..corpus.stats import corpus_stats, format_stats

    config = CorpusConfig(out=corpus_dir)
    try:
        corpus = Corpus.open(config.out)
        print(f"== corpus: {config.out} ({len(corpus)} clips)")
    except WhisperLensError:
        if corpus_dir is not None:
            raise
        print(f"== building the default corpus in {config.out} (resumable)")
        build_corpus(config, progress=progress)
        corpus = Corpus.open(config.out)
    stats_text = format_stats(corpus_stats(corpus))
    body = f"<p>{html.escape(str(config.out))}: {len(corpus)} clips, hash {html.escape(str(corpus.hash))}</p><pre>{html.escape(stats_text)}</pre>"
    return Path(config.out), ReportSection("The corpus", body, f"whisperlens corpus stats {config.out}")


def features_step(args: argparse.Namespace, corpus_dir: Path, out: Path, progress: bool) -> ReportSection:
    from ..cli import build_parser
    from ..features.build import FeatureBuildConfig
    from ..features.harvest import HarvestConfig

    print("== features: harvest, SAEs, labels, listening pages (resumable)")
    # The store goes where `features build` puts it by default, so `features show` finds it after
    # the main job; the CLI's own parser gives the main job exactly `features build`'s defaults.
    store = FeatureBuildConfig(harvest=HarvestConfig(model=args.model)).out
    argv = ["features", "build", "--corpus", str(corpus_dir), "--out", str(store), "--model", args.model, "--device", args.device]
    argv += ["--clips", str(args.clips)] if args.clips else []
    argv += [] if progress else ["--no-progress"]
    features_args = build_parser().parse_args(argv)
    features_args.run(features_args)
    summary = (store / "summary.md").read_text()
    pages = os.path.relpath(store / "html" / "index.html", out)
    body = (f"<p><a href='{html.escape(pages)}'>Listen to the features</a> (one page per layer; store {html.escape(str(store))}).</p>"
            f"<pre>{html.escape(summary)}</pre>")
    return ReportSection("Features you can listen to", body, "whisperlens " + " ".join(argv))
