"""Relevance maps over the encoder's 1500 positions, and their faithfulness.

- `seed`: the seeds' encoder-only variant. R = I, then R += Ā·R for each encoder layer, with
  Ā = mean over heads of (∇A ⊙ A)⁺ and the gradient of the sum of the encoder's outputs.
  Row i says which input positions output position i draws on.
- `chefer`: Chefer et al. 2021's rules for encoder-decoder models, for each target token
  (gradient of its logit): R_aa = I and R_aa += Ā·R_aa over the encoder layers; R_tt = I,
  R_ta = 0; per decoder block, self-attention R_tt += Ā·R_tt and R_ta += Ā·R_ta, then
  cross-attention R_ta += R̄_ttᵀ·Ā·R̄_aa, where R̄ is R with I taken off, each row divided by its
  sum, and I put back (the reference code's `handle_residual`). A token's map is its row of R_ta.
- `rollout`: Abnar & Zuidema's attention rollout of the encoder, R = Π (½·mean_h A + ½·I); its
  rows sum to 1.
- `cross_attention`: the last decoder block's cross-attention, mean over heads, at each target.

A clip's frame scores (what the faithfulness test orders frames by) are, over its own n frames:
the sum of the rows i < n of `seed` and `rollout` (how much the clip's outputs draw on each
position), and the sum over the reference's tokens of `chefer` and `cross_attention`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...audio import encoder_positions
from ...greedy import DECODE_ROWS, CrossKV, concat_kv, replace_kv_positions
from ...models.loading import tokenizer_for
from ...transcripts import clip_mels
from .encode import reference_log_prob, teacher_tokens

MAPS = ("seed", "chefer", "rollout", "cross_attention")
FRACTIONS = tuple(round(0.1 * i, 1) for i in range(11))  # shares of a clip's frames removed
PATTERNS = "*.attn.hook_pattern"  # every self- and cross-attention pattern (cross_attn ends in .attn too)


def gradient_weighted(pattern: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Ā: the mean over heads of (∇A ⊙ A), negative values set to 0. (1, heads, q, k) -> (q, k)."""
    return (gradient * pattern).clamp(min=0).mean(dim=1)[0]


def normalised_residual(relevance: torch.Tensor) -> torch.Tensor:
    """R̄: R − I with each row divided by its sum (a row with nothing off the identity stays 0), then + I."""
    eye = torch.eye(relevance.shape[-1], device=relevance.device)
    off = relevance - eye
    sums = off.sum(-1, keepdim=True)
    return torch.where(sums > 0, off / sums.clamp_min(1e-12), torch.zeros_like(off)) + eye


def propagate_self(relevance: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """R += Ā·R for each layer's Ā in turn."""
    for weight in weights:
        relevance = relevance + weight @ relevance
    return relevance


class PatternRecorder:
    """Keeps every attention pattern of a forward pass that runs with gradients, by hook name."""

    def __init__(self):
        self.patterns: dict[str, torch.Tensor] = {}

    def __call__(self, pattern: torch.Tensor, hook) -> None:
        if torch.is_grad_enabled() and not pattern.requires_grad:
            # the model's weights are frozen, so a pattern that depends on no input (the first
            # decoder block's self-attention reads only token embeddings) is a constant to autograd;
            # marked here, before the model reads it, its gradient is still the one relevance needs
            pattern.requires_grad_(True)
        self.patterns[hook.name] = pattern

    def names(self, stack: str, kind: str = "attn") -> list[str]:
        return [name for name in self.patterns if name.startswith(stack) and name.split(".")[-2] == kind]


def seed_relevance(model, mel: torch.Tensor) -> torch.Tensor:
    """The seeds' (1500, 1500) encoder relevance for one clip's mel (1, n_mels, 3000)."""
    recorder = PatternRecorder()
    with torch.enable_grad(), model.hooks(fwd=[("encoder.blocks.*.attn.hook_pattern", recorder)]):
        features = model.run(mel.clone().requires_grad_(True))
        names = recorder.names("encoder")
        gradients = torch.autograd.grad(features.sum(), [recorder.patterns[name] for name in names])
    weights = [gradient_weighted(recorder.patterns[name].detach(), gradient) for name, gradient in zip(names, gradients)]
    return propagate_self(torch.eye(features.shape[1], device=features.device), weights)


def rollout(model, mel: torch.Tensor) -> torch.Tensor:
    """The encoder's attention rollout (1500, 1500) for one clip's mel: rows sum to 1."""
    recorder = PatternRecorder()
    with torch.no_grad(), model.hooks(fwd=[("encoder.blocks.*.attn.hook_pattern", recorder)]):
        model.run(mel)
    relevance = None
    for name in recorder.names("encoder"):
        mixed = 0.5 * recorder.patterns[name][0].mean(0) + 0.5 * torch.eye(recorder.patterns[name].shape[-1])
        relevance = mixed if relevance is None else mixed @ relevance
    return relevance


def token_relevance(model, mel: torch.Tensor, tokens: torch.Tensor, targets: Sequence[int],
                    row=None) -> dict[str, torch.Tensor]:
    """For one clip (mel (1, n_mels, 3000), tokens (1, T)) and the positions `targets` (each predicts
    the next token): Chefer's map and the last block's raw cross-attention, each (targets, 1500).
    `row` computes a target's Chefer row from its Ā (default `chefer_row`)."""
    row = row or chefer_row
    recorder = PatternRecorder()
    with torch.enable_grad(), model.hooks(fwd=[(f"*.blocks.*.{kind}.hook_pattern", recorder) for kind in ("attn", "cross_attn")]):
        logits = model.run(mel.clone().requires_grad_(True), tokens)
        encoder, decoder = recorder.names("encoder"), recorder.names("decoder")
        crosses = recorder.names("decoder", "cross_attn")
        order = encoder + [name for block in zip(decoder, crosses) for name in block]  # self, then cross, per block
        chefer = []
        for position in targets:
            target = logits[0, position, tokens[0, position + 1]]
            gradients = torch.autograd.grad(target, [recorder.patterns[name] for name in order], retain_graph=True)
            weights = {name: gradient_weighted(recorder.patterns[name].detach(), g) for name, g in zip(order, gradients)}
            chefer.append(row(weights, encoder, decoder, crosses, position))
    cross = recorder.patterns[crosses[-1]].detach()[0].mean(0)[list(targets)]
    return {"chefer": torch.stack(chefer), "cross_attention": cross}


def chefer_row(weights: dict[str, torch.Tensor], encoder: list[str], decoder: list[str], crosses: list[str],
               position: int) -> torch.Tensor:
    """One target's R_ta row from its layers' Ā, by the rules in the module's docstring.

    R_aa (1500 × 1500) is never formed, because the cross-attention rule uses it only as Ā_cross·R̄_aa:
    with R_aa = (I + Ā_L)…(I + Ā_1) and R̄_aa = D⁻¹(R_aa − I) + I (D: the row sums of R_aa − I),
    Ā_cross·R̄_aa = (Ā_cross·D⁻¹)·R_aa − Ā_cross·D⁻¹ + Ā_cross, and X·R_aa is X pushed through the
    factors: tokens × 1500 × 1500 per layer instead of 1500³ (`dense_chefer_row`, the rule as
    written, is the test's reference)."""
    layers = [weights[name] for name in encoder]
    ones = torch.ones(layers[0].shape[-1], 1)
    row_sums = propagate_self(ones, layers)[:, 0] - 1  # of R_aa − I
    inverse = torch.where(row_sums > 0, 1 / row_sums.clamp_min(1e-12), torch.zeros_like(row_sums))
    cross = torch.stack([weights[name] for name in crosses])  # (blocks, tokens, 1500)
    scaled = cross * inverse
    pushed = scaled
    for weight in reversed(layers):
        pushed = pushed + pushed @ weight
    cross_bar = pushed - scaled + cross  # Ā_cross·R̄_aa per decoder block
    return _decoder_rules(weights, decoder, cross_bar, position)


def dense_chefer_row(weights: dict[str, torch.Tensor], encoder: list[str], decoder: list[str], crosses: list[str],
                     position: int) -> torch.Tensor:
    """`chefer_row` with R_aa and R̄_aa formed as the rules write them (the reference it is tested against)."""
    audio_bar = normalised_residual(propagate_self(torch.eye(weights[encoder[0]].shape[-1]), [weights[n] for n in encoder]))
    return _decoder_rules(weights, decoder, torch.stack([weights[name] @ audio_bar for name in crosses]), position)


def _decoder_rules(weights: dict[str, torch.Tensor], decoder: list[str], cross_bar: torch.Tensor, position: int) -> torch.Tensor:
    """R_ta's row `position` from the decoder blocks' self-attention Ā and each block's Ā_cross·R̄_aa."""
    n_tokens = weights[decoder[0]].shape[-1]
    text, text_audio = torch.eye(n_tokens), torch.zeros(n_tokens, cross_bar.shape[-1])
    for self_name, block_cross in zip(decoder, cross_bar):
        text_audio = text_audio + weights[self_name] @ text_audio
        text = text + weights[self_name] @ text
        text_audio = text_audio + normalised_residual(text).T @ block_cross
    return text_audio[position]


@dataclass
class ClipMaps:
    """One clip's maps: frame scores (maps, n) over its n frames and the per-token maps (targets, 1500)."""

    scores: np.ndarray
    tokens: dict[str, np.ndarray]
    seed: np.ndarray  # (1500, 1500) float16, for the heat map
    targets: list[int]  # token positions whose next token the maps explain


def _clip_inputs(model, clip, tokenizer):
    """A clip's mel, its reference's teacher-forced tokens and the positions of its text tokens (not
    the end-of-text), each of which predicts the next."""
    tokens, lengths = teacher_tokens(tokenizer, [clip.text], model.dims.n_text_ctx)
    prompt = len(tokenizer.sot_sequence_including_notimestamps)
    return clip_mels(model, [clip]), tokens.to(model.device), list(range(prompt - 1, lengths[0] - 2))


def chefer_token_maps(model, clip, tokenizer=None) -> np.ndarray:
    """The clip's Chefer rows (text tokens × 1500), what relevance targeting reads."""
    mel, tokens, targets = _clip_inputs(model, clip, tokenizer or tokenizer_for(model))
    return token_relevance(model, mel, tokens, targets)["chefer"].cpu().numpy()


def clip_maps(model, clip, tokenizer=None) -> ClipMaps:
    mel, tokens, targets = _clip_inputs(model, clip, tokenizer or tokenizer_for(model))
    n = encoder_positions(len(clip.audio))
    seed = seed_relevance(model, mel)
    per_token = token_relevance(model, mel, tokens, targets)
    columns = [seed[:n, :n], per_token["chefer"][:, :n], rollout(model, mel)[:n, :n], per_token["cross_attention"][:, :n]]
    scores = np.stack([rows.sum(0).cpu().numpy() for rows in columns])  # in MAPS order
    return ClipMaps(scores.astype(np.float32), {k: v.cpu().numpy() for k, v in per_token.items()},
                    seed.cpu().numpy().astype(np.float16), targets)


def removal_orders(scores: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Frame orders for the perturbation test: each map most- and least-relevant first, and one random order."""
    orders = {}
    for name, row in zip(MAPS, scores, strict=True):
        ranked = np.argsort(-row, kind="stable")
        orders[f"{name} most"], orders[f"{name} least"] = ranked, ranked[::-1]
    orders["random"] = rng.permutation(scores.shape[1])
    return orders


def perturbation_curves(model, clip, kv: CrossKV, padding_kv: CrossKV, orders: dict[str, np.ndarray],
                        fractions: Sequence[float] = FRACTIONS, tokenizer=None,
                        batch_size: int = DECODE_ROWS) -> dict[str, np.ndarray]:
    """Per order: the reference's mean teacher-forced log-probability after replacing the first
    fraction of its frames (in that order) with the padding-only audio's output, at each fraction.
    `kv` is the clip's cross-attention keys and values (batch of 1), edited row by row as
    `removal.run_edits` does."""
    tokenizer = tokenizer or tokenizer_for(model)
    tokens, lengths = teacher_tokens(tokenizer, [clip.text], model.dims.n_text_ctx)
    prompt = len(tokenizer.sot_sequence_including_notimestamps)
    edited = [sorted(order[: round(fraction * len(order))].tolist()) for order in orders.values() for fraction in fractions]
    values = []
    for start in range(0, len(edited), batch_size):
        chunk = concat_kv([replace_kv_positions(kv, padding_kv, 0, positions) for positions in edited[start: start + batch_size]])
        n = chunk[0][0].shape[0]
        values.append(reference_log_prob(model, chunk, tokens.expand(n, -1), lengths * n, prompt))
    curves = np.concatenate(values).reshape(len(orders), len(fractions))
    return dict(zip(orders, curves, strict=True))


def area(curve: np.ndarray, fractions: Sequence[float] = FRACTIONS) -> float:
    """The area under a log-probability curve over the fraction removed (trapezoids)."""
    x = np.asarray(fractions)
    return float(((curve[1:] + curve[:-1]) / 2 * np.diff(x)).sum())
