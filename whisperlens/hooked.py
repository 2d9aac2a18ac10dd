"""HookedWhisper: openai-whisper's model with a hook point on every activation.

Each class subclasses openai-whisper's own, so module paths, state-dict keys and the
`decode` / `transcribe` / word-timestamp code are openai's, unchanged. The forward passes are
written out again only to thread activations through hook points.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from whisper.model import (
    AudioEncoder,
    Linear,
    ModelDimensions,
    MultiHeadAttention,
    ResidualAttentionBlock,
    TextDecoder,
    Whisper,
)

from .errors import WhisperLensError
from .hooks import ActivationCache, HookedRootModule, HookFn, HookPoint, NameFilter

# Names used in the seed write-ups (openai's module paths) that resolve to hook points.
_ALIASES = [(re.compile(r"^((?:en|de)coder\.blocks\.\d+)\.mlp\.1$"), r"\1.mlp.hook_post")]


def resolve_alias(name: str) -> str:
    for pattern, replacement in _ALIASES:
        name = pattern.sub(replacement, name)
    return name


class HookedMultiHeadAttention(MultiHeadAttention):
    """Attention with hooks on q, k, v (per head), scores, pattern and z.

    The fused scaled-dot-product kernel is used unless a hook reads or writes the scores or
    the pattern, or openai's `disable_sdpa()` is active (word timestamps need the weights).
    `additive_mask`, indexed [(head,) query, key], is added to the scores before the softmax.
    """

    def __init__(self, n_state: int, n_head: int):
        super().__init__(n_state, n_head)
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_scores, self.hook_pattern, self.hook_z = HookPoint(), HookPoint(), HookPoint()
        self.additive_mask: Optional[Tensor] = None

    def qkv_attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None):
        n_batch, n_ctx, n_state = q.shape
        n_keys = k.shape[1]
        d_head = n_state // self.n_head
        q = self.hook_q(q.view(n_batch, n_ctx, self.n_head, d_head)).permute(0, 2, 1, 3)
        k = self.hook_k(k.view(n_batch, n_keys, self.n_head, d_head)).permute(0, 2, 1, 3)
        v = self.hook_v(v.view(n_batch, n_keys, self.n_head, d_head)).permute(0, 2, 1, 3)
        extra_mask = self._extra_mask(n_ctx, n_keys, q.dtype)
        needs_weights = (
            not MultiHeadAttention.use_sdpa or self.hook_scores.has_hooks or self.hook_pattern.has_hooks
        )
        if not needs_weights:
            causal = mask is not None and n_ctx > 1
            if extra_mask is None:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            else:
                if causal:
                    extra_mask = extra_mask + mask[n_keys - n_ctx : n_keys, :n_keys].to(q.dtype)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=extra_mask)
            qk = None
        else:
            scale = d_head**-0.25
            qk = (q * scale) @ (k * scale).transpose(-1, -2)
            if mask is not None:
                qk = qk + mask[:n_ctx, :n_ctx]  # as openai: with the kv-cache, n_ctx is 1 and this is 0
            if extra_mask is not None:
                qk = qk + extra_mask
            qk = self.hook_scores(qk.float())
            weights = self.hook_pattern(F.softmax(qk, dim=-1).to(q.dtype))
            out = weights @ v
            qk = qk.detach()
        z = self.hook_z(out.permute(0, 2, 1, 3))
        return z.flatten(start_dim=2), qk

    def _extra_mask(self, n_ctx: int, n_keys: int, dtype: torch.dtype) -> Optional[Tensor]:
        if self.additive_mask is None:
            return None
        mask = self.additive_mask
        if mask.shape[-2] > 1:  # rows are query positions; with a kv-cache the queries are the last n_ctx
            start = max(n_keys - n_ctx, 0) if mask.shape[-2] >= n_keys else 0
            mask = mask[..., start : start + n_ctx, :]
        return mask[..., :n_keys].to(dtype)


class HookedMLP(nn.Sequential):
    """openai's Sequential(Linear, GELU, Linear), so `mlp.0` / `mlp.2` weights keep their names."""

    def __init__(self, n_state: int, n_mlp: int):
        super().__init__(Linear(n_state, n_mlp), nn.GELU(), Linear(n_mlp, n_state))
        self.hook_pre, self.hook_post = HookPoint(), HookPoint()

    def forward(self, x: Tensor) -> Tensor:
        return self[2](self.hook_post(self[1](self.hook_pre(self[0](x)))))


class HookedResidualAttentionBlock(ResidualAttentionBlock):
    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False):
        super().__init__(n_state, n_head, cross_attention)
        self.attn = HookedMultiHeadAttention(n_state, n_head)
        self.cross_attn = HookedMultiHeadAttention(n_state, n_head) if cross_attention else None
        self.mlp = HookedMLP(n_state, 4 * n_state)
        self.hook_resid_pre, self.hook_resid_mid, self.hook_resid_post = HookPoint(), HookPoint(), HookPoint()
        self.hook_attn_out, self.hook_mlp_out = HookPoint(), HookPoint()
        if cross_attention:
            self.hook_cross_attn_out, self.hook_resid_mid_cross = HookPoint(), HookPoint()
        self.skip = False  # a skipped block passes its residual stream through unchanged

    def forward(self, x: Tensor, xa: Optional[Tensor] = None, mask: Optional[Tensor] = None,
                kv_cache: Optional[dict] = None) -> Tensor:
        x = self.hook_resid_pre(x)
        if self.skip:
            return self.hook_resid_post(x)
        x = self.hook_resid_mid(x + self.hook_attn_out(self.attn(self.attn_ln(x), mask=mask, kv_cache=kv_cache)[0]))
        if self.cross_attn is not None:
            cross = self.cross_attn(self.cross_attn_ln(x), xa, kv_cache=kv_cache)[0]
            x = self.hook_resid_mid_cross(x + self.hook_cross_attn_out(cross))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.mlp_ln(x))))


class HookedAudioEncoder(AudioEncoder):
    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__(n_mels, n_ctx, n_state, n_head, n_layer)
        self.blocks = nn.ModuleList([HookedResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)])
        self.hook_mel, self.hook_conv1, self.hook_conv2 = HookPoint(), HookPoint(), HookPoint()
        self.hook_embed, self.hook_ln_post = HookPoint(), HookPoint()
        self.allow_short = False

    def forward(self, x: Tensor) -> Tensor:
        """x: log-mel (batch, n_mels, 3000); fewer frames only in short-clip mode."""
        x = self.hook_mel(x)
        x = self.hook_conv1(F.gelu(self.conv1(x)))
        x = self.hook_conv2(F.gelu(self.conv2(x))).permute(0, 2, 1)
        n_ctx = self.positional_embedding.shape[0]
        if x.shape[1] != n_ctx and not (self.allow_short and x.shape[1] < n_ctx):
            raise WhisperLensError(
                f"the encoder takes {2 * n_ctx} mel frames (30 s), got {2 * x.shape[1]}; "
                "pad the audio, or run in short-clip mode (short_audio=True)"
            )
        # Short-clip mode slices the positional embedding, as whisper.cpp's audio_ctx does.
        x = self.hook_embed((x + self.positional_embedding[: x.shape[1]]).to(x.dtype))
        for block in self.blocks:
            x = block(x)
        return self.hook_ln_post(self.ln_post(x))


class HookedTextDecoder(TextDecoder):
    def __init__(self, n_vocab: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__(n_vocab, n_ctx, n_state, n_head, n_layer)
        self.blocks = nn.ModuleList(
            [HookedResidualAttentionBlock(n_state, n_head, cross_attention=True) for _ in range(n_layer)]
        )
        self.hook_tok_embed, self.hook_pos_embed, self.hook_embed = HookPoint(), HookPoint(), HookPoint()
        self.hook_ln_final, self.hook_logits = HookPoint(), HookPoint()

    def forward(self, x: Tensor, xa: Tensor, kv_cache: Optional[dict] = None) -> Tensor:
        offset = next(iter(kv_cache.values())).shape[1] if kv_cache else 0
        token_embeddings = self.hook_tok_embed(self.token_embedding(x))
        position_embeddings = self.hook_pos_embed(self.positional_embedding[offset : offset + x.shape[-1]])
        x = self.hook_embed((token_embeddings + position_embeddings).to(xa.dtype))
        for block in self.blocks:
            x = block(x, xa, mask=self.mask, kv_cache=kv_cache)
        x = self.hook_ln_final(self.ln(x))
        return self.hook_logits((x @ torch.transpose(self.token_embedding.weight.to(x.dtype), 0, 1)).float())


class HookedWhisper(Whisper, HookedRootModule):
    """A Whisper model whose activations can be read, cached, replaced and masked.

    It is an openai-whisper `Whisper`: `whisper.transcribe(model, ...)`, `model.decode(...)`
    and word timestamps work on it unchanged.
    """

    def __init__(self, dims: ModelDimensions):
        nn.Module.__init__(self)
        self.dims = dims
        self.encoder = HookedAudioEncoder(
            dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head, dims.n_audio_layer
        )
        self.decoder = HookedTextDecoder(
            dims.n_vocab, dims.n_text_ctx, dims.n_text_state, dims.n_text_head, dims.n_text_layer
        )
        all_heads = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool)
        all_heads[dims.n_text_layer // 2 :] = True
        self.register_buffer("alignment_heads", all_heads.to_sparse(), persistent=False)
        self.name = "whisper"
        self.setup_hooks()

    def set_alignment_heads_from_pairs(self, pairs: Iterable[Sequence[int]]) -> None:
        heads = torch.zeros(self.dims.n_text_layer, self.dims.n_text_head, dtype=torch.bool)
        for layer, head in pairs:
            heads[layer, head] = True
        self.register_buffer("alignment_heads", heads.to_sparse(), persistent=False)

    # ---- running ----------------------------------------------------------------------------

    def run(self, mel: Tensor, tokens: Optional[Tensor] = None, *, short_audio: bool = False) -> Tensor:
        """Encoder output for `mel`, or the decoder's logits for `tokens` when given.

        `mel` is (n_mels, frames) or (batch, n_mels, frames); `tokens` is (seq,) or (batch, seq).
        """
        mel = mel.to(self.device)
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        with self.short_audio(short_audio):
            audio_features = self.encoder(mel.to(self._dtype))
        if tokens is None:
            return audio_features
        tokens = torch.as_tensor(tokens, device=self.device)
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0)
        return self.decoder(tokens, audio_features)

    def run_with_hooks(self, mel: Tensor, tokens: Optional[Tensor] = None, *, fwd_hooks=(), bwd_hooks=(),
                       short_audio: bool = False) -> Tensor:
        with self.hooks(fwd=fwd_hooks, bwd=bwd_hooks):
            return self.run(mel, tokens, short_audio=short_audio)

    def run_with_cache(self, mel: Tensor, tokens: Optional[Tensor] = None, *, names_filter: NameFilter = None,
                       short_audio: bool = False, detach: bool = True,
                       device: str | torch.device | None = None) -> tuple[Tensor, ActivationCache]:
        """Run (encoder only, or encoder and decoder) and return (output, ActivationCache)."""
        with self.caching(names_filter, detach=detach, device=device) as cache:
            output = self.run(mel, tokens, short_audio=short_audio)
        return output, cache

    @property
    def _dtype(self) -> torch.dtype:
        return self.encoder.conv1.weight.dtype

    # ---- interventions ----------------------------------------------------------------------

    @contextmanager
    def short_audio(self, enabled: bool = True):
        """Let the encoder run on fewer than 1500 positions (short-clip mode)."""
        previous, self.encoder.allow_short = self.encoder.allow_short, enabled
        try:
            yield self
        finally:
            self.encoder.allow_short = previous

    def _blocks(self, stack: str) -> nn.ModuleList:
        if stack not in ("encoder", "decoder"):
            raise WhisperLensError(f"stack must be 'encoder' or 'decoder', not {stack!r}")
        return getattr(self, stack).blocks

    @contextmanager
    def attention_mask(self, mask: Tensor, layers: Optional[Iterable[int]] = None, heads: Optional[Iterable[int]] = None,
                       stack: str = "encoder", cross: bool = False):
        """Add `mask` [query, key] to the attention scores of the chosen layers (default all) and heads."""
        blocks = self._blocks(stack)
        chosen = list(range(len(blocks))) if layers is None else list(layers)
        if heads is not None:
            per_head = torch.zeros((self.dims.n_audio_head if stack == "encoder" else self.dims.n_text_head, 1, 1))
            per_head[list(heads)] = 1.0
            mask = torch.where(per_head.bool(), mask.unsqueeze(0), torch.zeros((), dtype=mask.dtype))
        modules = [blocks[i].cross_attn if cross else blocks[i].attn for i in chosen]
        previous = [m.additive_mask for m in modules]
        try:
            for m in modules:
                m.additive_mask = mask.to(self.device)
            yield self
        finally:
            for m, p in zip(modules, previous):
                m.additive_mask = p

    @contextmanager
    def skip_layers(self, layers: Iterable[int], stack: str = "encoder"):
        """Skip whole residual blocks: each passes its input through unchanged."""
        blocks = [self._blocks(stack)[i] for i in layers]
        try:
            for block in blocks:
                block.skip = True
            yield self
        finally:
            for block in blocks:
                block.skip = False

    @contextmanager
    def ablate_heads(self, heads: Mapping[str, Iterable[int]]):
        """Zero the output (z) of the given heads, e.g. {"encoder.blocks.1.attn": [0, 3]}."""
        hooks = []
        for module_name, head_indices in heads.items():
            indices = list(head_indices)

            def zero_heads(z: Tensor, hook: HookPoint, indices=indices) -> Tensor:
                z = z.clone()
                z[:, :, indices] = 0
                return z

            hooks.append((f"{module_name}.hook_z", zero_heads))
        with self.hooks(fwd=hooks):
            yield self


def band_mask(n_positions: int, half_width: int) -> Tensor:
    """0 where |query - key| <= half_width, -inf elsewhere: the ±k attention band."""
    positions = torch.arange(n_positions)
    inside = (positions[:, None] - positions[None, :]).abs() <= half_width
    return torch.zeros(n_positions, n_positions).masked_fill(~inside, float("-inf"))


def replace_hook(value: Tensor, positions: slice | Sequence[int] | None = None) -> HookFn:
    """A hook that overwrites an activation (or the given positions of it) with `value`."""

    def replace(activation: Tensor, hook: HookPoint) -> Tensor:
        if positions is None:
            return value.to(activation.dtype).expand_as(activation)
        patched = activation.clone()
        patched[:, positions] = value.to(activation.dtype)
        return patched

    return replace
