"""The "features you can listen to" study: `whisperlens features run|show|describe|summary|seeds|export`.

The heavy outputs (per-feature statistics, labels, listening pages) live in the feature store,
where `features describe` and `features export` read them; the study's result holds the
per-site summaries, the SAE metrics and a link to the pages.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from ..study import Figure, Link, Result, Study, Table, new_figure, save_figure
from .config import FeaturesConfig


class FeaturesResult(Result):
    study = "features"
    config_type = FeaturesConfig

    def views(self):
        sites = self.summary["sites"]
        encoder = [s for s in sites if s["kind"] in ("neurons", "random") and s["hook"].endswith("mlp.hook_post")]
        table = Table(["hook", "basis", "features", "live", "phone-selective", "share %", "silence", "polyphonetic"],
                      [[s["hook"], s["kind"], s["n_features"], s["live"], s["selective"], round(100 * s["selective_share"], 1),
                        s["silence"], s["polyphonetic"]] for s in sites], caption="Every site")
        blocks = []
        if encoder:
            numbers = Table(["hook", "basis", "share %"],
                            [[s["hook"], s["kind"], round(100 * s["selective_share"], 1)] for s in encoder])
            blocks.append(Figure("selective.png",
                                 "Share of phone-selective MLP neurons per encoder block, against random directions",
                                 numbers=numbers, caption="A feature is phone-selective when one phone (not silence) holds at "
                                 "least half of its top examples. Random directions in the same space are the baseline."))
        blocks.append(table)
        if self.summary["sae"]:
            blocks.append(Table(["SAE", "explained variance", "L0", "dead", "latents"],
                                [[hook, m["explained_variance"], m["l0"], m["dead_features"], m["d_sae"]]
                                 for hook, m in self.summary["sae"].items()], caption="Sparse autoencoders (SAELens)"))
        if self.summary.get("negatives"):
            blocks.append(Table(["site", "neurons", "positive-selective", "negative-selective", "both", "same phone",
                                 "share %", "chance %"],
                                [[a["site"], a["neurons"], a["positive_selective"], a["negative_selective"], a["both"],
                                  a["agree"], round(100 * a["agree_share"], 1), round(100 * a["chance_share"], 1)]
                                 for a in self.summary["negatives"]],
                                caption="Negative side (pre-GELU bottom-k) against positive side (top-k) of MLP neurons: "
                                        "how often both are selective for the same phone, and the chance level"))
        if self.summary.get("pages"):
            blocks.append(Link(self.summary["pages"],
                               "Listen to the features: one page per site, top examples amplified at the peak"))
        return blocks


def run(config: FeaturesConfig, context) -> FeaturesResult:
    from .build import build_features

    corpus = context.corpus(config.corpus)
    model = context.model(config.model_spec())
    build = build_features(config, corpus, model, progress=context.show_progress)
    folder = context.folder
    folder.mkdir(parents=True, exist_ok=True)
    sites = [asdict(s) | {"selective_share": s.selective_share} for s in build.summaries]
    pages = Path(os.path.relpath(build.store.root / "html" / "index.html", folder)).as_posix() if config.html else None
    from .labels import store_negative_agreement

    negatives = [asdict(a) | {"agree_share": a.agree_share, "chance_share": a.chance_share}
                 for a in store_negative_agreement(build.store)]
    summary = {"sites": sites, "negatives": negatives, "mode": build.store.mode_description,
               "sae": build.sae_metrics, "seconds": {k: round(v, 1) for k, v in build.seconds.items()},
               "store": str(build.store.root), "pages": pages}
    _selectivity_figure(sites, folder)
    return FeaturesResult(config, summary, folder=folder)


def _selectivity_figure(sites: list[dict], folder: Path) -> None:
    import numpy as np

    rows = sorted((s for s in sites if s["hook"].endswith("mlp.hook_post") and s["kind"] in ("neurons", "random")),
                  key=lambda s: s["hook"])
    hooks = sorted({s["hook"] for s in rows})
    figure, axes = new_figure(6, 2.8)
    for offset, kind in ((-0.2, "neurons"), (0.2, "random")):
        shares = [next((100 * s["selective_share"] for s in rows if s["hook"] == h and s["kind"] == kind), 0) for h in hooks]
        axes.bar(np.arange(len(hooks)) + offset, shares, width=0.4, label=kind)
    axes.set_xticks(range(len(hooks)), [h.split(".")[2] for h in hooks])
    axes.set(xlabel="encoder block", ylabel="phone-selective (%)")
    axes.legend(fontsize=8)
    save_figure(figure, folder, "selective.png")


# ---- actions beyond run and show: they read the feature store ---------------------------------

def add_commands(actions) -> None:
    describe = actions.add_parser("describe", help="a feature's labels and top examples")
    describe.add_argument("feature", help="SITE:INDEX, e.g. encoder.blocks.2.mlp.hook_post:17 or "
                                          "sae:encoder.blocks.3.hook_resid_post:42")
    describe.add_argument("--store", default=None,
                          help="store folder (default runs/features/tiny.en/MODE, as `run` chooses MODE here, "
                               "else the main job's runs/main/features/store)")
    describe.add_argument("--examples", type=int, default=10)
    describe.set_defaults(run=run_describe)

    seeds = actions.add_parser("seeds", help="our labels for the block-2 neurons the seed write-ups labelled")
    seeds.add_argument("--store", default=None)
    seeds.set_defaults(run=run_seeds)

    summary = actions.add_parser("summary", help="share of phone-selective features per site against the random baseline")
    summary.add_argument("--store", default=None)
    summary.set_defaults(run=run_summary)

    negatives = actions.add_parser("negatives", help="per MLP site: does a neuron's negative (pre-GELU) side "
                                                     "fire on the phone its positive side fires on?")
    negatives.add_argument("--store", default=None)
    negatives.set_defaults(run=run_negatives)

    export = actions.add_parser("export", help="write the listening pages (HTML, audio, spectrograms)")
    export.add_argument("--store", default=None)
    export.add_argument("--sites", default=None, help="comma-separated sites (default: all)")
    export.add_argument("--top", type=int, default=24, help="features per page with rendered audio and spectrograms")
    export.add_argument("--render-every-site", action="store_true",
                        help="also render the top features of random-direction and residual-coordinate pages")
    export.add_argument("--no-progress", action="store_true")
    export.set_defaults(run=run_export)


MAIN_JOB_STORE = Path("runs") / "main" / "features" / "store"  # where `whisperlens run` keeps it


def _store(path: str | None):
    """The store at `path`; by default the one `features run` writes, else the main job's."""
    from .store import FeatureStore

    if path:
        return FeatureStore(Path(path))
    default = FeaturesConfig().store_dir()
    if not (default / "manifest.json").exists() and (MAIN_JOB_STORE / "manifest.json").exists():
        return FeatureStore(MAIN_JOB_STORE)
    return FeatureStore(default)


def run_describe(args) -> int:
    from .show import describe_feature

    print(describe_feature(_store(args.store), args.feature, args.examples))
    return 0


def run_seeds(args) -> int:
    from .show import seed_comparison

    print(seed_comparison(_store(args.store)))
    return 0


def run_summary(args) -> int:
    from .labels import site_summaries, summary_table

    print(summary_table(site_summaries(_store(args.store))))
    return 0


def run_negatives(args) -> int:
    from .labels import negative_table, store_negative_agreement

    store = _store(args.store)
    agreements = store_negative_agreement(store)
    if not agreements:
        from ..errors import WhisperLensError

        raise WhisperLensError(f"{store.root}: no site kept negative examples (harvest encoder MLP neurons)")
    print(negative_table(agreements))
    print(f"\n{store.manifest['model']}, {store.mode_description}, {len(store.clip_ids)} clips. \"both\": "
          "selective on the positive (post-GELU top-k) and the negative (pre-GELU bottom-k) side; \"same phone\": "
          "both sides' top phone is the same; \"chance\": the share expected if each neuron's negative side "
          "were another's.")
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


STUDY = Study("features", "Features you can listen to", FeaturesConfig, run, FeaturesResult,
              description="MLP neurons, SAE features and random directions of the encoder, labelled with the phones "
                          "they fire on, with their top examples to listen to.", add_commands=add_commands,
              run_aliases=("build",))
