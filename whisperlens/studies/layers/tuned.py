"""The tuned lens (Belrose et al. 2023, "Eliciting latent predictions from transformers with the
tuned lens"): at every lens point an affine translator, initialised at the identity, maps the
residual stream before the decoder's final LayerNorm and the unembedding read it, trained to
minimise KL(final ‖ translated lens) on teacher-forced clips held out from the ones it is
evaluated on.

Written here in a few lines of torch, not with the `tuned-lens` package: that package wraps a
Hugging Face causal LM and finds its final norm and unembedding there; it knows neither
Whisper's `decoder.ln` nor its unembedding tied to the token embedding, nor a decoder that reads
audio. Here the readout is the cache's own `logits_from_resid`, the same as the logit lens's.

Cost: every step reads every point through the 51,864-way unembedding, forward and backward, so
it is bounded by a fixed number of steps of a fixed number of tokens, and the tokens kept for
training are capped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...errors import WhisperLensError
from ...hooks import ActivationCache
from .lens import point_vectors

BATCH_TOKENS = 64  # tokens per training step, read at every point
MAX_TRAINING_TOKENS = 16_384  # training tokens kept (a seeded sample beyond): memory is points x tokens x d_model
# The recipe's SGD with Nesterov momentum. Its learning rate of 1 diverged in trials on tiny.en (the training KL
# rose): Whisper's decoder residual stream is large, and the gradient of W grows with its square.
LEARNING_RATE = 0.01
# Not Adam: its steps are normalised, so a translator with nothing to learn (the last point's, whose gradient is
# rounding noise) still moves off the identity; SGD leaves it there.
MOMENTUM = 0.9


class Translators(nn.Module):
    """One affine map per point: x + x Wᵀ + b, with W and b zero at the start (the identity)."""

    def __init__(self, n_points: int, d_model: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_points, d_model, d_model))
        self.bias = nn.Parameter(torch.zeros(n_points, d_model))

    def forward(self, point: int, resid: torch.Tensor) -> torch.Tensor:
        return resid + resid @ self.weight[point].T + self.bias[point]


@dataclass
class TrainingSet:
    vectors: torch.Tensor  # (points, tokens, d) residual vectors at every point
    clips: int  # clips they come from


def held_out_clips(pool: Sequence, evaluated: Sequence, count: int, seed: int) -> list:
    """`count` clips of `pool` that are not among the `evaluated` clips (by id), drawn with the seed."""
    taken = {clip.id for clip in evaluated}
    candidates = [clip for clip in pool if clip.id not in taken]
    if count > len(candidates):
        raise WhisperLensError(f"--tuned-lens-clips {count}: the corpus has {len(candidates)} English clips "
                               "outside the evaluated selection to train on")
    chosen = np.random.default_rng(seed).choice(len(candidates), size=count, replace=False)
    return [candidates[i] for i in sorted(chosen)]


def training_set(model, clips: Sequence, batch_size: int, seed: int, progress=False) -> TrainingSet:
    """The clips' residual vectors at every point (at most MAX_TRAINING_TOKENS tokens, sampled with the seed)."""
    pieces = [batch.vectors.cpu() for batch in point_vectors(model, clips, batch_size, progress and "tuned lens data")]
    vectors = torch.cat(pieces, dim=1).clone()  # a normal tensor: the stream's are inference tensors, unfit for autograd
    if vectors.shape[1] > MAX_TRAINING_TOKENS:
        generator = torch.Generator().manual_seed(seed)
        vectors = vectors[:, torch.randperm(vectors.shape[1], generator=generator)[:MAX_TRAINING_TOKENS].sort().values]
    return TrainingSet(vectors, len(clips))


@contextlib.contextmanager
def frozen(model):
    """The model's weights out of autograd: the unembedding's gradient alone would cost another
    51,864 x d_model product per point and step."""
    wanted = [parameter.requires_grad for parameter in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(model.parameters(), wanted):
            parameter.requires_grad_(flag)


def kl_to_final(readout, resid: torch.Tensor, final_log_probs: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(final ‖ lens), the lens reading `resid` through `readout`."""
    log_probs = readout(resid).float().log_softmax(-1)
    return (final_log_probs.exp() * (final_log_probs - log_probs)).sum(-1).mean()


def train_translators(model, data: TrainingSet, steps: int, seed: int, batch_tokens: int = BATCH_TOKENS,
                      progress=None) -> tuple[Translators, list[float]]:
    """Fit every point's translator to the model's final distribution; returns the translators
    and the mean training KL over points at each step."""
    n_points, n_tokens, d_model = data.vectors.shape
    batch_tokens = min(batch_tokens, n_tokens)
    device = next(model.parameters()).device
    vectors = data.vectors.to(device=device, dtype=torch.float32)
    translators = Translators(n_points, d_model).to(device)
    optimizer = torch.optim.SGD(translators.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True)
    readout = ActivationCache(model).logits_from_resid
    generator = torch.Generator().manual_seed(seed)
    order, used, losses = torch.randperm(n_tokens, generator=generator), 0, []
    with frozen(model):
        for _ in progress(range(steps), desc="tuned lens") if progress else range(steps):
            if used + batch_tokens > n_tokens:  # an epoch is over: shuffle again
                order, used = torch.randperm(n_tokens, generator=generator), 0
            rows = order[used: used + batch_tokens].to(device)
            used += batch_tokens
            with torch.no_grad():
                final = readout(vectors[-1, rows]).float().log_softmax(-1)
            optimizer.zero_grad()
            step_loss = 0.0
            for point in range(n_points):  # one graph per point, freed at once: each holds rows x 51,864 floats
                loss = kl_to_final(readout, translators(point, vectors[point, rows]), final)
                loss.backward()
                step_loss += loss.item()
            optimizer.step()
            losses.append(step_loss / n_points)
    return translators.eval().requires_grad_(False), losses
