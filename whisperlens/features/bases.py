"""Feature bases: the ways of reading features off an activation vector.

A basis maps activations (frames, d) at one hook point to feature values (frames, n_features).
- neurons: the activation's own coordinates;
- random: projections onto seeded random orthonormal directions, the baseline any claim
  that neurons (or SAE features) are interpretable has to beat;
- sae: a SAELens SAE's encoder.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from ..errors import WhisperLensError

BASIS_KINDS = ("neurons", "random", "sae")


class Basis(Protocol):
    kind: str
    hook: str
    n_features: int

    def encode(self, activations: torch.Tensor) -> torch.Tensor:
        """(frames, d) activations -> (frames, n_features) float32 feature values."""

    def direction(self, index: int) -> torch.Tensor:
        """(d,) the direction in activation space that feature `index` writes: what steering adds."""


@dataclass
class NeuronBasis:
    hook: str
    n_features: int
    kind: str = "neurons"

    def encode(self, activations: torch.Tensor) -> torch.Tensor:
        return activations.float()

    def direction(self, index: int) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.tensor(index), self.n_features).float()


@dataclass
class RandomBasis:
    """`n_features` orthonormal directions, drawn from a seed and the hook's name."""

    hook: str
    d_in: int
    n_features: int
    seed: int = 0
    kind: str = "random"

    def __post_init__(self) -> None:
        if not 0 < self.n_features <= self.d_in:
            raise WhisperLensError(f"random basis for {self.hook}: asked for {self.n_features} directions "
                                   f"in {self.d_in} dimensions")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(self.hook.encode()))
        # QR in float64: LAPACK's float32 result changes in the last bits with its thread count
        # and what ran before it, and the same seed must give the same directions.
        gaussian = torch.randn(self.d_in, self.n_features, generator=generator).double()
        q, r = torch.linalg.qr(gaussian)
        # Fixing the signs by R's diagonal makes Q Haar-distributed (Mezzadri 2007).
        self.directions = (q * torch.sign(torch.diagonal(r))).float().contiguous()  # (d_in, n)

    def encode(self, activations: torch.Tensor) -> torch.Tensor:
        return activations.float() @ self.directions

    def direction(self, index: int) -> torch.Tensor:
        return self.directions[:, index].clone()


class SAEBasis:
    """A SAELens SAE read from disk (its `cfg.json` names the hook it was trained on)."""

    kind = "sae"

    def __init__(self, path: str | Path, hook: str | None = None):
        from ..sae.format import load_sae

        self.path = Path(path)
        self.sae = load_sae(self.path)
        self.hook = hook or self.sae.cfg.metadata.hook_name
        self.n_features = int(self.sae.cfg.d_sae)

    @torch.no_grad()
    def encode(self, activations: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(activations.float())

    @torch.no_grad()
    def direction(self, index: int) -> torch.Tensor:
        return self.sae.W_dec[index].detach().float().clone()  # the latent's decoder row


def basis_name(kind: str, hook: str) -> str:
    """How a site is named in the store and on the command line: the hook for neurons,
    `kind:hook` for the others."""
    return hook if kind == "neurons" else f"{kind}:{hook}"
