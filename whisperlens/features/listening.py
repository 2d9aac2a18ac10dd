"""Hearing a feature: the audio around an example's frame, with the frame made louder, and a
mel spectrogram with the feature's activation drawn over it.

The amplified version multiplies the window by a gain envelope that peaks at the example's
frame (a Gaussian bump over a quieter floor), the method of the seed write-ups: the sound
the feature responds to stands out against its context.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME

AUDIO_FORMATS = {"mp3": ("MP3", "MPEG_LAYER_III", "audio/mpeg"), "wav": ("WAV", "PCM_16", "audio/wav"),
                 "flac": ("FLAC", "PCM_16", "audio/flac")}


@dataclass(frozen=True)
class ListeningConfig:
    half_window: float = 0.5  # seconds each side of the example's frame
    floor_gain: float = 0.25  # the envelope's level away from the frame (1.0 at the frame)
    bump_seconds: float = 0.05  # the Gaussian bump's standard deviation
    audio_format: str = "mp3"  # mp3 plays in every browser and is a tenth of the size of wav


DEFAULT_LISTENING = ListeningConfig()
EXAMPLES_SHOWN = 5  # top examples a page plays (and draws the activation of) for every feature


def frame_centre_sample(position: int) -> int:
    return int((position + 0.5) * SAMPLES_PER_ENCODER_FRAME)


def window(audio: np.ndarray, position: int, config: ListeningConfig = DEFAULT_LISTENING) -> tuple[np.ndarray, int]:
    """The plain audio around `position` and the sample where the window starts."""
    centre = frame_centre_sample(position)
    half = int(config.half_window * SAMPLE_RATE)
    start, end = max(0, centre - half), min(len(audio), centre + half)
    return np.asarray(audio[start:end], dtype=np.float32), start


def gain_envelope(n_samples: int, centre: int, config: ListeningConfig = DEFAULT_LISTENING) -> np.ndarray:
    t = (np.arange(n_samples) - centre) / SAMPLE_RATE
    bump = np.exp(-0.5 * (t / config.bump_seconds) ** 2)
    return (config.floor_gain + (1 - config.floor_gain) * bump).astype(np.float32)


def amplified_window(audio: np.ndarray, position: int, config: ListeningConfig = DEFAULT_LISTENING) -> np.ndarray:
    plain, start = window(audio, position, config)
    louder = plain * gain_envelope(len(plain), frame_centre_sample(position) - start, config)
    peak = np.abs(louder).max(initial=0.0)
    return louder * (0.9 / peak) if peak > 0 else louder


def encode_audio(samples: np.ndarray, audio_format: str = "mp3") -> bytes:
    import soundfile

    container, subtype, _ = AUDIO_FORMATS[audio_format]
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(samples, -1, 1), SAMPLE_RATE, format=container, subtype=subtype)
    return buffer.getvalue()


def write_audio(path: Path, samples: np.ndarray, audio_format: str = "mp3") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_audio(samples, audio_format))
    return path


def data_uri(samples: np.ndarray, audio_format: str = "mp3") -> str:
    mime = AUDIO_FORMATS[audio_format][2]
    return f"data:{mime};base64," + base64.b64encode(encode_audio(samples, audio_format)).decode()


def spectrogram_figure(examples: list[dict], title: str, path: Path, config: ListeningConfig = DEFAULT_LISTENING) -> Path:
    """One panel per example: the window's log-mel spectrogram, the feature's activation over
    it (white line, right axis) and the example's frame (dashed).

    Each example is {"audio", "position", "trace" (activation per encoder frame of the clip),
    "caption"}.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    import whisper.audio

    fig, axes = plt.subplots(1, len(examples), figsize=(2.6 * len(examples), 2.3), squeeze=False)
    for ax, example in zip(axes[0], examples, strict=True):
        plain, start = window(example["audio"], example["position"], config)
        mel = whisper.audio.log_mel_spectrogram(torch.as_tensor(plain)).numpy()
        seconds = len(plain) / SAMPLE_RATE
        ax.imshow(mel, origin="lower", aspect="auto", extent=(0, seconds, 0, mel.shape[0]), cmap="magma")
        trace = np.asarray(example["trace"], dtype=np.float32)
        frames = np.arange(len(trace))
        times = (frames + 0.5) * SAMPLES_PER_ENCODER_FRAME / SAMPLE_RATE - start / SAMPLE_RATE
        inside = (times >= 0) & (times <= seconds)
        twin = ax.twinx()
        twin.plot(times[inside], trace[inside], color="white", linewidth=1.4)
        twin.set_ylim(min(0.0, float(trace.min(initial=0))), max(float(trace.max(initial=0)) * 1.1, 1e-6))
        twin.tick_params(labelsize=6)
        centre = (frame_centre_sample(example["position"]) - start) / SAMPLE_RATE
        ax.axvline(centre, color="cyan", linestyle="--", linewidth=0.8)
        ax.set_title(example["caption"], fontsize=7)
        ax.set_yticks([])
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def listening_order(stats, frames, f: int, top_phone: str | None, examples: int = 3) -> list[tuple[str, int]]:
    """Which of the examples a page plays (the top EXAMPLES_SHOWN) to hear first, as (why, rank):
    the strongest; the strongest under another phone than the label's (does the label hold?);
    the weakest under the label's phone (how far down it holds)."""
    from .harvest import PHONES

    clips, positions = stats.top_clips[f, :EXAMPLES_SHOWN], stats.top_positions[f, :EXAMPLES_SHOWN]
    filled = [rank for rank in range(len(clips)) if clips[rank] >= 0]
    if not filled:
        return []
    phones = [PHONES[p] for p in frames.phone_at(clips[filled], positions[filled])]
    order = [("the strongest example", filled[0])]
    other = next((rank for rank, phone in zip(filled, phones, strict=True) if phone != top_phone), None)
    if other is not None:
        order.append((f"the strongest not on {top_phone} (does the label hold?)", other))
    same = [rank for rank, phone in zip(filled, phones, strict=True) if phone == top_phone and rank != filled[0]]
    if same:
        order.append((f"the weakest top example on {top_phone} (how far down it holds)", same[-1]))
    return order[:examples]
