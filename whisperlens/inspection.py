"""Transcribing and inspecting audio on a hooked model: the library side of
`whisperlens transcribe`, `whisperlens inspect` and the main job's example step."""

from __future__ import annotations

from .errors import WhisperLensError
from .transcripts import word_timings


def transcribe_file(model, path: str, language: str | None, word_timestamps: bool) -> dict:
    """openai-whisper's transcribe of one file: {"file", "language", "text"}, and "words"
    ({"word", "start", "end"}, seconds) with word_timestamps."""
    import whisper

    from .audio import load_audio

    audio = load_audio(path)
    result = whisper.transcribe(model, audio, language=language, word_timestamps=word_timestamps, fp16=False, verbose=None)
    entry = {"file": path, "language": result["language"], "text": result["text"].strip()}
    if word_timestamps:
        entry["words"] = word_timings(result)
    return entry


def inspect_audio(model, audio, hooks: str, language: str | None):
    """Transcribe `audio` with the matching hooks cached; returns (text, cache)."""
    import whisper

    if not model.hook_names(hooks):
        raise WhisperLensError(f"no hook point matches {hooks!r}; try 'encoder.*' or see `whisperlens inspect FILE`")
    with model.caching(hooks) as cache:
        result = whisper.transcribe(model, audio, language=language, fp16=False, verbose=None)
    return result["text"].strip(), cache


def summary_rows(cache) -> list[tuple[str, str, float, float, float, float]]:
    """Per cached hook: (name, shape, mean, std, min, max) over its finite values. A hook whose
    firings do not join into one tensor (see ActivationCache.__getitem__) is summarized by its
    last firing."""
    rows = []
    for name in cache.keys():
        firings = cache.firings(name)
        try:
            tensor = cache[name]
            shape = "×".join(str(s) for s in tensor.shape)
        except WhisperLensError:
            tensor = firings[-1]
            shape = f"{len(firings)} firings, last " + "×".join(str(s) for s in tensor.shape)
        values = tensor.float()
        finite = values[values.isfinite()]
        if finite.numel() > 1:
            stats = (finite.mean().item(), finite.std().item(), finite.min().item(), finite.max().item())
        else:
            stats = (float("nan"),) * 4
        rows.append((name, shape, *stats))
    return rows
