"""whisperlens: mechanistic interpretability for OpenAI's Whisper."""

from .errors import WhisperLensError

__version__ = "0.1.0"

__all__ = ["WhisperLensError", "load_model", "HookedWhisper", "ActivationCache"]


def __getattr__(name):
    # Lazy: `import whisperlens` stays fast for the CLI's error paths and for the corpus builder.
    if name == "load_model":
        from .models.loading import load_model

        return load_model
    if name == "HookedWhisper":
        from .hooked import HookedWhisper

        return HookedWhisper
    if name == "ActivationCache":
        from .hooks import ActivationCache

        return ActivationCache
    raise AttributeError(name)
