"""Training a sparse autoencoder on activations with SAELens's trainer.

Our activations come from a harvest pass over the corpus into an in-memory buffer (a few
hundred MB for tiny.en's residual stream); SAELens's `SAETrainer` takes any iterator of
batches as its data provider, so it trains from that buffer, shuffled with a seed, without
SAELens's language-model activation store.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import WhisperLensError

ARCHITECTURES = ("topk", "standard")


@dataclass
class SAETrainingConfig:
    hook: str
    model_name: str = "tiny.en"
    architecture: str = "topk"
    expansion: int = 8  # d_sae = expansion * d_in
    k: int = 32  # topk: active features per vector
    l1_coefficient: float = 3.0  # standard: sparsity penalty
    lr: float = 4e-4
    batch_size: int = 4096
    training_vectors: int = 4_000_000  # vectors shown to the SAE, cycling the buffer in epochs
    max_epochs: int = 20  # caps training_vectors on small buffers, where more passes only overfit
    eval_fraction: float = 0.02  # held out from training, for the reported metrics
    seed: int = 0

    def validate(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise WhisperLensError(f"SAE architecture must be one of {', '.join(ARCHITECTURES)}, not {self.architecture!r}")
        if self.expansion < 1 or self.batch_size < 1 or self.training_vectors < self.batch_size:
            raise WhisperLensError("SAE training needs expansion >= 1 and at least one batch of training vectors")


@dataclass
class SAETrainingResult:
    config: SAETrainingConfig
    sae: object  # the trained sae_lens TrainingSAE
    metrics: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        from .format import save_sae

        return save_sae(self.sae, path, metrics={**self.metrics, "training_config": asdict(self.config)})


def shuffled_batches(vectors: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless minibatches: each epoch is a fresh seeded permutation of the buffer."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(vectors), generator=generator)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield vectors[order[start: start + batch_size]]


def train_sae(vectors: torch.Tensor, config: SAETrainingConfig) -> SAETrainingResult:
    """Train a SAE on `vectors` (n, d_in) and measure it on a held-out slice."""
    config.validate()
    from sae_lens import StandardTrainingSAE, StandardTrainingSAEConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.config import SAETrainerConfig
    from sae_lens.saes.sae import SAEMetadata
    from sae_lens.training.sae_trainer import SAETrainer

    vectors = vectors.float()
    generator = torch.Generator().manual_seed(config.seed)
    order = torch.randperm(len(vectors), generator=generator)
    n_eval = max(1, int(len(vectors) * config.eval_fraction))
    held_out, training = vectors[order[:n_eval]], vectors[order[n_eval:]]
    if len(training) < config.batch_size:
        raise WhisperLensError(f"SAE training for {config.hook}: {len(training)} vectors, "
                               f"fewer than one batch of {config.batch_size}")
    d_in = vectors.shape[1]
    metadata = SAEMetadata(model_name=config.model_name, hook_name=config.hook, hook_head_index=None,
                           context_size=None, prepend_bos=False, seqpos_slice=(None,))
    common = dict(d_in=d_in, d_sae=config.expansion * d_in, normalize_activations="expected_average_only_in",
                  metadata=metadata)
    torch.manual_seed(config.seed)  # SAELens initialises its weights from the global generator
    if config.architecture == "topk":
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(k=config.k, **common))
    else:
        sae = StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=config.l1_coefficient,
                                                            l1_warm_up_steps=100, **common))
    steps = min(config.training_vectors, config.max_epochs * len(training)) // config.batch_size
    trainer_config = SAETrainerConfig(
        total_training_samples=steps * config.batch_size, train_batch_size_samples=config.batch_size,
        lr=config.lr, lr_end=config.lr / 10, lr_scheduler_name="constant", lr_warm_up_steps=min(100, steps // 10),
        lr_decay_steps=steps // 5, device="cpu", dead_feature_window=max(50, steps // 10),
        feature_sampling_window=max(100, steps // 4), n_batches_for_norm_estimate=min(50, steps),
    )
    trainer = SAETrainer(cfg=trainer_config, sae=sae, data_provider=shuffled_batches(training, config.batch_size, config.seed))
    # Adam's second moments of rarely active features decay into denormal floats, which CPUs
    # process ~100x slower; flushing them to zero halves the training time, same results.
    torch.set_flush_denormal(True)
    try:
        trained = trainer.fit()
    finally:
        torch.set_flush_denormal(False)
    metrics = evaluate_sae(trained, held_out)
    metrics["dead_features_in_training"] = int(trainer.dead_neurons.sum())
    metrics["training_vectors"] = steps * config.batch_size
    return SAETrainingResult(config, trained, metrics)


@torch.no_grad()
def evaluate_sae(sae, vectors: torch.Tensor, batch_size: int = 8192) -> dict:
    """Explained variance (1 - residual / total variance), mean L0, and dead features (never
    active on `vectors`)."""
    sae.eval()
    squared_error, l0_sum, fired = 0.0, 0.0, None
    for start in range(0, len(vectors), batch_size):
        batch = vectors[start: start + batch_size]
        features = sae.encode(batch)
        squared_error += (sae.decode(features) - batch).pow(2).sum().item()
        active = features > 0
        l0_sum += active.sum().item()
        fired = active.any(0) if fired is None else fired | active.any(0)
    total_variance = (vectors - vectors.mean(0)).pow(2).sum().item()
    return {
        "explained_variance": 1 - squared_error / total_variance,
        "l0": l0_sum / len(vectors),
        "dead_features": int((~fired).sum()),
        "d_sae": int(sae.cfg.d_sae),
        "eval_vectors": len(vectors),
    }
