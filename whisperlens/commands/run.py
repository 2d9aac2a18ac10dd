"""`whisperlens run`: the main job on the embedded default (tiny.en, the bundled example, the built-in corpus).

It builds the default corpus if it is missing, then runs a list of studies, quick ones first,
each into OUT/STUDY, rewriting OUT/index.html after each so the report fills in as it goes. A
study whose saved result has the same fingerprint is skipped; an interrupted one resumes from
its checkpoints.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import WhisperLensError
from .common import add_model_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="the main job: corpus, then every study, into one report", description=__doc__)
    add_model_arguments(parser)
    parser.add_argument("--out", default="runs/main", help="output folder (default: runs/main)")
    parser.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus, built if missing)")
    parser.add_argument("--clips", type=int, default=None,
                        help="use only the first N English clips for the features (default: all)")
    parser.add_argument("--force", action="store_true", help="rerun every study even if its saved result is up to date")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run)


def main_plan(model, corpus_dir: Path, clips: int | None, out: Path = Path("runs/main")) -> list:
    """The main job's studies, quick ones first: (study, config) pairs. The feature store goes
    inside the run directory (OUT/features/store), so `whisperlens serve OUT` can serve its
    listening pages and the report's links to them work wherever OUT is copied."""
    from ..corpus.selection import CorpusSelection
    from ..features.study import STUDY as FEATURES
    from ..features.study import FeaturesConfig
    from ..studies.align import STUDY as ALIGN
    from ..studies.align import AlignConfig
    from ..studies.decoder_lm import STUDY as DECODER_LM
    from ..studies.decoder_lm.study import DecoderLMConfig
    from ..studies.example import STUDY as EXAMPLE
    from ..studies.example import ExampleConfig
    from ..studies.layers import STUDY as LAYERS
    from ..studies.layers.study import LayersConfig
    from ..studies.locality import STUDY as LOCALITY
    from ..studies.locality import LocalityConfig
    from ..studies.patching import STUDY as PATCHING
    from ..studies.patching import PatchingConfig
    from ..studies.probes import STUDY as PROBES
    from ..studies.probes.study import DEFAULT_SETS as PROBE_SETS
    from ..studies.probes.study import ProbesConfig
    from ..studies.wer import STUDY as WER
    from ..studies.wer import WerConfig

    corpus = str(corpus_dir)
    per_voice = CorpusSelection(path=corpus, per_voice=40)
    return [
        (EXAMPLE, ExampleConfig(model=model)),
        (WER, WerConfig(model=model, corpus=per_voice)),
        (ALIGN, AlignConfig(corpus=per_voice)),
        (PROBES, ProbesConfig(model=model, corpus=CorpusSelection(path=corpus, sets=PROBE_SETS, per_voice=40))),
        (LAYERS, LayersConfig(model=model, corpus=CorpusSelection(path=corpus, per_voice=8))),
        (DECODER_LM, DecoderLMConfig(model=model, corpus=CorpusSelection(path=corpus, per_voice=100))),
        # patching and locality at half their defaults (patching's override matrix at its default 16
        # pairs: since issue 11's speed-ups 16 cost little more than 8 did): with them, the SAE
        # training of `features` and everything else the main job has to stay within an hour on 2 cores
        (PATCHING, PatchingConfig(model=model, corpus=CorpusSelection(path=corpus, sets=("minimal_pairs", "en_es_pairs")),
                                  pairs=16, position_pairs=4, window_pairs=2, crosslingual_pairs=2)),
        (LOCALITY, LocalityConfig(model=model, corpus=CorpusSelection(path=corpus, per_voice=1), half_widths=(100, 50, 20, 10))),
        (FEATURES, FeaturesConfig(model=model, corpus=CorpusSelection(path=corpus, clips=clips),
                                  store=(Path(out) / "features" / "store").as_posix())),
    ]


def run(args: argparse.Namespace) -> int:
    from ..study import ModelSpec, StudyContext
    from ..study.runner import run_pipeline

    if args.clips is not None and args.clips < 1:
        raise WhisperLensError(f"--clips must be positive, got {args.clips}")
    model = ModelSpec(args.model, args.device, args.dtype)
    progress = not args.no_progress
    corpus_dir, corpus_section = corpus_step(args.corpus, progress)  # first: a bad --corpus fails before any output
    out = Path(args.out)
    plan = main_plan(model, corpus_dir, args.clips, out)
    for _, config in plan:
        config.validate()  # every study's bad input fails before the first one runs
    run_pipeline(plan, out, f"whisperlens: {args.model}", StudyContext(out, progress), lead=[corpus_section], force=args.force)
    print(f"== report: {out / 'index.html'}")
    print(f"== browse it: whisperlens serve {out}")
    return 0


def corpus_step(corpus_dir: str | None, progress: bool):
    """The corpus folder (the default one built if missing) and the report's section on it."""
    from ..corpus import Corpus, CorpusConfig, build_corpus
    from ..corpus.stats import corpus_stats, format_stats
    from ..study import Code
    from ..study.render import ReportSection

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
    blocks = [Code(format_stats(corpus_stats(corpus)), caption=f"{config.out}: {len(corpus)} clips, hash {corpus.hash}")]
    return Path(config.out), ReportSection("corpus", "The corpus", blocks, None, f"whisperlens corpus stats {config.out}")
