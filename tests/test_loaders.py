"""Weight loading: bundled CTranslate2 packages, openai .pt and transformers layouts, corrupt files."""

from __future__ import annotations

import pytest
import torch

import whisperlens
from whisperlens import WhisperLensError
from whisperlens.models.ct2 import read_ct2_model
from whisperlens.models.loading import BUNDLED_MODELS, load_checkpoint, save_hf_directory, save_openai_checkpoint


def assert_same_weights(a, b):
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_b[name]), name


def test_ct2_to_openai_pt_round_trip(tiny, tmp_path):
    path = tmp_path / "tiny.en.pt"
    save_openai_checkpoint(tiny, path)
    reloaded = whisperlens.load_model(path)
    assert_same_weights(tiny, reloaded)
    assert torch.equal(reloaded.alignment_heads.to_dense(), tiny.alignment_heads.to_dense())


def test_weights_come_frozen_and_input_gradients_still_flow():
    model = whisperlens.load_model("tiny.en")
    assert not any(parameter.requires_grad for parameter in model.parameters())
    mel = torch.zeros(1, model.dims.n_mels, 3000, requires_grad=True)
    with torch.enable_grad():
        model.encoder(mel).sum().backward()
    assert mel.grad is not None and mel.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in model.parameters())


def test_openai_pt_loads_in_openai_whisper_too(tiny, tmp_path):
    import whisper

    path = tmp_path / "tiny.en.pt"
    save_openai_checkpoint(tiny, path)
    plain = whisper.load_model(str(path), device="cpu")
    for name, tensor in plain.state_dict().items():
        assert torch.equal(tensor, tiny.state_dict()[name]), name


def test_ct2_to_hf_round_trip(tiny, tmp_path):
    save_hf_directory(tiny, tmp_path / "hf")
    reloaded = whisperlens.load_model(tmp_path / "hf")
    assert_same_weights(tiny, reloaded)
    assert torch.equal(reloaded.alignment_heads.to_dense(), tiny.alignment_heads.to_dense())


def test_alignment_heads_match_openai(tiny):
    import whisper

    assert tiny.alignment_heads.to_dense().nonzero().tolist() == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
    plain = whisper.model.Whisper(tiny.dims)
    plain.set_alignment_heads(whisper._ALIGNMENT_HEADS["tiny.en"])
    assert torch.equal(plain.alignment_heads.to_dense(), tiny.alignment_heads.to_dense())


def test_ct2_split_exactly_into_query_key_value(tiny_checkpoint):
    parts, _ = BUNDLED_MODELS["tiny.en"].locate()
    _, variables = read_ct2_model(parts[0].read_bytes())
    fused = torch.from_numpy(variables["encoder/layer_1/self_attention/linear_0/weight"])
    state = tiny_checkpoint["model_state_dict"]
    rebuilt = torch.cat([state[f"encoder.blocks.1.attn.{p}.weight"] for p in ("query", "key", "value")])
    assert torch.equal(fused, rebuilt)
    assert not torch.from_numpy(variables["encoder/layer_1/self_attention/linear_0/bias"][384:768]).any()  # dropped key bias


def test_second_load_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WHISPERLENS_CACHE", str(tmp_path))
    first = load_checkpoint("tiny.en")
    cached = list((tmp_path / "models").glob("*.pt"))
    assert len(cached) == 1
    second = load_checkpoint("tiny.en")
    assert torch.equal(first["model_state_dict"]["decoder.ln.weight"], second["model_state_dict"]["decoder.ln.weight"])
    assert not list((tmp_path / "models").glob("*.tmp"))


@pytest.mark.parametrize("cut", [10, 1000, 5_000_000])
def test_truncated_model_bin_is_a_clear_error(tmp_path, cut):
    parts, config = BUNDLED_MODELS["tiny.en"].locate()
    (tmp_path / "model.bin").write_bytes(parts[0].read_bytes()[:cut])
    (tmp_path / "config.json").write_bytes(config.read_bytes())
    with pytest.raises(WhisperLensError, match="truncated|corrupt"):
        whisperlens.load_model(tmp_path, use_cache=False)


def test_corrupt_model_bin_is_a_clear_error(tmp_path):
    parts, _ = BUNDLED_MODELS["tiny.en"].locate()
    data = bytearray(parts[0].read_bytes())
    data[:4] = b"\xff\xff\x00\x00"
    (tmp_path / "model.bin").write_bytes(bytes(data))
    with pytest.raises(WhisperLensError, match="not a CTranslate2 model"):
        whisperlens.load_model(tmp_path, use_cache=False)
    (tmp_path / "model.bin").write_bytes(b"garbage" * 100)
    with pytest.raises(WhisperLensError):
        whisperlens.load_model(tmp_path, use_cache=False)


def test_other_files_are_clear_errors(tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WhisperLensError, match="not a readable PyTorch checkpoint"):
        whisperlens.load_model(tmp_path / "weights.pt")
    with pytest.raises(WhisperLensError, match="not a Whisper model"):
        whisperlens.load_model(tmp_path)
    with pytest.raises(WhisperLensError, match="unknown model 'large-v9'"):
        whisperlens.load_model("large-v9")
