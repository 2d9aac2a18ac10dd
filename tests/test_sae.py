"""SAE training with SAELens on real tiny.en residual-stream activations, saved in SAELens's
format and loaded back by SAELens."""

from __future__ import annotations

import json

import pytest
import torch

from whisperlens.corpus import Corpus, CorpusConfig, build_corpus
from whisperlens.errors import WhisperLensError
from whisperlens.features.bases import SAEBasis
from whisperlens.features.harvest import collect_activations
from whisperlens.sae import SAETrainingConfig, load_sae, train_sae

HOOK = "encoder.blocks.3.hook_resid_post"


@pytest.fixture(scope="session")
def residuals(tmp_path_factory, tiny) -> torch.Tensor:
    root = tmp_path_factory.mktemp("sae-corpus")
    build_corpus(CorpusConfig(out=root, clips=40, sets=("english",), workers=1, seed=3), progress=False)
    return collect_activations(Corpus.open(root), tiny, [HOOK], "short", max_vectors=10_000, progress=False)[HOOK]


@pytest.mark.parametrize("architecture", ["topk", "standard"])
def test_trained_sae_loads_in_saelens_with_identical_encodings(residuals, architecture, tmp_path):
    from sae_lens import SAE

    config = SAETrainingConfig(hook=HOOK, architecture=architecture, expansion=4, k=16, batch_size=256,
                               training_vectors=20_480, lr=1e-3, seed=0)
    result = train_sae(residuals, config)
    assert residuals.shape == (4000, 384)
    metrics = result.metrics
    assert 0.5 < metrics["explained_variance"] <= 1.0, metrics
    assert 0 < metrics["l0"] <= (16 if architecture == "topk" else 1536)
    assert 0 <= metrics["dead_features"] < 1536
    path = result.save(tmp_path / "sae")
    assert {p.name for p in path.iterdir()} >= {"cfg.json", "sae_weights.safetensors"}
    loaded = SAE.load_from_disk(str(path))
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["metadata"]["model_name"] == "tiny.en" and cfg["metadata"]["hook_name"] == HOOK
    assert cfg["metadata"]["explained_variance"] == pytest.approx(metrics["explained_variance"])
    batch = residuals[:512]
    with torch.no_grad():
        trained, reloaded = result.sae.encode(batch), loaded.encode(batch)
    # The saved form folds the decoder norms into the encoder, so floats differ in the last bits.
    torch.testing.assert_close(reloaded, trained, rtol=1e-4, atol=1e-4)
    assert torch.equal(reloaded > 0, trained > 0)
    basis = SAEBasis(path)
    assert basis.hook == HOOK and basis.n_features == 1536
    assert torch.equal(basis.encode(batch), reloaded)


def test_training_is_deterministic(residuals):
    config = SAETrainingConfig(hook=HOOK, expansion=2, k=8, batch_size=256, training_vectors=2_560, seed=5)
    first, second = train_sae(residuals, config), train_sae(residuals, config)
    assert torch.equal(first.sae.W_enc, second.sae.W_enc)
    assert first.metrics == second.metrics


def test_bad_sae_inputs_are_user_errors(residuals, tmp_path):
    with pytest.raises(WhisperLensError, match="architecture"):
        train_sae(residuals, SAETrainingConfig(hook=HOOK, architecture="gated"))
    with pytest.raises(WhisperLensError, match="not a SAELens SAE directory"):
        load_sae(tmp_path)
