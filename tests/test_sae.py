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
from whisperlens.sae.train import evaluate_sae, split_held_out

HOOK = "encoder.blocks.3.hook_resid_post"


@pytest.fixture(scope="session")
def residuals(tmp_path_factory, tiny) -> torch.Tensor:
    root = tmp_path_factory.mktemp("sae-corpus")
    build_corpus(CorpusConfig(out=root, clips=40, sets=("english",), workers=1, seed=3), progress=False)
    return collect_activations(Corpus.open(root), tiny, [HOOK], "short", max_vectors=10_000, progress=False)[HOOK]


@pytest.mark.parametrize("architecture", ["batchtopk", "topk", "standard"])
def test_trained_sae_loads_in_saelens_with_identical_encodings(residuals, architecture, tmp_path):
    from sae_lens import SAE

    config = SAETrainingConfig(hook=HOOK, architecture=architecture, expansion=4, k=16, batch_size=256,
                               training_vectors=20_480, lr=1e-3, seed=0)
    result = train_sae(residuals, config)
    assert residuals.shape == (4000, 384)
    metrics = result.metrics
    assert 0.5 < metrics["explained_variance"] <= 1.0, metrics
    assert 0 < metrics["l0"] <= {"topk": 16, "batchtopk": 32, "standard": 1536}[architecture]
    assert 0 <= metrics["dead_features"] < 1536
    assert metrics["eval_vectors"] == 2000  # half of the 4000 vectors, the cap on small buffers
    histogram = metrics["firing_frequency"]
    assert histogram["dead"] == metrics["dead_features"] and sum(histogram["live_counts"]) == 1536 - histogram["dead"]
    path = result.save(tmp_path / "sae")
    assert {p.name for p in path.iterdir()} >= {"cfg.json", "sae_weights.safetensors"}
    loaded = SAE.load_from_disk(str(path))
    cfg = json.loads((path / "cfg.json").read_text())
    assert cfg["metadata"]["model_name"] == "tiny.en" and cfg["metadata"]["hook_name"] == HOOK
    assert cfg["metadata"]["explained_variance"] == pytest.approx(metrics["explained_variance"])
    batch = residuals[:512]
    with torch.no_grad():
        measured, reloaded = result.inference_sae.encode(batch), loaded.encode(batch)
    # The metrics were measured on exactly what was saved (a BatchTopK SAE is saved as JumpReLU).
    torch.testing.assert_close(reloaded, measured)
    if architecture != "batchtopk":  # the training form of BatchTopK depends on the whole batch
        with torch.no_grad():
            trained = result.sae.encode(batch)
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


def test_b_dec_starts_at_the_data_mean_and_auxk_fires(residuals):
    from whisperlens.sae.train import build_training_sae, initialise_from_data, make_trainer

    config = SAETrainingConfig(hook=HOOK, expansion=2, k=8, batch_size=256, training_vectors=25_600,
                               dead_window_vectors=2_560, seed=1)
    sae = build_training_sae(config, residuals.shape[1])
    trainer = make_trainer(config, sae, iter([]), steps=100)
    factor = initialise_from_data(trainer, sae, residuals)
    assert factor == pytest.approx(residuals.shape[1] ** 0.5 / residuals.norm(dim=1).mean().item())
    torch.testing.assert_close(sae.b_dec.detach() / factor, residuals.mean(0))
    metrics = train_sae(residuals, config).metrics
    assert metrics["auxk_dead_window_steps"] == 10
    assert metrics["auxk_steps"] > 0, metrics  # some latents went silent for 10 steps and AuxK trained them


def planted_sae():
    """A ReLU SAE whose latent i reads input dimension i above 0.5."""
    from sae_lens import StandardSAE, StandardSAEConfig

    sae = StandardSAE(StandardSAEConfig(d_in=4, d_sae=4, apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(4))
        sae.W_dec.copy_(torch.eye(4))
        sae.b_enc.fill_(-0.5)
        sae.b_dec.zero_()
    return sae


def test_dead_count_over_half_a_million_frames_keeps_a_latent_firing_once_in_ten_thousand():
    frames = 500_000
    vectors = torch.zeros(frames, 4)
    rare = torch.randperm(frames, generator=torch.Generator().manual_seed(0))[: frames // 10_000]
    vectors[rare, 0] = 1.0  # latent 0 fires on 1 frame in 10,000
    vectors[::2, 2] = 1.0  # latent 2 fires on every other frame; latents 1 and 3 never fire
    metrics = evaluate_sae(planted_sae(), vectors)
    assert metrics["dead_features"] == 2
    histogram = metrics["firing_frequency"]
    edges = histogram["log10_bin_edges"]
    assert edges[0] <= -5.5 and edges[-1] == 0  # resolves frequencies down to 1 / 500,000
    bin_of = {edge: count for edge, count in zip(edges, histogram["live_counts"])}
    assert bin_of[-4.5] + bin_of[-4.0] == 1 and bin_of[-0.5] == 1  # 1e-4 (on a bin edge) and 0.5
    assert sum(histogram["live_counts"]) == 2


def test_the_held_out_set_is_half_a_million_frames_of_the_default_corpus():
    config = SAETrainingConfig(hook=HOOK)
    held_out, training = split_held_out(1_135_600, config)  # the default corpus's frames
    assert len(held_out) == 500_000 and len(held_out) + len(training) == 1_135_600
    assert not set(held_out[:1000].tolist()) & set(training.tolist())


def test_diagnostics_measure_outlier_severity_and_massive_positions():
    import numpy as np

    from whisperlens.sae.diagnostics import HookMoments

    generator = torch.Generator().manual_seed(0)
    mean = torch.zeros(16)
    mean[3] = 6.0
    vectors = mean + torch.randn(20_000, 16, generator=generator)  # ||mean|| 6, ||std|| 4
    positions = np.arange(20_000) % 100
    vectors[positions == 7, 5] = 200.0  # every clip's position 7 is massive, like a BOS token
    moments = HookMoments(16, 100)
    moments.update(vectors[:12_000], positions[:12_000])
    moments.update(vectors[12_000:], positions[12_000:])
    summary = moments.summary()
    assert summary["vectors"] == 20_000 and summary["max_abs_dimension"] == 5
    assert summary["loudest_position"] == 7 and summary["loudest_position_ratio"] > 20
    assert summary["massive_share"] == pytest.approx(0.01)
    assert summary["massive_share_by_position"][7] == 1.0 and sum(summary["massive_share_by_position"]) == 1.0
    expected = vectors.double().mean(0).norm() / vectors.double().var(0, correction=0).sum().sqrt()
    assert summary["outlier_severity"] == pytest.approx(expected.item(), rel=1e-6)


def test_latent_directions_initialised_from_data_point_at_centred_training_vectors():
    from whisperlens.sae.train import build_training_sae, initialise_directions_from_data

    config = SAETrainingConfig(hook=HOOK, expansion=2, init_decoder_from_data=True)
    training = torch.randn(500, 8, generator=torch.Generator().manual_seed(0)) + 5.0
    sae = build_training_sae(config, 8)
    norms = sae.W_dec.norm(dim=1).clone()
    initialise_directions_from_data(sae, training, seed=0)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), norms)  # SAELens's decoder norms are kept
    torch.testing.assert_close(sae.W_enc, sae.W_dec.T)
    centred = training - training.mean(0)
    cosines = (sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)) @ (centred / centred.norm(dim=1, keepdim=True)).T
    assert torch.allclose(cosines.max(1).values, torch.ones(16), atol=1e-5)  # each is some centred training vector


def test_whitened_training_starts_latents_in_whitened_space_and_folds_the_whitening_back():
    from whisperlens.sae.train import (
        build_training_sae,
        initialise_directions_from_data,
        initialise_whitening,
        make_trainer,
    )

    generator = torch.Generator().manual_seed(0)
    atoms = torch.randn(16, 8, generator=generator) * torch.logspace(1, -1, 8)  # an anisotropic dictionary
    codes = torch.rand(4000, 16, generator=generator) * (torch.rand(4000, 16, generator=generator) < 0.15)
    training = codes @ atoms + 3.0  # sparse sums of atoms with an offset
    config = SAETrainingConfig(hook=HOOK, expansion=2, k=4, batch_size=128, training_vectors=25_600, lr=3e-3,
                               whiten_input=True, init_decoder_from_data=True)
    sae = build_training_sae(config, 8)
    trainer = make_trainer(config, sae, iter([]), steps=100)
    initialise_whitening(trainer, sae, training, config)
    whitened = trainer.activation_scaler.scale(training)
    assert whitened.mean(0).abs().max() < 0.1
    # estimated on 50 batches: close to the identity (the raw variances span 100 to 0.01)
    torch.testing.assert_close(torch.cov(whitened.T), torch.eye(8), atol=0.25, rtol=0)
    initialise_directions_from_data(sae, training, 0, trainer.activation_scaler.scale)
    centred = whitened - whitened.mean(0)
    cosines = (sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True)) @ (centred / centred.norm(dim=1, keepdim=True)).T
    assert torch.allclose(cosines.max(1).values, torch.ones(16), atol=1e-4)
    result = train_sae(training, config)
    # fit() folded the whitening into the weights: the saved SAE reads and rebuilds raw vectors
    assert result.inference_sae.cfg.normalize_activations == "none"
    assert result.metrics["explained_variance"] > 0.8, result.metrics
