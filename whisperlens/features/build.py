"""The "features you can listen to" study: SAEs (if asked for), one harvest over the corpus,
labels, per-layer summaries against the random baseline, and the listening pages."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..corpus.selection import CorpusSelection, corpus_key
from ..errors import WhisperLensError
from ..storage import atomic_path
from .harvest import (
    HarvestConfig,
    Harvester,
    collect_activations,
    model_for_mode,
    resolve_hooks,
)
from .labels import (
    SiteSummary,
    phone_labels,
    save_labels,
    summarize,
    summary_table,
    token_labels,
)
from .store import FeatureStore, site_filename

DEFAULT_SAE_LAYERS = (2, 3)


@dataclass
class FeatureBuildConfig:
    out: Path | str | None = None
    corpus: Path | str | None = None  # default: the default corpus
    corpus_set: str | None = "english"  # None: every clip
    clips: int | None = None  # the first N clips of the set
    harvest: HarvestConfig = field(default_factory=HarvestConfig)
    sae_layers: tuple[int, ...] = DEFAULT_SAE_LAYERS  # encoder blocks whose hook_resid_post gets a SAE
    sae_architecture: str = "topk"
    sae_max_vectors: int = 1_000_000
    sae_training_vectors: int = 3_000_000
    html: bool = True
    html_top: int = 24  # features per page with per-example players and spectrograms

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = Path("runs") / "features" / self.harvest.model / self.harvest.mode
        self.out = Path(self.out)

    def selection(self) -> CorpusSelection:
        return CorpusSelection(path=self.corpus, sets=self.corpus_set or (), clips=self.clips)


@dataclass
class FeatureBuildResult:
    store: FeatureStore
    summaries: list[SiteSummary]
    sae_metrics: dict[str, dict]
    seconds: dict[str, float]

    def summary_markdown(self) -> str:
        return summary_table(self.summaries)

    def save(self) -> None:
        root = self.store.root
        with atomic_path(root / "summary.json") as tmp:
            tmp.write_text(json.dumps({"sites": [asdict(s) | {"selective_share": s.selective_share} for s in self.summaries],
                                       "sae": self.sae_metrics, "seconds": self.seconds}, indent=2))
        with atomic_path(root / "summary.md") as tmp:
            tmp.write_text(self.summary_markdown() + "\n")


def build_features(config: FeatureBuildConfig, progress: bool = True) -> FeatureBuildResult:
    corpus = config.selection().open()
    harvest_config = config.harvest
    harvest_config.validate()
    seconds: dict[str, float] = {}
    model = model_for_mode(harvest_config.model, harvest_config.mode, harvest_config.device)
    resolve_hooks(model, harvest_config)  # fail on a bad hook or layer before any slow work
    sae_metrics: dict[str, dict] = {}
    if "sae" in harvest_config.bases:
        started = time.perf_counter()
        harvest_config.sae_paths, sae_metrics = ensure_saes(corpus, model, config, progress)
        seconds["sae"] = time.perf_counter() - started
    started = time.perf_counter()
    harvester = Harvester(corpus, harvest_config, model)
    result = harvester.run(config.out / "harvest-checkpoint.npz", progress)
    seconds["harvest"] = time.perf_counter() - started
    store = FeatureStore.save(result, config.out, str(getattr(corpus, "root", None)),
                              extra={"corpus_set": config.corpus_set, "sae": sae_metrics})
    started = time.perf_counter()
    summaries = label_store(store, model)
    seconds["labels"] = time.perf_counter() - started
    build = FeatureBuildResult(store, summaries, sae_metrics, seconds)
    build.save()
    if config.html:
        from .html import export_html

        started = time.perf_counter()
        export_html(store, corpus, top=config.html_top, progress=progress)
        seconds["html"] = time.perf_counter() - started
        build.save()
    (config.out / "harvest-checkpoint.npz").unlink(missing_ok=True)
    return build


def label_store(store: FeatureStore, model=None) -> list[SiteSummary]:
    summaries = []
    frames = store.frames
    tokenizer = None
    for site in store.sites:
        info = store.site_info(site)
        stats = store.stats(site)
        if info["hook"].startswith("decoder."):
            if tokenizer is None:
                from ..models.loading import tokenizer_for

                tokenizer = tokenizer_for(model if model is not None else model_for_mode(store.manifest["model"], "exact", "cpu"))
            save_labels(store.root, site, token_labels(stats, frames, tokenizer))
        else:
            labels = phone_labels(stats, frames)
            save_labels(store.root, site, labels)
            summaries.append(summarize(site, info["kind"], info["hook"], labels))
    return summaries


def site_summaries(store: FeatureStore) -> list[SiteSummary]:
    """Per-site summaries recomputed from the saved labels."""
    from .labels import PhoneLabel

    summaries = []
    for site in store.sites:
        info = store.site_info(site)
        if not info["hook"].startswith("decoder."):
            labels = [PhoneLabel(**label) for label in store.labels(site)]
            summaries.append(summarize(site, info["kind"], info["hook"], labels))
    return summaries


def sae_dir(out: Path, hook: str) -> Path:
    return Path(out) / "saes" / site_filename(hook)


def ensure_saes(corpus, model, config: FeatureBuildConfig, progress: bool) -> tuple[dict[str, str], dict[str, dict]]:
    """Train (or reuse) one SAE per chosen layer's residual stream; return paths and metrics."""
    from ..sae import SAETrainingConfig, train_sae
    from ..sae.format import sae_metadata

    hooks = [f"encoder.blocks.{layer}.hook_resid_post" for layer in config.sae_layers]
    resolve_hooks(model, HarvestConfig(model=config.harvest.model, hooks=tuple(hooks)))
    paths, metrics, missing = {}, {}, []
    for hook in hooks:
        path = sae_dir(config.out, hook)
        if (path / "cfg.json").exists() and sae_metadata(path).get("corpus_key") == _sae_training_key(corpus, config):
            paths[hook], metrics[hook] = str(path), _metrics_of(sae_metadata(path))
        else:
            missing.append(hook)
    if missing:
        vectors = collect_activations(corpus, model, missing, config.harvest.mode, config.sae_max_vectors,
                                      config.harvest.seed, config.harvest.batch_size, progress)
        for hook in missing:
            training = SAETrainingConfig(hook=hook, model_name=config.harvest.model, architecture=config.sae_architecture,
                                         training_vectors=config.sae_training_vectors, seed=config.harvest.seed)
            result = train_sae(vectors[hook], training)
            result.metrics["corpus_key"] = _sae_training_key(corpus, config)
            result.metrics["mode"] = config.harvest.mode
            path = result.save(sae_dir(config.out, hook))
            paths[hook], metrics[hook] = str(path), _metrics_of(result.metrics)
    return paths, metrics


def _metrics_of(metadata: dict) -> dict:
    keys = ("explained_variance", "l0", "dead_features", "d_sae", "eval_vectors", "training_vectors",
            "dead_features_in_training")
    return {key: metadata[key] for key in keys if key in metadata}


def _sae_training_key(corpus, config: FeatureBuildConfig) -> str:
    """What a trained SAE must match to be reused: its clips and its training settings."""
    import hashlib

    settings = f"{config.harvest.mode}|{config.sae_architecture}|{config.sae_max_vectors}|{config.sae_training_vectors}|{config.harvest.seed}"
    return hashlib.sha256((corpus_key(corpus) + settings).encode()).hexdigest()[:16]


def open_corpus_of_store(store: FeatureStore):
    """The corpus a store was built from, in the same clip order (clip indices refer to it)."""
    manifest = store.manifest
    corpus = CorpusSelection(path=manifest.get("corpus"), sets=manifest.get("corpus_set") or ()).open()
    ids = store.clip_ids
    if corpus.ids()[: len(ids)] != ids:
        raise WhisperLensError(f"{corpus.root}: its clips no longer match the store {store.root}; rebuild the store")
    return corpus[: len(ids)]
