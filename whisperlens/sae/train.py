"""Training a sparse autoencoder on activations with SAELens's trainer.

Our activations come from a harvest pass over the corpus into an in-memory buffer (a few
hundred MB for tiny.en's residual stream); SAELens's `SAETrainer` takes any iterator of
batches as its data provider, so it trains from that buffer, shuffled with a seed, without
SAELens's language-model activation store.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import WhisperLensError

ARCHITECTURES = ("batchtopk", "topk", "standard")
FREQUENCY_BIN_WIDTH = 0.5  # log10 firing-frequency histogram: half a decade per bin
MASSIVE_NORM_RATIO = 4  # a frame whose norm exceeds this multiple of the median norm is massive


@dataclass
class SAETrainingConfig:
    hook: str
    model_name: str = "tiny.en"
    architecture: str = "batchtopk"
    expansion: int = 8  # d_sae = expansion * d_in
    k: int = 32  # batchtopk, topk: active features per vector (on average over a batch for batchtopk)
    l1_coefficient: float = 3.0  # standard: sparsity penalty
    lr: float = 4e-4
    batch_size: int = 1024
    training_vectors: int = 2_000_000  # vectors shown to the SAE, cycling the buffer in epochs (~7 min on 2 cores)
    max_epochs: int = 20  # caps training_vectors on small buffers, where more passes only overfit
    eval_vectors: int = 500_000  # held out from training: the dead count and metrics are measured on them
    max_eval_fraction: float = 0.5  # on small buffers at most this share is held out
    # The AuxK window and weight and the directions from data are the recipe measured in docs/features.md
    # (SAEs, attempts s0-s5, d2, d3): on tiny.en's blocks 2 and 3 they took dead latents from 59% / 42%
    # to 0.2% / 0.8% over 500k held-out frames, and explained variance did not drop.
    dead_window_vectors: int = 50_000  # AuxK: a latent silent for this many training vectors counts as dead
    aux_loss_coefficient: float = 1.0  # AuxK's weight (OpenAI's is 1/32, Gao et al. 2024; 1 revives more here)
    init_from_data: bool = True  # b_dec = the training data's mean, scaling factor set before fit()
    init_decoder_from_data: bool = True  # each latent's decoder (and encoder) direction = a centred training vector
    whiten_input: bool = False  # SAELens's covariance_whitening: train on PCA-whitened input (replaces init_from_data)
    seed: int = 0

    def validate(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise WhisperLensError(f"SAE architecture must be one of {', '.join(ARCHITECTURES)}, not {self.architecture!r}")
        if self.expansion < 1 or self.batch_size < 1 or self.training_vectors < self.batch_size:
            raise WhisperLensError("SAE training needs expansion >= 1 and at least one batch of training vectors")
        if self.eval_vectors < 1 or not 0 < self.max_eval_fraction < 1:
            raise WhisperLensError("SAE training needs eval_vectors >= 1 and 0 < max_eval_fraction < 1")


@dataclass
class SAETrainingResult:
    config: SAETrainingConfig
    sae: object  # the trained sae_lens TrainingSAE
    inference_sae: object  # its inference form (sae_lens.SAE), as saved and as the harvest reads it
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


def split_held_out(n: int, config: SAETrainingConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded row indices (held_out, training): `eval_vectors` rows held out, at most
    `max_eval_fraction` of the buffer."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))
    n_eval = max(1, min(config.eval_vectors, int(n * config.max_eval_fraction)))
    return order[:n_eval], order[n_eval:]


class DeadLatentLog:
    """Wraps the trainer's data provider to read, before each step, how many latents the trainer
    counts as dead (AuxK trains exactly those): the evidence that AuxK fired during the run."""

    def __init__(self, batches: Iterator[torch.Tensor]):
        self.batches, self.trainer = batches, None
        self.dead_per_step: list[int] = []

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        if self.trainer is not None:
            self.dead_per_step.append(int(self.trainer.dead_neurons.sum()))
        return next(self.batches)

    def summary(self) -> dict:
        dead = self.dead_per_step or [0]
        return {"auxk_steps": sum(d > 0 for d in dead), "steps": len(self.dead_per_step),
                "dead_in_training_max": max(dead), "dead_in_training_last": dead[-1]}


def build_training_sae(config: SAETrainingConfig, d_in: int, steps: int = 10_000):
    from sae_lens import (
        BatchTopKTrainingSAE,
        BatchTopKTrainingSAEConfig,
        StandardTrainingSAE,
        StandardTrainingSAEConfig,
        TopKTrainingSAE,
        TopKTrainingSAEConfig,
    )
    from sae_lens.saes.sae import SAEMetadata

    metadata = SAEMetadata(model_name=config.model_name, hook_name=config.hook, hook_head_index=None,
                           context_size=None, prepend_bos=False, seqpos_slice=(None,))
    normalization = "covariance_whitening" if config.whiten_input else "expected_average_only_in"
    common = dict(d_in=d_in, d_sae=config.expansion * d_in, normalize_activations=normalization, metadata=metadata)
    torch.manual_seed(config.seed)  # SAELens initialises its weights from the global generator
    if config.architecture == "batchtopk":
        # The saved JumpReLU threshold is an moving average that starts at 0: a rate of at least
        # 10 / steps forgets that start (to e^-10) within the run, also on short runs.
        return BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(k=config.k, aux_loss_coefficient=config.aux_loss_coefficient,
                                                               topk_threshold_lr=max(0.01, 10 / steps), **common))
    if config.architecture == "topk":
        return TopKTrainingSAE(TopKTrainingSAEConfig(k=config.k, aux_loss_coefficient=config.aux_loss_coefficient, **common))
    return StandardTrainingSAE(StandardTrainingSAEConfig(l1_coefficient=config.l1_coefficient, l1_warm_up_steps=100,
                                                         **common))


@torch.no_grad()
def initialise_from_data(trainer, sae, training: torch.Tensor) -> float:
    """Set SAELens's activation scaling factor and b_dec (the data's mean, in scaled units)
    before fit(). fit() estimates the scaling factor only while it is None, so ours is kept;
    it folds the factor back into the weights at the end as usual. Starting b_dec at the mean
    centres the encoder's input, so latents do not start on the wrong side of a large offset."""
    d_in = training.shape[1]
    mean_norm = training.norm(dim=1).mean().item()
    scaling_factor = d_in**0.5 / mean_norm  # SAELens's expected_average_only_in, over the whole buffer
    trainer.activation_scaler.scaling_factor = scaling_factor
    sae.b_dec.data.copy_(training.mean(0) * scaling_factor)
    return scaling_factor


@torch.no_grad()
def initialise_whitening(trainer, sae, training: torch.Tensor, config: SAETrainingConfig) -> None:
    """Estimate SAELens's PCA whitening before fit() (which keeps it, as it keeps a scaling factor)
    so that latent directions can be initialised in the whitened space the SAE trains in."""
    batches = shuffled_batches(training, config.batch_size, config.seed + 2)
    trainer.activation_scaler.estimate_whitening(sae.cfg.d_in, batches, trainer.cfg.n_batches_for_norm_estimate)


@torch.no_grad()
def initialise_directions_from_data(sae, training: torch.Tensor, seed: int, scale=None) -> None:
    """Point each latent at a different centred training vector (keeping SAELens's decoder norms;
    the encoder is the decoder's transpose, as SAELens starts it): on an anisotropic residual
    stream, random directions mostly point where the data has little variance, and those latents
    never win a top-k slot. `scale`: the trainer's whitening map, so that the directions live in
    the whitened space the SAE trains in (a scaling factor alone changes no direction)."""
    scale = scale or (lambda vectors: vectors)
    rows = torch.randint(len(training), (sae.W_dec.shape[0],), generator=torch.Generator().manual_seed(seed + 1))
    directions = scale(training[rows]) - scale(training.mean(0, keepdim=True))
    directions /= directions.norm(dim=1, keepdim=True).clamp(min=1e-8)
    sae.W_dec.data.copy_(directions * sae.W_dec.norm(dim=1, keepdim=True))
    sae.W_enc.data.copy_(sae.W_dec.data.T)


def make_trainer(config: SAETrainingConfig, sae, data_provider, steps: int):
    """SAELens's trainer for `steps` batches: lr warm-up, then decay to a tenth over the last fifth."""
    from sae_lens.config import SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    # AuxK's window is counted in steps; capped at a quarter of the run so that it can fire.
    dead_window = max(1, min(config.dead_window_vectors // config.batch_size, steps // 4))
    trainer_config = SAETrainerConfig(
        total_training_samples=steps * config.batch_size, train_batch_size_samples=config.batch_size,
        lr=config.lr, lr_end=config.lr / 10, lr_scheduler_name="constant", lr_warm_up_steps=min(100, steps // 10),
        lr_decay_steps=steps // 5, device="cpu", dead_feature_window=dead_window,
        feature_sampling_window=max(100, steps // 4), n_batches_for_norm_estimate=min(50, steps),
    )
    return SAETrainer(cfg=trainer_config, sae=sae, data_provider=data_provider)


def train_sae(vectors: torch.Tensor, config: SAETrainingConfig) -> SAETrainingResult:
    """Train a SAE on `vectors` (n, d_in) and measure it on held-out vectors."""
    config.validate()
    from .format import inference_form

    vectors = vectors.float()
    held_out_rows, training_rows = split_held_out(len(vectors), config)
    held_out, training = vectors[held_out_rows], vectors[training_rows]
    if len(training) < config.batch_size:
        raise WhisperLensError(f"SAE training for {config.hook}: {len(training)} vectors, "
                               f"fewer than one batch of {config.batch_size}")
    steps = min(config.training_vectors, config.max_epochs * len(training)) // config.batch_size
    sae = build_training_sae(config, vectors.shape[1], steps)
    log = DeadLatentLog(shuffled_batches(training, config.batch_size, config.seed))
    trainer = make_trainer(config, sae, log, steps)
    if config.whiten_input:
        initialise_whitening(trainer, sae, training, config)  # centres the input itself: b_dec stays 0
    elif config.init_from_data:
        initialise_from_data(trainer, sae, training)
    if config.init_decoder_from_data:
        whitening = trainer.activation_scaler.scale if config.whiten_input else None
        initialise_directions_from_data(sae, training, config.seed, whitening)
    log.trainer = trainer
    # Adam's second moments of rarely active features decay into denormal floats, which CPUs
    # process ~100x slower; flushing them to zero halves the training time, same results.
    torch.set_flush_denormal(True)
    try:
        trained = trainer.fit()
    finally:
        torch.set_flush_denormal(False)
    inference_sae = inference_form(trained)
    metrics = evaluate_sae(inference_sae, held_out)
    metrics.update(log.summary())
    metrics["dead_features_in_training"] = int(trainer.dead_neurons.sum())
    metrics["auxk_dead_window_steps"] = trainer.cfg.dead_feature_window
    metrics["training_vectors"] = steps * config.batch_size
    return SAETrainingResult(config, trained, inference_sae, metrics)


def frequency_histogram(counts: torch.Tensor, n_vectors: int) -> dict:
    """Dead latents (no firing on any of the `n_vectors`) and the log10 firing frequency of the
    live ones in half-decade bins from the resolution limit (1 / n_vectors) up to 1."""
    live = counts[counts > 0].double() / n_vectors
    lowest = math.floor(math.log10(1 / n_vectors) / FREQUENCY_BIN_WIDTH) * FREQUENCY_BIN_WIDTH
    edges = [lowest + FREQUENCY_BIN_WIDTH * i for i in range(round(-lowest / FREQUENCY_BIN_WIDTH) + 1)]
    histogram = torch.histogram(live.log10().clamp(max=-1e-9), bins=torch.tensor(edges, dtype=torch.double))
    return {"dead": int((counts == 0).sum()), "log10_bin_edges": edges,
            "live_counts": [int(c) for c in histogram.hist.tolist()]}


@torch.no_grad()
def evaluate_sae(sae, vectors: torch.Tensor, batch_size: int = 8192) -> dict:
    """On held-out `vectors`: explained variance (1 - residual / total variance), mean L0, dead
    latents (never active on any of them) and the log10 firing-frequency histogram.

    Explained variance is also given apart for the massive frames (norm above MASSIVE_NORM_RATIO
    times the median: in tiny.en's block 3 they are under 1% of frames but carry ~40% of the
    variance, so the overall figure mostly says how well the SAE rebuilds them) and the others.
    """
    sae.eval()
    norms = vectors.norm(dim=1)
    massive = norms > MASSIVE_NORM_RATIO * norms.median()
    squared_error = torch.zeros(len(vectors), dtype=torch.double)
    counts = torch.zeros(int(sae.cfg.d_sae), dtype=torch.long)
    for start in range(0, len(vectors), batch_size):
        batch = vectors[start: start + batch_size]
        features = sae.encode(batch)
        squared_error[start: start + len(batch)] = (sae.decode(features) - batch).pow(2).sum(1)
        counts += (features > 0).sum(0)
    histogram = frequency_histogram(counts, len(vectors))
    return {
        "explained_variance": _explained_variance(vectors, squared_error),
        "explained_variance_ordinary": _explained_variance(vectors[~massive], squared_error[~massive]),
        "explained_variance_massive": _explained_variance(vectors[massive], squared_error[massive]),
        "massive_frames": int(massive.sum()),
        "l0": counts.sum().item() / len(vectors),
        "dead_features": histogram["dead"],
        "firing_frequency": histogram,
        "d_sae": int(sae.cfg.d_sae),
        "eval_vectors": len(vectors),
    }


def _explained_variance(vectors: torch.Tensor, squared_error: torch.Tensor) -> float | None:
    total = (vectors.double() - vectors.double().mean(0)).pow(2).sum().item() if len(vectors) > 1 else 0.0
    return 1 - squared_error.sum().item() / total if total > 0 else None
