"""Audio in: decoding any format with PyAV, resampling to 16 kHz, validation, log-mel.

openai-whisper's own `load_audio` shells out to an ffmpeg binary, which a fresh machine
does not have; PyAV bundles FFmpeg's libraries, so it decodes the same formats in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import WhisperLensError

if TYPE_CHECKING:
    import torch

# openai-whisper's constants (whisper.audio), written out so that importing this module does not
# load torch: corpus-building worker processes use them and start faster without it.
SAMPLE_RATE = 16_000
N_SAMPLES = 30 * SAMPLE_RATE
HOP_LENGTH = 160  # 10 ms per mel frame
SAMPLES_PER_ENCODER_FRAME = 2 * HOP_LENGTH  # the encoder's stride-2 conv: 20 ms per position
N_ENCODER_FRAMES = N_SAMPLES // SAMPLES_PER_ENCODER_FRAME  # 1500


def encoder_positions(n_samples: int) -> int:
    """How many encoder positions cover a clip of `n_samples` samples: one per 20 ms begun,
    at least one (an empty clip still gets a position) and at most 1500 (Whisper's 30 s)."""
    return min(N_ENCODER_FRAMES, max(1, -(-n_samples // SAMPLES_PER_ENCODER_FRAME)))


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any audio file PyAV reads into mono float32 at `sample_rate`.

    Raises WhisperLensError for a missing file, a file that is not audio, empty audio,
    or non-finite samples.
    """
    import av  # imported here: PyAV loads FFmpeg's libraries, which costs start-up time

    path = Path(path)
    if not path.exists():
        raise WhisperLensError(f"{path}: no such file")
    if path.is_dir():
        raise WhisperLensError(f"{path}: is a directory, not an audio file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise WhisperLensError(f"{path}: has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(stream):
                chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(frame))
            chunks.extend(r.to_ndarray().reshape(-1) for r in resampler.resample(None))
    except WhisperLensError:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise WhisperLensError(f"{path}: not a readable audio file ({error.__class__.__name__})") from None
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return validate_audio(audio, str(path))


def validate_audio(audio: np.ndarray, source: str = "audio") -> np.ndarray:
    """Check that a waveform is a non-empty 1-D array of finite samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise WhisperLensError(f"{source}: expected mono audio (1-D), got shape {audio.shape}")
    if audio.size == 0:
        raise WhisperLensError(f"{source}: contains no audio samples")
    if not np.isfinite(audio).all():
        raise WhisperLensError(f"{source}: contains NaN or infinite samples")
    return audio


def log_mel(audio: np.ndarray | torch.Tensor, n_mels: int = 80, *, short: bool = False,
            device: str | torch.device | None = None) -> torch.Tensor:
    """Whisper's log-mel spectrogram of one clip of at most 30 s.

    Exact mode (default) pads to 30 s: 3000 mel frames, the encoder's native 1500 positions.
    Short mode keeps only the frames that cover the clip (rounded up to an even count, so the
    stride-2 conv lines up). The mel is computed on the padded clip in both modes, so the
    speech frames are identical; only the encoder's view of the padding differs.
    """
    import torch
    import whisper.audio

    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.shape[-1] > N_SAMPLES:
        raise WhisperLensError(f"clip is {audio.shape[-1] / SAMPLE_RATE:.1f} s long; log_mel takes at most 30 s")
    n_samples = audio.shape[-1]
    mel = whisper.audio.log_mel_spectrogram(
        whisper.audio.pad_or_trim(audio, N_SAMPLES), n_mels, device=device
    )[:, : 2 * N_ENCODER_FRAMES]
    if short:
        mel = mel[:, : 2 * encoder_positions(n_samples)]
    return mel


def log_mel_batch(clips: list[np.ndarray], n_mels: int = 80, *, short: bool = False,
                  device: str | torch.device | None = None) -> torch.Tensor:
    """Log-mels of several clips at once, each equal to `log_mel(clip, short=short)`.

    Written out rather than calling `whisper.audio.log_mel_spectrogram` per clip: that function
    normalises by the maximum over everything it is given, so it cannot take a batch, and it
    always transforms 30 s. Here one batched STFT covers only the frames needed (in short mode, the
    clips plus one FFT window of silence, which gives the same values, as the STFT is frame-local),
    with a per-clip maximum: about 50x less work for 2 s clips. tests/test_audio.py checks equality.
    In short mode all clips are cut to the longest clip's length.
    """
    import torch

    longest = max(len(clip) for clip in clips)
    if longest > N_SAMPLES:
        raise WhisperLensError(f"clip is {longest / SAMPLE_RATE:.1f} s long; log_mel takes at most 30 s")
    n_positions = encoder_positions(longest) if short else N_ENCODER_FRAMES
    # In chunks: the complex STFT of one 30 s clip is 4.8 MB, so hundreds at once (the patching
    # study's 640 clips) held gigabytes; every clip's values are its own, so chunks change nothing.
    return torch.cat([_log_mel_rows(clips[start: start + MEL_CHUNK], n_mels, n_positions, device)
                      for start in range(0, len(clips), MEL_CHUNK)])


MEL_CHUNK = 32  # clips transformed together by log_mel_batch


def _log_mel_rows(clips: list[np.ndarray], n_mels: int, n_positions: int, device) -> torch.Tensor:
    import torch
    import whisper.audio

    n_samples = min(n_positions * SAMPLES_PER_ENCODER_FRAME + whisper.audio.N_FFT + HOP_LENGTH, N_SAMPLES)
    audio = torch.zeros(len(clips), n_samples, device=device)
    for row, clip in enumerate(clips):
        audio[row, : len(clip)] = torch.as_tensor(clip, dtype=torch.float32)
    window = torch.hann_window(whisper.audio.N_FFT, device=audio.device)
    stft = torch.stft(audio, whisper.audio.N_FFT, HOP_LENGTH, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(whisper.audio.mel_filters(audio.device, n_mels) @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
    return ((log_spec + 4.0) / 4.0)[..., : 2 * n_positions]
