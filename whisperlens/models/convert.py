"""Weight layouts: CTranslate2 and Hugging Face names to openai-whisper's, and back.

Every loader produces an openai-format checkpoint, {"dims": ..., "model_state_dict": ...},
which is what `whisper.load_model` itself reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from whisper.model import ModelDimensions

from ..errors import WhisperLensError

# openai per-block module -> (Hugging Face per-layer module) for linear and norm layers.
_HF_BLOCK_NAMES = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "cross_attn.query": "encoder_attn.q_proj",
    "cross_attn.key": "encoder_attn.k_proj",
    "cross_attn.value": "encoder_attn.v_proj",
    "cross_attn.out": "encoder_attn.out_proj",
    "cross_attn_ln": "encoder_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_HF_TOP_NAMES = {
    "encoder.conv1": "model.encoder.conv1",
    "encoder.conv2": "model.encoder.conv2",
    "encoder.ln_post": "model.encoder.layer_norm",
    "decoder.ln": "model.decoder.layer_norm",
    "decoder.token_embedding": "model.decoder.embed_tokens",
}
_HF_POSITIONS = {
    "encoder.positional_embedding": "model.encoder.embed_positions.weight",
    "decoder.positional_embedding": "model.decoder.embed_positions.weight",
}


def openai_to_hf_name(name: str) -> str:
    if name in _HF_POSITIONS:
        return _HF_POSITIONS[name]
    module, _, param = name.rpartition(".")
    for ours, theirs in _HF_TOP_NAMES.items():
        if module == ours:
            return f"{theirs}.{param}"
    stack, _, rest = module.partition(".blocks.")
    index, _, block_module = rest.partition(".")
    if stack in ("encoder", "decoder") and block_module in _HF_BLOCK_NAMES:
        return f"model.{stack}.layers.{index}.{_HF_BLOCK_NAMES[block_module]}.{param}"
    raise KeyError(name)


# ---- CTranslate2 --------------------------------------------------------------------------

def _ln(prefix: str) -> dict[str, str]:
    return {"weight": f"{prefix}/gamma", "bias": f"{prefix}/beta"}


def ct2_to_openai(variables: Mapping[str, np.ndarray], source: str) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    """Map a CTranslate2 WhisperSpec's variables onto openai-whisper's state dict.

    The fused self-attention QKV and cross-attention KV matrices are split exactly; the key
    biases CTranslate2 stores as zeros are dropped (openai's key projection has no bias).
    """
    try:
        return _ct2_to_openai(variables)
    except KeyError as error:
        raise WhisperLensError(f"{source}: not a Whisper CTranslate2 model (missing {error.args[0]})") from None


def _ct2_to_openai(v: Mapping[str, np.ndarray]) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    n_audio_layer = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("ffn/linear_0/weight"))
    n_text_layer = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("ffn/linear_0/weight"))
    n_state = v["encoder/conv1/weight"].shape[0]
    dims = ModelDimensions(
        n_mels=v["encoder/conv1/weight"].shape[1],
        n_audio_ctx=v["encoder/position_encodings/encodings"].shape[0],
        n_audio_state=n_state,
        n_audio_head=int(v["encoder/num_heads"]),
        n_audio_layer=n_audio_layer,
        n_vocab=v["decoder/embeddings/weight"].shape[0],
        n_text_ctx=v["decoder/position_encodings/encodings"].shape[0],
        n_text_state=v["decoder/embeddings/weight"].shape[1],
        n_text_head=int(v["decoder/num_heads"]),
        n_text_layer=n_text_layer,
    )
    state: dict[str, np.ndarray] = {}

    def put(ours: str, theirs: np.ndarray) -> None:
        state[ours] = theirs

    def linear(ours: str, prefix: str) -> None:
        put(f"{ours}.weight", v[f"{prefix}/weight"])
        put(f"{ours}.bias", v[f"{prefix}/bias"])

    def norm(ours: str, prefix: str) -> None:
        for param, key in _ln(prefix).items():
            put(f"{ours}.{param}", v[key])

    def split_rows(array: np.ndarray, parts: int) -> list[np.ndarray]:
        return np.split(array, parts, axis=0)

    for name in ("conv1", "conv2"):
        linear(f"encoder.{name}", f"encoder/{name}")
    put("encoder.positional_embedding", v["encoder/position_encodings/encodings"])
    norm("encoder.ln_post", "encoder/layer_norm")
    put("decoder.token_embedding.weight", v["decoder/embeddings/weight"])
    put("decoder.positional_embedding", v["decoder/position_encodings/encodings"])
    norm("decoder.ln", "decoder/layer_norm")

    for stack, n_layer in (("encoder", n_audio_layer), ("decoder", n_text_layer)):
        for i in range(n_layer):
            ours, theirs = f"{stack}.blocks.{i}", f"{stack}/layer_{i}"
            q, k, val = split_rows(v[f"{theirs}/self_attention/linear_0/weight"], 3)
            qb, _zero_key_bias, vb = split_rows(v[f"{theirs}/self_attention/linear_0/bias"], 3)
            put(f"{ours}.attn.query.weight", q), put(f"{ours}.attn.query.bias", qb)
            put(f"{ours}.attn.key.weight", k)
            put(f"{ours}.attn.value.weight", val), put(f"{ours}.attn.value.bias", vb)
            linear(f"{ours}.attn.out", f"{theirs}/self_attention/linear_1")
            norm(f"{ours}.attn_ln", f"{theirs}/self_attention/layer_norm")
            if stack == "decoder":
                linear(f"{ours}.cross_attn.query", f"{theirs}/attention/linear_0")
                k, val = split_rows(v[f"{theirs}/attention/linear_1/weight"], 2)
                _zero_key_bias, vb = split_rows(v[f"{theirs}/attention/linear_1/bias"], 2)
                put(f"{ours}.cross_attn.key.weight", k)
                put(f"{ours}.cross_attn.value.weight", val), put(f"{ours}.cross_attn.value.bias", vb)
                linear(f"{ours}.cross_attn.out", f"{theirs}/attention/linear_2")
                norm(f"{ours}.cross_attn_ln", f"{theirs}/attention/layer_norm")
            linear(f"{ours}.mlp.0", f"{theirs}/ffn/linear_0")
            linear(f"{ours}.mlp.2", f"{theirs}/ffn/linear_1")
            norm(f"{ours}.mlp_ln", f"{theirs}/ffn/layer_norm")
    return dims, {name: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for name, a in state.items()}


# ---- Hugging Face transformers -------------------------------------------------------------

def hf_to_openai(config: Mapping, tensors: Mapping[str, torch.Tensor],
                 source: str) -> tuple[ModelDimensions, dict[str, torch.Tensor]]:
    """Map a transformers WhisperForConditionalGeneration checkpoint onto openai's names."""
    try:
        dims = ModelDimensions(
            n_mels=config["num_mel_bins"],
            n_audio_ctx=config["max_source_positions"],
            n_audio_state=config["d_model"],
            n_audio_head=config["encoder_attention_heads"],
            n_audio_layer=config["encoder_layers"],
            n_vocab=config["vocab_size"],
            n_text_ctx=config["max_target_positions"],
            n_text_state=config["d_model"],
            n_text_head=config["decoder_attention_heads"],
            n_text_layer=config["decoder_layers"],
        )
    except KeyError as error:
        raise WhisperLensError(f"{source}: config.json lacks {error.args[0]} (not a Whisper config)") from None
    # Some exports drop the "model." prefix; accept both.
    tensors = {(k if k.startswith(("model.", "proj_out")) else f"model.{k}"): t for k, t in tensors.items()}
    state = {}
    for ours in _openai_parameter_names(dims):
        theirs = openai_to_hf_name(ours)
        if theirs not in tensors:
            raise WhisperLensError(f"{source}: missing tensor {theirs} (not a Whisper checkpoint?)")
        state[ours] = tensors[theirs].float()
    return dims, state


def openai_to_hf(dims: ModelDimensions, state: Mapping[str, torch.Tensor]) -> tuple[dict, dict[str, torch.Tensor]]:
    """The inverse of hf_to_openai: a transformers-style config and tensors."""
    config = {
        "model_type": "whisper",
        "architectures": ["WhisperForConditionalGeneration"],
        "num_mel_bins": dims.n_mels,
        "max_source_positions": dims.n_audio_ctx,
        "d_model": dims.n_audio_state,
        "encoder_attention_heads": dims.n_audio_head,
        "encoder_layers": dims.n_audio_layer,
        "vocab_size": dims.n_vocab,
        "max_target_positions": dims.n_text_ctx,
        "decoder_attention_heads": dims.n_text_head,
        "decoder_layers": dims.n_text_layer,
        "encoder_ffn_dim": 4 * dims.n_audio_state,
        "decoder_ffn_dim": 4 * dims.n_text_state,
    }
    tensors = {openai_to_hf_name(name): t.contiguous() for name, t in state.items()}
    tensors["proj_out.weight"] = tensors["model.decoder.embed_tokens.weight"]
    return config, tensors


def _openai_parameter_names(dims: ModelDimensions) -> list[str]:
    return [
        "encoder.conv1.weight", "encoder.conv1.bias", "encoder.conv2.weight", "encoder.conv2.bias",
        "encoder.positional_embedding", "encoder.ln_post.weight", "encoder.ln_post.bias",
        "decoder.token_embedding.weight", "decoder.positional_embedding", "decoder.ln.weight", "decoder.ln.bias",
        *_block_names("encoder", dims.n_audio_layer, cross=False),
        *_block_names("decoder", dims.n_text_layer, cross=True),
    ]


def _block_names(stack: str, n_layer: int, cross: bool) -> list[str]:
    modules = ["attn.query", "attn.key", "attn.value", "attn.out", "attn_ln", "mlp.0", "mlp.2", "mlp_ln"]
    if cross:
        modules += ["cross_attn.query", "cross_attn.key", "cross_attn.value", "cross_attn.out", "cross_attn_ln"]
    names = []
    for i in range(n_layer):
        for module in modules:
            names.append(f"{stack}.blocks.{i}.{module}.weight")
            if not module.endswith("key"):
                names.append(f"{stack}.blocks.{i}.{module}.bias")
    return names


def dims_to_dict(dims: ModelDimensions) -> dict:
    return dataclasses.asdict(dims)
