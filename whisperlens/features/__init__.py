"""Features you can listen to: harvest neurons, SAE features and random directions over a
corpus, label them with the phones they fire on, and render pages to hear them.

    whisperlens features run --corpus CORPUS          # the study: store, labels, pages, result
    from whisperlens.features import FeatureStore
    store = FeatureStore("runs/features/tiny.en/short")

Names resolve lazily: the study modules are imported by every CLI start, and the harvest pulls
in torch and numba.
"""

_EXPORTS = {
    "HarvestConfig": "harvest", "HarvestResult": "harvest", "Harvester": "harvest", "harvest": "harvest",
    "collect_activations": "harvest",
    "FeaturesConfig": "config", "FeatureBuild": "build", "build_features": "build",
    "FeatureStore": "store", "SiteStats": "stats",
    "NeuronBasis": "bases", "RandomBasis": "bases", "SAEBasis": "bases",
    "phone_labels": "labels", "token_labels": "labels",
    "ListeningConfig": "listening", "amplified_window": "listening", "spectrogram_figure": "listening",
    "export_html": "html", "AgreementConfig": "agreement",
    "describe_feature": "show",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
