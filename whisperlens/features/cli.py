"""`whisperlens features build|show|export|agree`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import WhisperLensError


def register(subparsers) -> None:
    parser = subparsers.add_parser("features", help="harvest, label and listen to neurons and SAE features")
    commands = parser.add_subparsers(dest="features_command", required=True, metavar="ACTION")

    build = commands.add_parser("build", help="train SAEs, harvest every feature over the corpus, label, write pages")
    build.add_argument("--corpus", default=None, help="corpus folder (default: the default corpus)")
    build.add_argument("--set", default="english", help="corpus set to use, or 'all' (default english)")
    build.add_argument("--clips", type=int, default=None, help="use only the first N clips")
    build.add_argument("--model", default="tiny.en")
    build.add_argument("--layers", default=None, help="block indices, e.g. 2,3 (default: all)")
    build.add_argument("--hooks", default=None,
                       help="comma-separated hook names or globs (default: every encoder mlp.hook_post and "
                            "hook_resid_post, every decoder mlp.hook_post)")
    build.add_argument("--bases", default="neurons,random,sae", help="any of neurons,random,sae (default all three)")
    build.add_argument("--sae-layers", default="2,3", help="encoder blocks whose residual stream gets a SAE (default 2,3)")
    build.add_argument("--sae-architecture", default="topk", choices=["topk", "standard"])
    build.add_argument("--sae-training-vectors", type=int, default=3_000_000,
                       help="vectors shown to each SAE in training (default 3M: 3 epochs of the default corpus)")
    build.add_argument("--mode", default="short", help="exact, short or short-bf16 (default short; see docs/features.md)")
    build.add_argument("--batch-size", type=int, default=32)
    build.add_argument("--top-k", type=int, default=32)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--device", default="cpu")
    build.add_argument("--html-top", type=int, default=24, help="features per page with rendered audio and spectrograms")
    build.add_argument("--no-html", action="store_true")
    build.add_argument("--out", default=None, help="store folder (default runs/features/MODEL/MODE)")
    build.add_argument("--no-progress", action="store_true")
    build.set_defaults(run=run_build)

    show = commands.add_parser("show", help="print a feature's labels and top examples")
    show.add_argument("feature", help="SITE:INDEX, e.g. encoder.blocks.2.mlp.hook_post:17 or sae:encoder.blocks.3.hook_resid_post:42")
    show.add_argument("--store", default=None, help="store folder (default runs/features/tiny.en/short)")
    show.add_argument("--examples", type=int, default=10)
    show.set_defaults(run=run_show)

    seeds = commands.add_parser("seeds", help="our labels for the block-2 neurons the seed write-ups labelled")
    seeds.add_argument("--store", default=None)
    seeds.set_defaults(run=run_seeds)

    summary = commands.add_parser("summary", help="share of phone-selective features per site against the random baseline")
    summary.add_argument("--store", default=None)
    summary.set_defaults(run=run_summary)

    export = commands.add_parser("export", help="write the listening pages (HTML, audio, spectrograms)")
    export.add_argument("--store", default=None)
    export.add_argument("--sites", default=None, help="comma-separated sites (default: all)")
    export.add_argument("--top", type=int, default=24, help="features per page with rendered audio and spectrograms")
    export.add_argument("--render-every-site", action="store_true",
                        help="also render the top features of random-direction and residual-coordinate pages")
    export.add_argument("--no-progress", action="store_true")
    export.set_defaults(run=run_export)

    agree = commands.add_parser("agree", help="how far fast modes agree with exact mode (top-k overlap, phone labels)")
    agree.add_argument("--corpus", default=None)
    agree.add_argument("--set", default="english")
    agree.add_argument("--clips", type=int, default=500)
    agree.add_argument("--model", default="tiny.en")
    agree.add_argument("--modes", default="short,short-bf16")
    agree.add_argument("--out", default=None, help="where the per-mode stores go (default runs/features/agreement)")
    agree.add_argument("--no-progress", action="store_true")
    agree.set_defaults(run=run_agree)


def _int_list(text: str | None, what: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise WhisperLensError(f"{what} must be comma-separated whole numbers, e.g. 2,3; got {text!r}") from None


def _harvest_config(args):
    from .harvest import DEFAULT_HOOKS, HarvestConfig

    return HarvestConfig(
        model=args.model, hooks=tuple(args.hooks.split(",")) if args.hooks else DEFAULT_HOOKS,
        layers=_int_list(args.layers, "--layers"), bases=tuple(b.strip() for b in args.bases.split(",") if b.strip()),
        mode=args.mode, batch_size=args.batch_size, top_k=args.top_k, seed=args.seed, device=args.device,
    )


def run_build(args) -> int:
    from .build import FeatureBuildConfig, build_features

    harvest = _harvest_config(args)
    harvest.validate()
    config = FeatureBuildConfig(
        out=args.out, corpus=args.corpus, corpus_set=None if args.set == "all" else args.set, clips=args.clips,
        harvest=harvest, sae_layers=_int_list(args.sae_layers, "--sae-layers") or (), sae_architecture=args.sae_architecture,
        sae_training_vectors=args.sae_training_vectors,
        html=not args.no_html, html_top=args.html_top,
    )
    result = build_features(config, progress=not args.no_progress)
    print(result.summary_markdown())
    for hook, metrics in result.sae_metrics.items():
        print(f"SAE {hook}: explained variance {metrics['explained_variance']:.3f}, L0 {metrics['l0']:.1f}, "
              f"dead {metrics['dead_features']}/{metrics['d_sae']}")
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in result.seconds.items()))
    print(f"store: {config.out}")
    if config.html:
        print(f"pages: {config.out / 'html' / 'index.html'}")
    return 0


def _store(path: str | None):
    from .build import FeatureBuildConfig
    from .store import FeatureStore

    return FeatureStore(Path(path) if path else FeatureBuildConfig().out)  # where `build` writes by default


def run_show(args) -> int:
    from .show import describe_feature

    print(describe_feature(_store(args.store), args.feature, args.examples))
    return 0


def run_seeds(args) -> int:
    from .show import seed_comparison

    print(seed_comparison(_store(args.store)))
    return 0


def run_summary(args) -> int:
    from .build import site_summaries
    from .labels import summary_table

    print(summary_table(site_summaries(_store(args.store))))
    return 0


def run_export(args) -> int:
    from .build import open_corpus_of_store
    from .html import export_html

    store = _store(args.store)
    sites = args.sites.split(",") if args.sites else None
    index = export_html(store, open_corpus_of_store(store), top=args.top, sites=sites, progress=not args.no_progress,
                        render_every_site=args.render_every_site)
    print(f"pages: {index}")
    return 0


def run_agree(args) -> int:
    from .agreement import AgreementConfig, measure_agreement

    config = AgreementConfig(corpus=args.corpus, corpus_set=None if args.set == "all" else args.set, clips=args.clips,
                             model=args.model, modes=tuple(args.modes.split(",")),
                             out=Path(args.out) if args.out else Path("runs") / "features" / "agreement")
    result = measure_agreement(config, progress=not args.no_progress)
    print(result.markdown())
    return 0
