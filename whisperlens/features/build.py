"""The features study's steps: SAEs (if asked for), one harvest over the corpus, labels,
per-layer summaries against the random baseline, and the listening pages."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from ..corpus.selection import CorpusSelection, corpus_key
from ..errors import WhisperLensError
from .config import FeaturesConfig
from .harvest import (
    HarvestConfig,
    Harvester,
    choose_mode,
    collect_activations,
    model_for_mode,
    resolve_hooks,
)
from .labels import (
    SiteSummary,
    phone_labels,
    save_labels,
    summarize,
    token_labels,
)
from .store import FeatureStore, site_filename


@dataclass
class FeatureBuild:
    """What a build made: the store, per-site summaries, SAE metrics and the seconds each step took."""

    store: FeatureStore
    summaries: list[SiteSummary]
    sae_metrics: dict[str, dict]
    seconds: dict[str, float]


def build_features(config: FeaturesConfig, corpus, model, progress: bool = True) -> FeatureBuild:
    """SAEs (if asked for), one harvest over `corpus`, labels and listening pages, into the store.

    Each step resumes: trained SAEs are reused when their training key matches, and the harvest
    continues from its checkpoint.
    """
    out = config.store_dir()
    harvest_config = config.harvest_config()
    seconds: dict[str, float] = {}
    resolve_hooks(model, harvest_config)  # fail on a bad hook or layer before any slow work
    sae_metrics: dict[str, dict] = {}
    if "sae" in config.bases:
        started = time.perf_counter()
        sae_paths, sae_metrics = ensure_saes(corpus, model, config, progress)
        harvest_config = config.harvest_config(sae_paths)
        seconds["sae"] = time.perf_counter() - started
    started = time.perf_counter()
    if config.executor.is_ray:
        from .sharded import harvest_sharded

        # the driver chooses the mode once: workers that each probed the matmuls could disagree
        harvest_config = replace(harvest_config, mode=choose_mode(harvest_config.mode))
        result = harvest_sharded(corpus, config.corpus, harvest_config, model, config.executor, out / "harvest-shards.npz",
                                 progress, config.model_request())
    else:
        result = Harvester(corpus, harvest_config, model).run(out / "harvest-checkpoint.npz", progress)
    seconds["harvest"] = time.perf_counter() - started
    store = FeatureStore.save(result, out, str(getattr(corpus, "root", None)),
                              extra={"corpus_selection": config.corpus.to_dict(), "sae": sae_metrics})
    started = time.perf_counter()
    summaries = label_store(store, model)
    seconds["labels"] = time.perf_counter() - started
    if config.html:
        from .html import export_html

        started = time.perf_counter()
        export_html(store, corpus, top=config.html_top, progress=progress)
        seconds["html"] = time.perf_counter() - started
    (out / "harvest-checkpoint.npz").unlink(missing_ok=True)
    (out / "harvest-shards.npz").unlink(missing_ok=True)
    return FeatureBuild(store, summaries, sae_metrics, seconds)


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


def sae_dir(out: Path, hook: str) -> Path:
    return Path(out) / "saes" / site_filename(hook)


def ensure_saes(corpus, model, config: FeaturesConfig, progress: bool) -> tuple[dict[str, str], dict[str, dict]]:
    """Train (or reuse) one SAE per chosen layer's residual stream; return paths and metrics."""
    from ..sae import train_sae
    from ..sae.format import sae_metadata

    hooks = [f"encoder.blocks.{layer}.hook_resid_post" for layer in config.sae_layers]
    resolve_hooks(model, HarvestConfig(model=config.model.model, hooks=tuple(hooks)))
    paths, metrics, missing = {}, {}, []
    for hook in hooks:
        path = sae_dir(config.store_dir(), hook)
        if (path / "cfg.json").exists() and sae_metadata(path).get("corpus_key") == _sae_training_key(corpus, config):
            paths[hook], metrics[hook] = str(path), _metrics_of(sae_metadata(path))
        else:
            missing.append(hook)
    if missing:
        if config.executor.is_ray:
            from .sharded import collect_activations_sharded

            vectors = collect_activations_sharded(corpus, config.corpus, model, config.model_request(), missing,
                                                  choose_mode(config.mode),
                                                  config.sae_max_vectors, config.seed, config.batch_size, config.executor,
                                                  progress)
        else:
            vectors = collect_activations(corpus, model, missing, config.mode, config.sae_max_vectors,
                                          config.seed, config.batch_size, progress)
        for hook in missing:
            result = train_sae(vectors[hook], _sae_training_config(config, hook))
            result.metrics["corpus_key"] = _sae_training_key(corpus, config)
            result.metrics["mode"] = config.mode
            path = result.save(sae_dir(config.store_dir(), hook))
            paths[hook], metrics[hook] = str(path), _metrics_of(result.metrics)
    return paths, metrics


def _metrics_of(metadata: dict) -> dict:
    keys = ("explained_variance", "l0", "dead_features", "d_sae", "eval_vectors", "training_vectors",
            "dead_features_in_training", "firing_frequency", "auxk_steps", "auxk_dead_window_steps")
    return {key: metadata[key] for key in keys if key in metadata}


def _sae_training_config(config: FeaturesConfig, hook: str):
    from ..sae import SAETrainingConfig

    return SAETrainingConfig(hook=hook, model_name=config.model.model, architecture=config.sae_architecture,
                             training_vectors=config.sae_training_vectors, seed=config.seed)


def _sae_training_key(corpus, config: FeaturesConfig) -> str:
    """What a trained SAE must match to be reused: its clips and its training settings (every
    field of SAETrainingConfig, so a changed default retrains)."""
    import hashlib
    import json
    from dataclasses import asdict

    training = {k: v for k, v in asdict(_sae_training_config(config, "")).items() if k != "hook"}
    settings = f"{config.mode}|{config.sae_max_vectors}|{json.dumps(training, sort_keys=True)}"
    return hashlib.sha256((corpus_key(corpus) + settings).encode()).hexdigest()[:16]


def open_corpus_of_store(store: FeatureStore):
    """The corpus a store was built from, in the same clip order (clip indices refer to it)."""
    corpus = CorpusSelection.from_dict(store.manifest["corpus_selection"]).open()
    ids = store.clip_ids
    if corpus.ids()[: len(ids)] != ids:
        raise WhisperLensError(f"{corpus.root}: its clips no longer match the store {store.root}; rebuild the store")
    return corpus[: len(ids)]
