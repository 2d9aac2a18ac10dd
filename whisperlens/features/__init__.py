"""Features you can listen to: harvest neurons, SAE features and random directions over a
corpus, label them with the phones they fire on, and render pages to hear them.

    from whisperlens.features import FeatureBuildConfig, build_features, FeatureStore
    result = build_features(FeatureBuildConfig(corpus="corpus"))
    store = FeatureStore("runs/features/tiny.en/short")

Names resolve lazily: `whisperlens.features.cli` is imported by every CLI start, and the
harvest pulls in torch and numba.
"""

_EXPORTS = {
    "HarvestConfig": "harvest", "HarvestResult": "harvest", "Harvester": "harvest", "harvest": "harvest",
    "collect_activations": "harvest",
    "FeatureBuildConfig": "build", "FeatureBuildResult": "build", "build_features": "build",
    "FeatureStore": "store", "SiteStats": "stats",
    "NeuronBasis": "bases", "RandomBasis": "bases", "SAEBasis": "bases",
    "phone_labels": "labels", "token_labels": "labels",
    "ListeningConfig": "listening", "amplified_window": "listening", "spectrogram_figure": "listening",
    "export_html": "html", "AgreementConfig": "agreement", "measure_agreement": "agreement",
    "describe_feature": "show",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
