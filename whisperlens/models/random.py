"""A Whisper of a model's size with seeded random weights: the probes' control model, loaded
by shard workers too (whisperlens.distributed), so it lives at the model layer."""

from __future__ import annotations


def random_whisper(model, seed: int):
    """A Whisper of the same dimensions, dtype and device as `model`, with PyTorch's default
    initialisation drawn from a generator seeded by `seed`; no weights are loaded. The global
    random state is left as it was."""
    import torch

    from ..hooked import HookedWhisper
    from .loading import to_device_and_dtype

    dtype = next(model.parameters()).dtype
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        untrained = HookedWhisper(model.dims).eval()
    untrained.name = f"random {getattr(model, 'name', 'whisper')}"
    return to_device_and_dtype(untrained, model.device, dtype)
