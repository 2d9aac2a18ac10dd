"""The encoder passes the study shares: each block's input from one clean pass, the encoder
output resumed from a block's input under interventions (a mask on later blocks does not rerun
the earlier ones), the padding-only audio's output, and the reference's teacher-forced
log-probability given any encoder output."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ...greedy import CrossKV, decoder_cache
from ...stream import clip_tokens


def block_inputs(model, mels: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One clean pass: each encoder block's input (its hook_resid_pre) and the encoder output, each (batch, 1500, d)."""
    names = [f"encoder.blocks.{i}.hook_resid_pre" for i in range(model.dims.n_audio_layer)]
    with torch.no_grad():
        output, cache = model.run_with_cache(mels, names_filter=names)
    return [cache[name] for name in names], output


def encode_from(model, inputs: Sequence[torch.Tensor], first_block: int, interventions: Sequence = (),
                clean: torch.Tensor | None = None) -> torch.Tensor:
    """The encoder output with `interventions` on, from block `first_block`'s clean input: exact
    when they act on that block and later ones only. ln_post's hook fires, as in a full pass.
    With no intervention, `clean` (the clean pass's output) when given."""
    if not interventions and clean is not None:
        return clean
    x = inputs[first_block]
    with torch.no_grad(), model.intervene(*interventions):
        for block in model.encoder.blocks[first_block:]:
            x = block(x)
        return model.encoder.hook_ln_post(model.encoder.ln_post(x))


def banded_encoder_output(model, x: torch.Tensor, half_width: int, chunk: int = 64) -> torch.Tensor:
    """The encoder output from the first block's input `x` with every head of every layer limited to
    ±`half_width` positions: what `AttentionMask(half_width=...)` gives (a test compares them), with
    each chunk of queries attending only to the keys its band reaches, not to all 1500 under a mask
    of -inf: under k=10 that is 1/15 of the attention's work. No hook fires; the study's band sweep
    needs none."""
    n = x.shape[1]
    with torch.no_grad():
        for block in model.encoder.blocks:
            attention = block.attn
            normed = block.attn_ln(x)
            q, k, v = (part.view(*x.shape[:2], attention.n_head, -1).transpose(1, 2)
                       for part in (attention.query(normed), attention.key(normed), attention.value(normed)))
            z = torch.empty_like(q)
            for start in range(0, n, chunk):
                stop, first = min(n, start + chunk), max(0, start - half_width)
                last = min(n, stop + half_width)
                offsets = torch.arange(start, stop)[:, None] - torch.arange(first, last)[None, :]
                band = torch.zeros(offsets.shape, dtype=q.dtype).masked_fill(offsets.abs() > half_width, float("-inf"))
                z[:, :, start:stop] = F.scaled_dot_product_attention(q[:, :, start:stop], k[:, :, first:last],
                                                                     v[:, :, first:last], attn_mask=band)
            x = x + attention.out(z.transpose(1, 2).flatten(start_dim=2))
            x = x + block.mlp(block.mlp_ln(x))
        return model.encoder.ln_post(x)


def teacher_tokens(tokenizer, texts: Sequence[str], max_tokens: int) -> tuple[torch.Tensor, list[int]]:
    """The texts' teacher-forced token sequences, padded with end-of-text, and their lengths."""
    sequences = [clip_tokens(tokenizer, text, max_tokens) for text in texts]
    lengths = [len(s) for s in sequences]
    tokens = torch.full((len(texts), max(lengths)), tokenizer.eot, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence)
    return tokens, lengths


def reference_log_prob(model, kv: CrossKV, tokens: torch.Tensor, lengths: Sequence[int], prompt: int) -> np.ndarray:
    """Per clip: the mean log-probability of its reference tokens (text and end-of-text), teacher-forced
    on the encoder output whose cross-attention keys and values are `kv` (`greedy.cross_kv`)."""
    device = kv[0][0].device
    with torch.no_grad():
        logits = model.decoder(tokens.to(device), kv[0][0][:, :1], kv_cache=decoder_cache(model, kv))
        log_probs = logits.float().log_softmax(-1)
    predicted = log_probs[:, :-1].gather(-1, tokens[:, 1:, None].to(device))[..., 0].cpu()
    return np.array([float(predicted[row, prompt - 1: n - 1].mean()) for row, n in enumerate(lengths)], dtype=np.float32)
