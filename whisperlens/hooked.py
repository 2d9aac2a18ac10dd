"""HookedWhisper: openai-whisper's model with a hook point on every activation.

Each class subclasses openai-whisper's own, so module paths, state-dict keys and the
`decode` / `transcribe` / word-timestamp code are openai's, unchanged. The forward passes are
written out again only to thread activations through hook points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager, nullcontext

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
from whisper.transcribe import transcribe as transcribe_audio

from .errors import WhisperLensError
from .hook_names import resolve_alias
from .hooks import ActivationCache, HookedRootModule, HookFn, HookPoint, NameFilter
from .interventions import (
    AblateHeads,
    AttentionMask,
    Intervention,
    Patch,
    SkipLayers,
    band_mask,
    temporarily_set,
)

__all__ = ["HookedWhisper", "band_mask", "replace_hook", "resolve_alias"]


class HookedMultiHeadAttention(MultiHeadAttention):
    """Attention with hooks on q, k, v (per head), scores, pattern and z.

    The fused scaled-dot-product kernel is used unless a hook reads or writes the scores or
    the pattern, or openai's `disable_sdpa()` is active (word timestamps need the weights).
    `additive_masks` holds functions (query positions: a range, number of keys) -> [(head,) query, key]
    whose sum is added to the scores before the softmax; each intervention adds and removes its own.
    """

    def __init__(self, n_state: int, n_head: int):
        super().__init__(n_state, n_head)
        # q, k, v and z are (batch, position, head, d_head); under the kv-cache each k and v holds every key so far
        self.hook_q, self.hook_z = HookPoint(), HookPoint()
        self.hook_k, self.hook_v = HookPoint(cumulative=True), HookPoint(cumulative=True)
        # scores and pattern are (batch, head, query, key); a step's future keys are what the causal mask hides
        self.hook_scores = HookPoint(position_axis=2, key_axis=3, key_fill=float("-inf"))
        self.hook_pattern = HookPoint(position_axis=2, key_axis=3, key_fill=0.0)
        self.additive_masks: list = []

    def forward(self, x: Tensor, xa: Tensor | None = None, mask: Tensor | None = None,
                kv_cache: dict | None = None, query_offset: int = 0):
        """openai's forward, told where the queries start (the decoder's kv-cache offset) for masks' rows."""
        q = self.query(x)
        if kv_cache is None or xa is None or self.key not in kv_cache:
            k = self.key(x if xa is None else xa)  # with the kv-cache on, openai's hooks prepend the cached keys
            v = self.value(x if xa is None else xa)
        else:  # cross-attention keys and values, computed once per decoding attempt
            k, v = kv_cache[self.key], kv_cache[self.value]
        wv, qk = self.qkv_attention(q, k, v, mask, query_offset)
        return self.out(wv), qk

    def qkv_attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, query_offset: int = 0):
        n_ctx, n_keys = q.shape[1], k.shape[1]
        # keys may have a batch of 1 against n queries: openai's decode shares one clip's audio across best_of samples
        q, k, v = (x.view(*x.shape[:2], self.n_head, -1) for x in (q, k, v))
        d_head = q.shape[-1]
        q = self.hook_q(q).permute(0, 2, 1, 3)
        k = self.hook_k(k).permute(0, 2, 1, 3)
        v = self.hook_v(v).permute(0, 2, 1, 3)
        extra_mask = None
        if self.additive_masks:
            queries = range(query_offset, query_offset + n_ctx)
            extra_mask = sum(scores_mask(queries, n_keys) for scores_mask in self.additive_masks).to(q.dtype)
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

    def forward(self, x: Tensor, xa: Tensor | None = None, mask: Tensor | None = None,
                kv_cache: dict | None = None, query_offset: int = 0) -> Tensor:
        x = self.hook_resid_pre(x)
        if self.skip:
            return self.hook_resid_post(x)
        attn = self.attn(self.attn_ln(x), mask=mask, kv_cache=kv_cache, query_offset=query_offset)[0]
        x = self.hook_resid_mid(x + self.hook_attn_out(attn))
        if self.cross_attn is not None:
            cross = self.cross_attn(self.cross_attn_ln(x), xa, kv_cache=kv_cache, query_offset=query_offset)[0]
            x = self.hook_resid_mid_cross(x + self.hook_cross_attn_out(cross))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.mlp_ln(x))))


class HookedAudioEncoder(AudioEncoder):
    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
        super().__init__(n_mels, n_ctx, n_state, n_head, n_layer)
        self.blocks = nn.ModuleList([HookedResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)])
        # mel and the convolutions are (batch, channel, frame)
        self.hook_mel, self.hook_conv1, self.hook_conv2 = (HookPoint(position_axis=2) for _ in range(3))
        self.hook_embed, self.hook_ln_post = HookPoint(), HookPoint()
        self.allow_short = False
        self.calls = 0  # forward passes so far: a cache keeps each one's activations apart

    def forward(self, x: Tensor) -> Tensor:
        """x: log-mel (batch, n_mels, 3000); fewer frames only in short-clip mode."""
        self.calls += 1
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
        self.calls = 0  # decoding attempts so far (each starts with an empty kv-cache), teacher-forced runs included

    def forward(self, x: Tensor, xa: Tensor, kv_cache: dict | None = None) -> Tensor:
        offset = next(iter(kv_cache.values())).shape[1] if kv_cache else 0
        if offset == 0:
            self.calls += 1
        token_embeddings = self.hook_tok_embed(self.token_embedding(x))
        position_embeddings = self.hook_pos_embed(self.positional_embedding[None, offset : offset + x.shape[-1]])
        x = self.hook_embed((token_embeddings + position_embeddings).to(xa.dtype))
        for block in self.blocks:
            x = block(x, xa, mask=self.mask, kv_cache=kv_cache, query_offset=offset)
        return self.hook_logits(self.unembed(self.hook_ln_final(self.ln(x))))

    def unembed(self, x: Tensor) -> Tensor:
        """Logits from the final LayerNorm's output: the token embedding is tied to the unembedding."""
        return (x @ torch.transpose(self.token_embedding.weight.to(x.dtype), 0, 1)).float()


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

    def blocks(self, stack: str) -> nn.ModuleList:
        if stack not in ("encoder", "decoder"):
            raise WhisperLensError(f"stack must be 'encoder' or 'decoder', not {stack!r}")
        return getattr(self, stack).blocks

    def final_ln(self, stack: str) -> nn.LayerNorm:
        self.blocks(stack)  # checks the name
        return self.encoder.ln_post if stack == "encoder" else self.decoder.ln

    def unembed(self, x: Tensor) -> Tensor:
        return self.decoder.unembed(x)

    def call_index(self, hook: HookPoint) -> tuple[str, int]:
        stack = self.encoder if hook.name.startswith("encoder.") else self.decoder
        return hook.name.split(".", 1)[0], stack.calls

    # ---- running ----------------------------------------------------------------------------

    def run(self, mel: Tensor, tokens: Tensor | None = None, *, short_audio: bool = False) -> Tensor:
        """Encoder output for `mel`, or the decoder's logits for `tokens` when given.

        `mel` is (n_mels, frames) or (batch, n_mels, frames); `tokens` is (seq,) or (batch, seq).
        `short_audio=True` allows a short mel; False leaves the mode as it is.
        """
        mel = mel.to(self.device)
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        with self.short_audio() if short_audio else nullcontext():
            audio_features = self.encoder(mel.to(self._dtype))
        if tokens is None:
            return audio_features
        tokens = torch.as_tensor(tokens, device=self.device)
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(0)
        return self.decoder(tokens, audio_features)

    def run_with_hooks(self, mel: Tensor, tokens: Tensor | None = None, *, fwd_hooks=(), bwd_hooks=(),
                       interventions: Iterable[Intervention | Mapping] = (), short_audio: bool = False) -> Tensor:
        with self.hooks(fwd=fwd_hooks, bwd=bwd_hooks, interventions=interventions):
            return self.run(mel, tokens, short_audio=short_audio)

    def run_with_cache(self, mel: Tensor, tokens: Tensor | None = None, *, names_filter: NameFilter = None,
                       interventions: Iterable[Intervention | Mapping] = (), short_audio: bool = False,
                       detach: bool = True, device: str | torch.device | None = None) -> tuple[Tensor, ActivationCache]:
        """Run (encoder only, or encoder and decoder) and return (output, ActivationCache)."""
        with self.caching(names_filter, detach=detach, device=device, interventions=interventions) as cache:
            output = self.run(mel, tokens, short_audio=short_audio)
        return output, cache

    def transcribe(self, audio, *, interventions: Iterable[Intervention | Mapping] = (), **options) -> dict:
        """openai's `whisper.transcribe(model, audio, **options)`, with the interventions applied throughout."""
        with self.intervene(*interventions):
            return transcribe_audio(self, audio, **options)

    @property
    def _dtype(self) -> torch.dtype:
        return self.encoder.conv1.weight.dtype

    # ---- interventions: shorthands for the specs in whisperlens.interventions ----------------

    @contextmanager
    def short_audio(self, enabled: bool = True):
        """Let the encoder run on fewer than 1500 positions (short-clip mode)."""
        with temporarily_set([self.encoder], "allow_short", enabled):
            yield self

    def attention_mask(self, mask: Tensor, layers: Iterable[int] | None = None, heads: Iterable[int] | None = None,
                       stack: str = "encoder", cross: bool = False):
        """Add `mask` [(head,) query, key] to the attention scores of the chosen layers (default all) and heads."""
        return self.intervene(AttentionMask(stack, layers, heads, mask=mask, cross=cross))

    def skip_layers(self, layers: Iterable[int], stack: str = "encoder"):
        """Skip whole residual blocks: each passes its input through unchanged."""
        return self.intervene(SkipLayers(layers, stack))

    def ablate_heads(self, heads: Mapping[str, Iterable[int]], method: str = "zero"):
        """Zero (or mean-ablate) the output z of the given heads, e.g. {"encoder.blocks.1.attn": [0, 3]}."""
        return self.intervene(*(AblateHeads(attention, indices, method) for attention, indices in heads.items()))


def replace_hook(value: Tensor, positions: slice | Sequence[int] | None = None) -> HookFn:
    """A hook that overwrites an activation (or the given positions of it) with `value`."""
    return Patch("*", value=value, positions=positions).hook_fn()
