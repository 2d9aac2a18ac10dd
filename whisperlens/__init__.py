"""whisperlens: mechanistic interpretability for OpenAI's Whisper."""

from .errors import WhisperLensError

__version__ = "0.1.0"

# Lazy: `import whisperlens` stays fast for the CLI's error paths and for the corpus builder.
_EXPORTS = {
    "load_model": "models.loading",
    "HookedWhisper": "hooked",
    "ActivationCache": "hooks",
    "ActivationStream": "stream",
    "CorpusSelection": "corpus.selection",
    "AttentionMask": "interventions",
    "SkipLayers": "interventions",
    "AblateHeads": "interventions",
    "Patch": "interventions",
    "Steer": "interventions",
}

__all__ = ["WhisperLensError", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(name)
