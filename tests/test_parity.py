"""HookedWhisper computes exactly what openai-whisper computes, and the weights match CTranslate2's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import whisper
from whisper.model import ModelDimensions, Whisper, disable_sdpa

from whisperlens.audio import log_mel
from whisperlens.models.loading import BUNDLED_MODELS, write_ct2_directory

from .conftest import SENTENCES


@pytest.fixture(scope="module")
def plain_tiny(tiny_checkpoint):
    model = Whisper(ModelDimensions(**tiny_checkpoint["dims"]))
    model.load_state_dict(tiny_checkpoint["model_state_dict"])
    return model.eval()


def test_encoder_and_logits_match_plain_openai_whisper(tiny, plain_tiny, speech):
    mel = log_mel(speech["fox"])[None]
    tokens = torch.tensor([[50257, 50362, 440, 2068]])  # <|startoftranscript|><|notimestamps|> The quick
    with torch.no_grad():
        ours_audio, theirs_audio = tiny.embed_audio(mel), plain_tiny.embed_audio(mel)
        ours_logits, theirs_logits = tiny.logits(tokens, ours_audio), plain_tiny.logits(tokens, theirs_audio)
    assert (ours_audio - theirs_audio).abs().max().item() <= 1e-5
    assert (ours_logits - theirs_logits).abs().max().item() <= 1e-5


def test_hooks_that_force_explicit_attention_keep_results(tiny, plain_tiny, speech):
    mel = log_mel(speech["weather"])[None]
    with torch.no_grad():
        with disable_sdpa():  # openai's own explicit-softmax path, which reading the pattern switches us to
            reference = plain_tiny.embed_audio(mel)
        output, cache = tiny.run_with_cache(mel, names_filter="encoder.blocks.*.attn.hook_pattern")
    assert len(cache) == tiny.dims.n_audio_layer
    assert (output - reference).abs().max().item() <= 1e-5
    assert torch.allclose(cache["encoder.blocks.0.attn.hook_pattern"].sum(-1), torch.ones(1, 6, 1500), atol=1e-4)


@pytest.mark.parametrize("name", sorted(SENTENCES))
def test_transcripts_identical_to_openai_whisper(tiny, plain_tiny, speech, name):
    ours = whisper.transcribe(tiny, speech[name], language="en", fp16=False)["text"]
    theirs = whisper.transcribe(plain_tiny, speech[name], language="en", fp16=False)["text"]
    assert ours == theirs
    expected_words = set(SENTENCES[name].lower().replace(".", "").split())
    heard_words = set(ours.lower().replace(".", "").replace(",", "").split())
    assert len(expected_words & heard_words) >= 0.7 * len(expected_words)


@pytest.mark.parametrize("model_name, tolerance", [("tiny.en", 1e-3), ("base", 1e-2)])
def test_converted_weights_match_ctranslate2(model_name, tolerance, speech, tmp_path):
    import ctranslate2  # a test dependency: bash scripts/setup.sh --test

    import whisperlens

    model = whisperlens.load_model(model_name)
    directory = write_ct2_directory(BUNDLED_MODELS[model_name], tmp_path)
    reference_model = ctranslate2.models.Whisper(str(directory), device="cpu", compute_type="float32")
    mel = log_mel(speech["kitchen"], n_mels=model.dims.n_mels)[None]
    reference = np.array(reference_model.encode(ctranslate2.StorageView.from_array(mel.numpy()), to_cpu=True))
    with torch.no_grad():
        ours = model.embed_audio(mel).numpy()
    assert np.abs(reference - ours).max() <= tolerance
