"""Per-head locality of the encoder's self-attention: for every head of every layer, the mean
attention distance (the ViT paper's measure, in ms), the normalised entropy and the share of
attention mass within ±k frames, over the clip's own frames and, separately, over all 1500
positions with the padding included; and the rule that calls a head local or global.

"Clip frames" are the positions covering a clip's audio (`audio.encoder_positions`): there,
each query's attention is renormalised over the clip's keys, so the mass a head sends into the
padding does not count as distance. "With padding" takes every query and key as the model does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...audio import N_ENCODER_FRAMES, encoder_positions
from ...stream import FRAME_SECONDS
from ...transcripts import clip_batches, clip_mels

WINDOWS = (5, 10, 20, 50, 100)  # ±k frames whose share of the attention mass is reported
LOCAL_WINDOW = 10  # a head is local when it keeps at least LOCAL_SHARE of its mass within ±10 frames (±200 ms)
LOCAL_SHARE = 0.9  # on the clip frames: the seeds' claim is that such heads can be masked to k=10 at no cost
SCOPES = ("clip", "padded")
MEASURES = ("distance_ms", "entropy", *(f"within_{k}" for k in WINDOWS))


@dataclass
class HeadStats:
    """(scopes, measures, layers, heads): each measure's mean over queries, then over clips."""

    values: np.ndarray
    clips: int

    def get(self, scope: str, measure: str) -> np.ndarray:
        """(layers, heads)"""
        return self.values[SCOPES.index(scope), MEASURES.index(measure)]

    def local_heads(self) -> list[tuple[int, int]]:
        share = self.get("clip", f"within_{LOCAL_WINDOW}")
        return [(int(layer), int(head)) for layer, head in zip(*np.nonzero(share >= LOCAL_SHARE))]

    def global_heads(self) -> list[tuple[int, int]]:
        local = set(self.local_heads())
        n_layers, n_heads = self.values.shape[2:]
        return [(layer, head) for layer in range(n_layers) for head in range(n_heads) if (layer, head) not in local]


def pattern_measures(pattern: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """pattern (heads, queries, keys), rows summing to 1; distance (queries, keys) in frames ->
    (measures, heads): each measure's mean over the queries."""
    n_keys = pattern.shape[-1]
    entropy = -(pattern * pattern.clamp_min(1e-12).log()).sum(-1) / np.log(n_keys)
    rows = [(pattern * distance).sum(-1) * FRAME_SECONDS * 1000, entropy]
    rows += [(pattern * (distance <= k)).sum(-1) for k in WINDOWS]
    return torch.stack([row.mean(-1) for row in rows])


def clip_measures(pattern: torch.Tensor, n_frames: int, distance: torch.Tensor) -> torch.Tensor:
    """One clip's pattern (heads, 1500, 1500) -> (scopes, measures, heads)."""
    own = pattern[:, :n_frames, :n_frames]
    own = own / own.sum(-1, keepdim=True).clamp_min(1e-12)
    return torch.stack([pattern_measures(own, distance[:n_frames, :n_frames]), pattern_measures(pattern, distance)])


def head_locality(model, clips: Sequence, batch_size: int = 2, progress=None) -> HeadStats:
    """The measures of every encoder head, averaged over `clips` (each padded to 30 s, as in
    decoding). Each layer's pattern is reduced inside its hook, so no (batch, heads, 1500, 1500)
    tensor outlives its layer."""
    n_layers, n_heads = model.dims.n_audio_layer, model.dims.n_audio_head
    positions = torch.arange(N_ENCODER_FRAMES, device=model.device, dtype=torch.float32)
    distance = (positions[:, None] - positions[None, :]).abs()
    totals = torch.zeros(len(SCOPES), len(MEASURES), n_layers, n_heads, dtype=torch.float64)
    for batch in clip_batches(clips, batch_size, progress, desc="head locality"):
        lengths = [encoder_positions(len(clip.audio)) for clip in batch]

        def measure(pattern: torch.Tensor, hook, lengths=lengths) -> None:
            layer = int(hook.name.split(".")[2])
            for row, n_frames in enumerate(lengths):
                totals[..., layer, :] += clip_measures(pattern[row].float(), n_frames, distance).double().cpu()

        with torch.no_grad():
            model.run_with_hooks(clip_mels(model, batch), fwd_hooks=[("encoder.blocks.*.attn.hook_pattern", measure)])
    return HeadStats((totals / len(clips)).numpy().astype(np.float32), len(clips))
