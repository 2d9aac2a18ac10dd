"""Whisper's own language identification on the language task's clips, to set beside the probes.

This is decoding (one decoder step on the start-of-transcript token, as openai-whisper's
`detect_language` does it), not reading activations, so it does not go through the activation
stream; it needs the full 30 s window the model was trained on, which the stream trims away.
"""

from __future__ import annotations

import numpy as np

BATCH_SIZE = 16


def detect_languages(model, clips: list, languages: list[str], progress=None) -> dict:
    """Accuracy of `whisper.detect_language` on `clips` (each with .language), over all of
    Whisper's languages and restricted to `languages` (the probe's classes)."""
    import torch
    from whisper.decoding import detect_language

    from ...audio import log_mel_batch

    dtype = next(model.parameters()).dtype
    free, restricted = [], []
    starts = range(0, len(clips), BATCH_SIZE)
    for start in progress(starts, desc="detect_language", unit="batch", leave=False) if progress else starts:
        batch = clips[start: start + BATCH_SIZE]
        mel = log_mel_batch([np.asarray(clip.audio, np.float32) for clip in batch], model.dims.n_mels)
        with torch.no_grad():
            _, probabilities = detect_language(model, mel.to(model.device, dtype))
        for probability in probabilities:
            free.append(max(probability, key=probability.get))
            restricted.append(max(languages, key=lambda language: probability.get(language, 0.0)))
    truth = np.array([clip.language for clip in clips])
    return {"accuracy_all_languages": round(float(np.mean(np.array(free) == truth)), 4),
            "accuracy_among_classes": round(float(np.mean(np.array(restricted) == truth)), 4),
            "clips": len(clips)}
