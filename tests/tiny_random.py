"""A HookedWhisper with random weights and tiny dimensions: built in milliseconds, no weights to load.

Its vocabulary is the English one (51864 tokens), so openai's tokenizer and `decode` work on it;
everything else is small: width 64, 2 heads, 2 encoder and 2 decoder blocks, 16 audio positions
(32 mel frames) and 16 text positions.
"""

from __future__ import annotations

import torch
from whisper.model import ModelDimensions

from whisperlens.hooked import HookedWhisper

DIMS = ModelDimensions(n_mels=80, n_audio_ctx=16, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
                       n_vocab=51864, n_text_ctx=16, n_text_state=64, n_text_head=2, n_text_layer=2)
N_SHORT = 10  # encoder positions in short-clip mode: 20 mel frames


def tiny_random_model(seed: int = 0) -> HookedWhisper:
    torch.manual_seed(seed)
    model = HookedWhisper(DIMS)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("ln.weight") or name.endswith("ln_post.weight"):
                parameter.normal_(1.0, 0.1)  # LayerNorm gains around 1
            else:  # includes the decoder's positional embedding, which openai leaves uninitialised
                parameter.normal_(0.0, 0.2)
    return model.eval()


def random_inputs(seed: int = 1, batch: int = 2, n_tokens: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """A short mel (batch, 80, 2 * N_SHORT) and tokens (batch, n_tokens)."""
    generator = torch.Generator().manual_seed(seed)
    mel = torch.randn(batch, DIMS.n_mels, 2 * N_SHORT, generator=generator)
    tokens = torch.randint(0, 50000, (batch, n_tokens), generator=generator)
    return mel, tokens


def decode_with_kv_cache(model: HookedWhisper, audio_features: torch.Tensor, tokens: torch.Tensor,
                         first: int = 2) -> torch.Tensor:
    """Logits for `tokens` fed as openai's decoding does: the first few together, then one per step."""
    kv_cache, handles = model.install_kv_cache_hooks()
    try:
        steps = [model.decoder(tokens[:, :first], audio_features, kv_cache=kv_cache)]
        steps += [model.decoder(tokens[:, i : i + 1], audio_features, kv_cache=kv_cache) for i in range(first, tokens.shape[1])]
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(steps, dim=1)
