"""The batched log-mel equals openai-whisper's per-clip log-mel, in both encoder modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whisperlens import WhisperLensError
from whisperlens.audio import log_mel, log_mel_batch, validate_audio


@pytest.mark.parametrize("short", [False, True])
def test_batched_log_mel_equals_whisper_per_clip(speech, short):
    clips = [speech["fox"][:32000], speech["kitchen"][:20000], 0.01 * speech["weather"][:31000]]
    batch = log_mel_batch(clips, short=short)
    longest_frames = 2 * -(-32000 // 320)
    assert batch.shape == (3, 80, longest_frames if short else 3000)
    for row, clip in enumerate(clips):
        reference = log_mel(clip)[:, : batch.shape[-1]]  # whisper.audio.log_mel_spectrogram on 30 s
        assert torch.equal(batch[row], reference), row


@pytest.mark.parametrize("short", [False, True])
def test_log_mel_batch_in_chunks_equals_one_chunk(speech, short, monkeypatch):
    """Long batches are transformed a chunk at a time (memory); the values do not depend on it, and
    in short mode every chunk is cut to the longest clip of the whole batch."""
    import whisperlens.audio

    clips = [speech["fox"][:32000], speech["kitchen"][:20000], speech["weather"][:9000], speech["fox"][:15000]]
    whole = log_mel_batch(clips, short=short)
    monkeypatch.setattr(whisperlens.audio, "MEL_CHUNK", 3)
    assert torch.equal(log_mel_batch(clips, short=short), whole)


def test_log_mel_rejects_audio_over_30_seconds():
    with pytest.raises(WhisperLensError, match="at most 30 s"):
        log_mel_batch([np.zeros(31 * 16000, np.float32)])


def test_validate_audio_rejects_bad_arrays():
    with pytest.raises(WhisperLensError, match="mono"):
        validate_audio(np.zeros((2, 100)))
    with pytest.raises(WhisperLensError, match="no audio"):
        validate_audio(np.zeros(0))
    with pytest.raises(WhisperLensError, match="NaN"):
        validate_audio(np.array([0.0, np.inf]))
