"""`whisperlens corpus build|stats`. The checks on a built corpus are studies: `whisperlens align` and `whisperlens wer`."""

from __future__ import annotations

import json

from .build import DEFAULT_CLIPS, CorpusConfig, build_corpus, default_corpus_dir
from .sets import SET_NAMES


def register(subparsers) -> None:
    parser = subparsers.add_parser("corpus", help="build and inspect the labelled speech corpus")
    commands = parser.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")

    build = commands.add_parser("build", help="synthesize the corpus (resumes an interrupted build)")
    build.add_argument("--clips", type=int, default=DEFAULT_CLIPS,
                       help=f"clips per set; the fixed sets stop at their full size (default {DEFAULT_CLIPS})")
    build.add_argument("--out", default=None, help=f"output folder (default {default_corpus_dir()})")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--sets", nargs="+", default=list(SET_NAMES), metavar="SET",
                       help=f"any of: {' '.join(SET_NAMES)} (default: all)")
    build.add_argument("--workers", type=int, default=2)
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(run=run_build)

    stats = commands.add_parser("stats", help="counts per set, engine, voice, language; phone coverage")
    stats.add_argument("dir", nargs="?", default=None, help="corpus folder (default: the default corpus)")
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(run=run_stats)


def _open(path):
    from .corpus import Corpus

    return Corpus.open(path)


def run_build(args) -> int:
    config = CorpusConfig(out=args.out, clips=args.clips, seed=args.seed, sets=tuple(args.sets), workers=args.workers)
    info = build_corpus(config, progress=not args.no_progress)
    build = info["last_build"]
    speed = f", {build['clips_built'] / build['seconds']:.0f} clips/s" if build["clips_built"] and build["seconds"] else ""
    print(f"corpus: {info['clips']} clips in {config.out} (built {build['clips_built']} in {build['seconds']:.1f} s{speed})")
    print(f"hash: {info['hash']}")
    return 0


def run_stats(args) -> int:
    from .stats import corpus_stats, format_stats

    stats = corpus_stats(_open(args.dir))
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0
