"""The activation cache keeps calls apart and joins kv-cache steps right; its residual-stream helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from whisper.decoding import DecodingTask

from whisperlens import WhisperLensError
from whisperlens.audio import SAMPLE_RATE, log_mel

from .tiny_random import (
    DIMS,
    N_SHORT,
    decode_with_kv_cache,
    random_inputs,
    tiny_random_model,
)

TOKENS = torch.tensor([[50257, 50362, 440, 2068, 7586]])  # <|sot|><|notimestamps|> The quick brown


@pytest.fixture(scope="module")
def model():
    return tiny_random_model()


def test_kv_cache_steps_join_into_the_teacher_forced_activations(model):
    mel, tokens = random_inputs(n_tokens=7)
    with torch.no_grad(), model.short_audio():
        audio_features = model.embed_audio(mel)
        with model.caching("decoder.*") as stepped:
            decode_with_kv_cache(model, audio_features, tokens, first=3)
        with model.caching("decoder.*") as teacher_forced:
            model.logits(tokens, audio_features)
    assert stepped.keys() == teacher_forced.keys()
    for name in teacher_forced.keys():
        [joined] = stepped.calls(name)
        assert len(stepped.firings(name)) == 5  # the first three tokens together, then one per step
        assert joined.shape == teacher_forced[name].shape, name
        assert torch.allclose(joined, teacher_forced[name], atol=1e-4), name
    assert stepped["decoder.hook_pos_embed"].shape == (1, 7, DIMS.n_text_state)
    assert stepped["decoder.blocks.0.attn.hook_pattern"].shape == (2, DIMS.n_text_head, 7, 7)  # padded with the causal zeros


def test_each_encoder_pass_and_decoding_attempt_is_a_call(model):
    mel, tokens = random_inputs()
    names = ["encoder.hook_mel", "encoder.hook_ln_post", "decoder.blocks.1.*"]
    with torch.no_grad(), model.short_audio(), model.caching(names) as cache:
        audio_features = model.embed_audio(mel)
        model.run(mel[:1, :, : 2 * (N_SHORT - 2)], tokens[:1, :3])
        decode_with_kv_cache(model, audio_features, tokens)  # a decoding attempt: no encoder pass
    assert [tuple(m.shape) for m in cache.calls("encoder.hook_mel")] == [(2, 80, 2 * N_SHORT), (1, 80, 2 * (N_SHORT - 2))]
    assert [tuple(x.shape) for x in cache.calls("decoder.blocks.1.hook_resid_post")] == [(1, 3, 64), (2, 5, 64)]
    cross_keys = cache.calls("decoder.blocks.1.cross_attn.hook_k")
    assert [tuple(k.shape) for k in cross_keys] == [(1, N_SHORT - 2, 2, 32), (2, N_SHORT, 2, 32)]
    assert len(cache.firings("decoder.blocks.1.hook_resid_post")) == 1 + 4
    with pytest.raises(WhisperLensError, match=r"fired in 2 calls .*cache\.calls\(name\)"):
        cache["encoder.hook_mel"]


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_writes_one_entry_per_call(model, tmp_path, suffix):
    mel, tokens = random_inputs()
    with torch.no_grad(), model.short_audio(), model.caching(["encoder.hook_mel", "decoder.hook_logits"]) as cache:
        model.run(mel, tokens)
        model.run(mel[:1])
    path = tmp_path / f"cache{suffix}"
    cache.save(path)
    if suffix == ".npz":
        saved = dict(np.load(path))
    else:
        from safetensors.numpy import load_file

        saved = load_file(path)
    assert sorted(saved) == ["decoder.hook_logits", "encoder.hook_mel.call0", "encoder.hook_mel.call1"]
    assert np.array_equal(saved["encoder.hook_mel.call1"], cache.calls("encoder.hook_mel")[1].numpy())
    assert saved["decoder.hook_logits"].shape == (2, 5, DIMS.n_vocab)


# ---- on the real tiny.en: transcribe's windows and attempts ----------------------------------------


def record_decoding_tasks(monkeypatch) -> list[dict]:
    """What each DecodingTask.run saw: one encoder pass and one decoding attempt each."""
    tasks = []
    run = DecodingTask.run

    def recording_run(self, mel):
        results = run(self, mel)
        tasks.append({"mel": mel, "sample_begin": self.sample_begin, "n_group": self.n_group, "tokens": results[0].tokens})
        return results

    monkeypatch.setattr(DecodingTask, "run", recording_run)
    return tasks


def test_two_window_transcribe_keeps_windows_apart(tiny, speech, monkeypatch):
    silence = np.zeros(SAMPLE_RATE, dtype=np.float32)
    first = np.concatenate([speech["fox"], silence, speech["weather"], silence, speech["kitchen"]])
    gap = np.zeros(27 * SAMPLE_RATE - len(first), np.float32)
    audio = np.concatenate([first, gap, speech["numbers"], silence, speech["fox"]])
    tasks = record_decoding_tasks(monkeypatch)
    names = ["encoder.hook_mel", "encoder.blocks.3.hook_resid_post", "decoder.blocks.3.hook_resid_post", "decoder.hook_pos_embed"]
    with tiny.caching(names) as cache:
        result = tiny.transcribe(audio, language="en", fp16=False, temperature=0.0)
    assert len(audio) > 30 * SAMPLE_RATE and len(tasks) >= 2 and result["text"].count("fox") == 2
    mels = cache.calls("encoder.hook_mel")
    assert len(mels) == len(tasks) and len(cache.calls("encoder.blocks.3.hook_resid_post")) == len(tasks)
    assert all(torch.equal(mel, task["mel"]) for mel, task in zip(mels, tasks, strict=True))
    assert all(mel.shape == (1, 80, 3000) for mel in mels)
    decoder = cache.calls("decoder.blocks.3.hook_resid_post")
    assert [x.shape[1] for x in decoder] == [task["sample_begin"] + len(task["tokens"]) for task in tasks]
    assert [x.shape for x in cache.calls("decoder.hook_pos_embed")] == [(1, x.shape[1], 384) for x in decoder]
    with pytest.raises(WhisperLensError, match="cache.calls"):
        cache["encoder.hook_mel"]


def test_temperature_fallback_attempts_are_separate_calls(tiny, speech, monkeypatch):
    tasks = record_decoding_tasks(monkeypatch)
    with tiny.caching(["encoder.hook_ln_post", "decoder.blocks.0.hook_resid_post", "decoder.blocks.0.attn.hook_k"]) as cache:
        # every transcript is "too repetitive" at a compression-ratio threshold of 0: all three temperatures run
        tiny.transcribe(speech["fox"], language="en", fp16=False, temperature=(0.0, 0.2, 0.4), best_of=2,
                        compression_ratio_threshold=0.0)
    assert [task["n_group"] for task in tasks] == [1, 2, 2]
    assert [tuple(x.shape) for x in cache.calls("encoder.hook_ln_post")] == [(1, 1500, 384)] * 3
    attempts = cache.calls("decoder.blocks.0.hook_resid_post")
    assert [x.shape[0] for x in attempts] == [1, 2, 2]
    assert attempts[0].shape[1] == tasks[0]["sample_begin"] + len(tasks[0]["tokens"])
    assert [k.shape[:2] for k in cache.calls("decoder.blocks.0.attn.hook_k")] == [x.shape[:2] for x in attempts]


# ---- residual-stream helpers on the real tiny.en ------------------------------------------------------


@pytest.fixture(scope="module")
def resid_cache(tiny, speech):
    names = ["encoder.hook_embed", "encoder.blocks.*.hook_resid_*", "encoder.blocks.*.hook_attn_out",
             "encoder.blocks.*.hook_mlp_out", "encoder.hook_ln_post", "decoder.*"]
    with torch.no_grad():
        _, cache = tiny.run_with_cache(log_mel(speech["fox"]), TOKENS, names_filter=names)
    return cache


@pytest.mark.parametrize("stack", ["encoder", "decoder"])
def test_decomposed_resid_sums_to_the_last_block_output(resid_cache, stack):
    parts, labels = resid_cache.decompose_resid(stack)
    n_parts = 4 * (3 if stack == "decoder" else 2)
    assert labels[0] == "embed" and labels[-1] == "3_mlp_out" and len(labels) == 1 + n_parts == parts.shape[0]
    final = resid_cache[f"{stack}.blocks.3.hook_resid_post"]
    assert torch.allclose(parts.sum(0), final, rtol=1e-5, atol=1e-3)
    upto, _ = resid_cache.decompose_resid(stack, layer=2)
    assert torch.allclose(upto.sum(0), resid_cache[f"{stack}.blocks.2.hook_resid_pre"], rtol=1e-5, atol=1e-3)
    normed, _ = resid_cache.decompose_resid(stack, apply_ln=True)
    ln_out = resid_cache["encoder.hook_ln_post" if stack == "encoder" else "decoder.hook_ln_final"]
    bias = (resid_cache.model.final_ln(stack)).bias
    assert torch.allclose(normed.sum(0) + bias, ln_out, atol=1e-4)


@pytest.mark.parametrize("stack, ln_hook", [("encoder", "encoder.hook_ln_post"), ("decoder", "decoder.hook_ln_final")])
def test_accumulated_resid_ends_at_the_final_layer_norm(resid_cache, stack, ln_hook):
    accumulated, labels = resid_cache.accumulated_resid(stack, apply_ln=True)
    n_positions = 1500 if stack == "encoder" else TOKENS.shape[1]
    assert labels == ["0_pre", "1_pre", "2_pre", "3_pre", "final_post"]
    assert accumulated.shape == (5, 1, n_positions, 384)
    assert torch.allclose(accumulated[-1], resid_cache[ln_hook], atol=1e-5)
    raw, _ = resid_cache.accumulated_resid(stack)
    stacked, names = resid_cache.stack_activation(f"{stack}.blocks.*.hook_resid_post")
    assert names == [f"{stack}.blocks.{i}.hook_resid_post" for i in range(4)]
    assert torch.equal(stacked, raw[1:])  # each block's output is the next one's input
    _, with_mids = resid_cache.accumulated_resid(stack, layer=1, incl_mid=True)
    assert with_mids == (["0_pre", "0_mid", "0_mid_cross", "1_pre"] if stack == "decoder" else ["0_pre", "0_mid", "1_pre"])


def test_logits_from_the_decoder_resid_equal_the_models(resid_cache):
    final = resid_cache["decoder.blocks.3.hook_resid_post"]
    assert torch.allclose(resid_cache.logits_from_resid(final), resid_cache["decoder.hook_logits"], atol=1e-4)
    accumulated, _ = resid_cache.accumulated_resid("decoder")
    lens = resid_cache.logits_from_resid(accumulated)  # the logit lens: (components, batch, pos, vocab)
    assert lens.shape == (5, 1, TOKENS.shape[1], 51864)
    assert torch.allclose(lens[-1], resid_cache["decoder.hook_logits"], atol=1e-4)


def test_resid_helpers_take_one_call_of_several(model):
    mel, tokens = random_inputs()
    with torch.no_grad(), model.short_audio(), model.caching("encoder.*") as cache:
        model.run(mel)
        model.run(mel[:1])
    with pytest.raises(WhisperLensError, match="cache.calls"):
        cache.accumulated_resid("encoder")
    second, _ = cache.accumulated_resid("encoder", call=1)
    assert second.shape == (3, 1, N_SHORT, 64)
    with pytest.raises(WhisperLensError, match="layer 3 is out of range"):
        cache.decompose_resid("encoder", layer=3, call=0)
