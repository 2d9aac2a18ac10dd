"""Hook points, caches and interventions on the real tiny.en model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import whisper

from whisperlens import WhisperLensError
from whisperlens.audio import log_mel
from whisperlens.hooked import band_mask, replace_hook
from whisperlens.interventions import Patch

TOKENS = torch.tensor([[50257, 50362, 440, 2068, 7586]])  # <|sot|><|notimestamps|> The quick brown


def expected_shapes(n_audio: int, n_tokens: int) -> dict[str, tuple]:
    """The documented shapes (docs/hooks.md) for tiny.en, batch 1."""
    d, heads, d_head, d_mlp = 384, 6, 64, 1536
    shapes = {
        "encoder.hook_mel": (1, 80, 2 * n_audio),
        "encoder.hook_conv1": (1, d, 2 * n_audio),
        "encoder.hook_conv2": (1, d, n_audio),
        "encoder.hook_embed": (1, n_audio, d),
        "encoder.hook_ln_post": (1, n_audio, d),
        "decoder.hook_tok_embed": (1, n_tokens, d),
        "decoder.hook_pos_embed": (1, n_tokens, d),
        "decoder.hook_embed": (1, n_tokens, d),
        "decoder.hook_ln_final": (1, n_tokens, d),
        "decoder.hook_logits": (1, n_tokens, 51864),
    }
    for stack, n_pos in (("encoder", n_audio), ("decoder", n_tokens)):
        for i in range(4):
            block = f"{stack}.blocks.{i}"
            for hook in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out"):
                shapes[f"{block}.{hook}"] = (1, n_pos, d)
            shapes[f"{block}.mlp.hook_pre"] = shapes[f"{block}.mlp.hook_post"] = (1, n_pos, d_mlp)
            for hook in ("hook_q", "hook_k", "hook_v", "hook_z"):
                shapes[f"{block}.attn.{hook}"] = (1, n_pos, heads, d_head)
            shapes[f"{block}.attn.hook_scores"] = shapes[f"{block}.attn.hook_pattern"] = (1, heads, n_pos, n_pos)
            if stack == "decoder":
                shapes[f"{block}.hook_resid_mid_cross"] = shapes[f"{block}.hook_cross_attn_out"] = (1, n_pos, d)
                shapes[f"{block}.cross_attn.hook_q"] = shapes[f"{block}.cross_attn.hook_z"] = (1, n_pos, heads, d_head)
                shapes[f"{block}.cross_attn.hook_k"] = shapes[f"{block}.cross_attn.hook_v"] = (1, n_audio, heads, d_head)
                shapes[f"{block}.cross_attn.hook_scores"] = (1, heads, n_pos, n_audio)
                shapes[f"{block}.cross_attn.hook_pattern"] = (1, heads, n_pos, n_audio)
    return shapes


def test_every_hook_exists_and_fires_with_documented_shape(tiny, speech):
    mel = log_mel(speech["fox"])
    with torch.no_grad():
        _, cache = tiny.run_with_cache(mel, TOKENS)
    expected = expected_shapes(1500, TOKENS.shape[1])
    assert set(tiny.hook_dict) == set(expected)
    assert {name: tuple(cache[name].shape) for name in expected} == expected


def test_seed_alias_resolves_to_mlp_post(tiny, speech):
    with torch.no_grad():
        _, cache = tiny.run_with_cache(log_mel(speech["fox"]), names_filter="encoder.blocks.3.mlp.1")
    assert cache.keys() == ["encoder.blocks.3.mlp.hook_post"]
    assert torch.equal(cache["encoder.blocks.3.mlp.1"], cache["encoder.blocks.3.mlp.hook_post"])
    assert (cache["encoder.blocks.3.mlp.1"] >= -0.2).all()  # a GELU output


def test_fused_attention_is_used_when_nothing_reads_the_pattern(tiny):
    x = torch.randn(1, 10, 384)
    with torch.no_grad():
        assert tiny.encoder.blocks[0].attn(x)[1] is None
        with tiny.hooks(fwd=[("encoder.blocks.0.attn.hook_pattern", lambda p, hook: None)]):
            assert tiny.encoder.blocks[0].attn(x)[1] is not None


def test_decoder_activations_are_gathered_across_transcribe_steps(tiny, speech):
    with tiny.caching(["decoder.blocks.3.hook_resid_post", "decoder.hook_tok_embed", "encoder.hook_ln_post"]) as cache:
        result = whisper.transcribe(tiny, speech["weather"], language="en", fp16=False, temperature=0.0)
    n_generated = sum(len(s["tokens"]) for s in result["segments"])
    steps = cache.firings("decoder.blocks.3.hook_resid_post")
    assert len(steps) >= n_generated  # one firing per decoding step with the kv-cache on
    assert [s.shape[1] for s in steps[1:]] == [1] * (len(steps) - 1)
    assert cache["decoder.blocks.3.hook_resid_post"].shape == (1, sum(s.shape[1] for s in steps), 384)
    assert cache["encoder.hook_ln_post"].shape == (1, 1500, 384)


def test_patching_encoder_output_of_one_clip_into_another_transcribes_the_donor(tiny, speech):
    with torch.no_grad():
        donor = tiny.embed_audio(log_mel(speech["kitchen"])[None])
    options = whisper.DecodingOptions(language="en", fp16=False, without_timestamps=True)
    with tiny.hooks(fwd=[("encoder.hook_ln_post", replace_hook(donor))]):
        patched = tiny.decode(log_mel(speech["fox"]), options).text
    plain_donor = tiny.decode(log_mel(speech["kitchen"]), options).text
    assert patched == plain_donor
    assert "fox" not in patched.lower()


def test_transcribe_applies_interventions_throughout(tiny, speech):
    with torch.no_grad():
        donor = tiny.embed_audio(log_mel(speech["kitchen"])[None])
    options = dict(language="en", fp16=False, temperature=0.0)
    patched = tiny.transcribe(speech["fox"], interventions=[Patch("encoder.hook_ln_post", value=donor)], **options)["text"]
    assert "kitchen" in patched.lower() and "fox" not in patched.lower()
    assert not any(h.has_hooks for h in tiny.hook_dict.values())
    assert "fox" in whisper.transcribe(tiny, speech["fox"], **options)["text"].lower()  # openai's function still works


def test_patching_some_positions_changes_only_those(tiny, speech):
    mel = log_mel(speech["fox"])[None]
    with torch.no_grad():
        clean, cache = tiny.run_with_cache(mel, names_filter="encoder.blocks.1.hook_resid_post")
        zeros = torch.zeros(1, 50, 384)
        patched = tiny.run_with_hooks(mel, fwd_hooks=[("encoder.blocks.1.hook_resid_post", replace_hook(zeros, slice(100, 150)))])
    changed = (patched - clean).abs().amax(dim=(0, 2))
    assert changed[100:150].min() > 1e-3
    assert changed[:20].max() > 0  # attention spreads a little
    assert not torch.equal(patched, clean)


def test_layer_skipping_and_head_ablation_change_outputs(tiny, speech):
    mel = log_mel(speech["fox"])[None]
    with torch.no_grad():
        clean = tiny.embed_audio(mel)
        with tiny.skip_layers([2]):
            skipped, cache = tiny.run_with_cache(mel, names_filter="encoder.blocks.2.hook_resid_*")
        assert torch.equal(cache["encoder.blocks.2.hook_resid_pre"], cache["encoder.blocks.2.hook_resid_post"])
        assert (skipped - clean).abs().max() > 0.1
        with tiny.ablate_heads({"encoder.blocks.1.attn": [0, 3]}):
            ablated, cache = tiny.run_with_cache(mel, names_filter="encoder.blocks.1.attn.hook_z")
        z = cache["encoder.blocks.1.attn.hook_z"]
        assert z[:, :, [0, 3]].abs().max() == 0 and z[:, :, [1, 2, 4, 5]].abs().max() > 0
        assert (ablated - clean).abs().max() > 1e-3
        assert torch.equal(tiny.embed_audio(mel), clean)  # nothing lingers after the blocks


def test_band_mask_wide_enough_leaves_outputs_unchanged(tiny, speech):
    mel = log_mel(speech["kitchen"])[None]
    with torch.no_grad():
        clean = tiny.embed_audio(mel)
        with tiny.attention_mask(band_mask(1500, 1500)):
            wide = tiny.embed_audio(mel)
        with tiny.attention_mask(band_mask(1500, 2)):
            narrow = tiny.embed_audio(mel)
        with tiny.attention_mask(band_mask(1500, 2), layers=[0], heads=[1]):
            _, cache = tiny.run_with_cache(mel, names_filter="encoder.blocks.0.attn.hook_pattern")
    assert (wide - clean).abs().max() <= 1e-5
    assert (narrow - clean).abs().max() > 0.1
    pattern = cache["encoder.blocks.0.attn.hook_pattern"][0]
    far = band_mask(1500, 2).isinf()
    assert pattern[1][far].max() == 0 and pattern[0][far].max() > 0


def test_no_hook_is_left_behind_after_an_exception(tiny, speech):
    mel = log_mel(speech["fox"])[None]

    def broken(activation, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        tiny.run_with_hooks(mel, fwd_hooks=[("encoder.blocks.*.hook_resid_post", broken)])
    with pytest.raises(ValueError):
        with tiny.hooks(fwd=[("encoder.*", lambda a, h: None)]), tiny.skip_layers([1]):
            raise ValueError("inside the block")
    assert not any(h.has_hooks for h in tiny.hook_dict.values())
    assert not any(block.skip for block in tiny.encoder.blocks)


def test_unknown_hook_name_is_a_clear_error(tiny):
    with pytest.raises(WhisperLensError, match="no hook point matches"):
        with tiny.hooks(fwd=[("encoder.blocks.9.hook_resid_post", lambda a, h: None)]):
            pass


def test_gradients_flow_to_activations_and_weights(tiny, speech):
    mel = log_mel(speech["fox"])[None]
    grads = {}
    tiny.zero_grad(set_to_none=True)
    tiny.requires_grad_(True)  # weights come frozen (load_model); unfrozen, as for fine-tuning
    try:
        with tiny.hooks(bwd=[("encoder.blocks.2.hook_resid_post", lambda g, hook: grads.setdefault(hook.name, g))]):
            logits = tiny.run(mel, TOKENS)
            logits[0, -1, 2068].backward()
    finally:
        tiny.requires_grad_(False)
    assert grads["encoder.blocks.2.hook_resid_post"].abs().sum() > 0
    assert tiny.encoder.blocks[0].mlp[0].weight.grad.abs().sum() > 0
    tiny.zero_grad(set_to_none=True)


def test_short_clip_mode_is_explicit_and_close_to_exact(tiny, speech):
    clip = speech["numbers"][: 2 * 16000]
    with torch.no_grad():
        with pytest.raises(WhisperLensError, match="short-clip mode"):
            tiny.embed_audio(log_mel(clip, short=True)[None])
        names = "encoder.blocks.*.hook_resid_post"
        _, exact = tiny.run_with_cache(log_mel(clip), names_filter=names)
        _, short = tiny.run_with_cache(log_mel(clip, short=True), names_filter=names, short_audio=True)
    correlations = []
    for layer in range(4):
        name = f"encoder.blocks.{layer}.hook_resid_post"
        assert short[name].shape == (1, 100, 384)
        a, b = exact[name][0, :100].flatten().numpy(), short[name][0].flatten().numpy()
        correlations.append(np.corrcoef(a, b)[0, 1])
    # Measured (benchmarks/short_mode_fidelity.py): about 0.99, 0.98, 0.97, then 0.76 in the last block.
    assert min(correlations[:3]) > 0.93 and correlations[3] > 0.6
    assert correlations[0] > correlations[3]


def test_bfloat16_model_tracks_float32(tiny, speech):
    import whisperlens

    bf16 = whisperlens.load_model("tiny.en", dtype=torch.bfloat16)
    assert bf16.encoder.blocks[0].attn_ln.weight.dtype == torch.float32  # layer norms stay float32
    mel = log_mel(speech["fox"][: 2 * 16000], short=True)
    with torch.no_grad():
        reference = tiny.run(mel, short_audio=True)
        low_precision = bf16.run(mel, short_audio=True)
    assert low_precision.dtype == torch.bfloat16
    assert np.corrcoef(reference.flatten().numpy(), low_precision.float().flatten().numpy())[0, 1] > 0.99
