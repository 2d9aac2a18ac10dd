"""The dashboard's figures: matplotlib PNGs made per request, returned as bytes. Each page shows
the numbers a figure draws beside it."""

from __future__ import annotations

import io

import numpy as np

from ..audio import SAMPLE_RATE, SAMPLES_PER_ENCODER_FRAME


def png_bytes(figure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def _figure(width: float, height: float):
    from ..study.figures import new_figure

    return new_figure(width, height)


def histogram_png(lower_edges: np.ndarray, counts: np.ndarray, title: str) -> bytes:
    """Frames per activation bin (log count), bins labelled by their lower edge."""
    figure, axes = _figure(6, 2.4)
    shown = np.flatnonzero(counts)
    if len(shown):
        span = slice(shown[0], shown[-1] + 1)
        axes.bar(np.arange(span.start, span.stop), counts[span], width=0.9, color="#4c72b0")
        ticks = np.arange(span.start, span.stop, max(1, (span.stop - span.start) // 8))
        axes.set_xticks(ticks, [_edge(lower_edges[t]) for t in ticks], fontsize=7)
    axes.set_yscale("log")
    axes.set(xlabel="activation (bin's lower edge)", ylabel="frames", title=title)
    axes.title.set_fontsize(9)
    figure.tight_layout()
    return png_bytes(figure)


def _edge(value: float) -> str:
    return "≤0" if not np.isfinite(value) else f"{value:.3g}"


def _spectrogram(samples: np.ndarray, width: float, height: float):
    """A figure whose one axes, edge to edge, is the audio's log-mel spectrogram (time in seconds
    across): an x position on the image is a time in the audio, in proportion."""
    import torch
    import whisper.audio

    figure, _ = _figure(width, height)
    figure.clear()
    axes = figure.add_axes((0, 0, 1, 1))
    seconds = len(samples) / SAMPLE_RATE
    mel = whisper.audio.log_mel_spectrogram(torch.as_tensor(samples, dtype=torch.float32)).numpy()
    axes.imshow(mel, origin="lower", aspect="auto", extent=(0, seconds, 0, mel.shape[0]), cmap="magma")
    axes.set_axis_off()
    axes.set_xlim(0, seconds)
    return figure, axes, seconds


def clip_png(samples: np.ndarray) -> bytes:
    """A whole clip's log-mel spectrogram, edge to edge: the page selects a span on it by position."""
    figure, _, _ = _spectrogram(samples, 12, 1.2)
    return png_bytes(figure)


def window_png(samples: np.ndarray, start_sample: int, trace: np.ndarray, centre_sample: int) -> bytes:
    """An audio window's log-mel spectrogram, the feature's activation over it (white) and the
    example's frame (dashed). The axes fill the image edge to edge, so a click's x position is
    its time in the window: the page seeks the audio there."""
    figure, axes, seconds = _spectrogram(samples, 4, 1.4)
    times = (np.arange(len(trace)) + 0.5) * SAMPLES_PER_ENCODER_FRAME / SAMPLE_RATE - start_sample / SAMPLE_RATE
    inside = (times >= 0) & (times <= seconds)
    twin = axes.twinx()
    twin.plot(times[inside], trace[inside], color="white", linewidth=1.5)
    twin.set_ylim(min(0.0, float(trace.min(initial=0))), max(float(trace.max(initial=0)) * 1.1, 1e-6))
    axes.axvline((centre_sample - start_sample) / SAMPLE_RATE, color="cyan", linestyle="--", linewidth=0.8)
    twin.set_axis_off()
    axes.set_xlim(0, seconds)  # the twin's plot shares the time axis and may have widened it
    return png_bytes(figure)


def attention_png(patterns: np.ndarray, frame: int, half: int) -> bytes:
    """A panel per layer: each head's attention from query `frame` to the frames ±`half` around it."""
    layers, heads, n = patterns.shape
    low, high = max(0, frame - half), min(n, frame + half + 1)
    figure, _ = _figure(7, 0.9 * layers + 0.6)
    figure.clear()
    grid = figure.subplots(layers, 1, squeeze=False)[:, 0]
    for layer, axes in enumerate(grid):
        axes.imshow(patterns[layer, :, low:high], aspect="auto", cmap="viridis", vmin=0, vmax=1,
                    extent=(low - 0.5, high - 0.5, heads - 0.5, -0.5), interpolation="nearest")
        axes.axvline(frame, color="red", linewidth=0.8)
        axes.set_ylabel(f"layer {layer}\nhead", fontsize=7)
        axes.set_yticks(range(heads))
        axes.tick_params(labelsize=6)
    grid[-1].set_xlabel(f"key frame (query frame {frame}, red)", fontsize=7)
    figure.tight_layout()
    return png_bytes(figure)
