"""SAELens's on-disk format: a directory with `cfg.json` and `sae_weights.safetensors`, whose
metadata names the model and hook, so `sae_lens.SAE.load_from_disk(path)` loads it."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import WhisperLensError

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"


def save_sae(training_sae, path: str | Path, metrics: dict | None = None) -> Path:
    """Write the inference form of a SAELens TrainingSAE to `path`, replacing it atomically.

    `metrics` (explained variance, L0, ...) go into the config's metadata beside the
    model and hook names.
    """
    path = Path(path)
    if metrics:
        for key, value in metrics.items():
            training_sae.cfg.metadata[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        training_sae.save_inference_model(staging)
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return path


def inference_form(training_sae):
    """The sae_lens.SAE that `save_sae` would write for `training_sae` (a BatchTopK SAE becomes
    a JumpReLU SAE with its learned threshold), built by SAELens's own save and load."""
    from sae_lens import SAE

    with tempfile.TemporaryDirectory(prefix="wl-sae-") as folder:
        training_sae.save_inference_model(folder)
        return SAE.load_from_disk(folder, device="cpu")


def load_sae(path: str | Path, device: str = "cpu"):
    """An inference SAE (sae_lens.SAE) from a directory in SAELens's format."""
    path = Path(path)
    if not (path / CFG_FILENAME).exists() or not (path / WEIGHTS_FILENAME).exists():
        raise WhisperLensError(f"{path}: not a SAELens SAE directory (needs {CFG_FILENAME} and {WEIGHTS_FILENAME})")
    from sae_lens import SAE

    return SAE.load_from_disk(str(path), device=device)


def sae_metadata(path: str | Path) -> dict:
    """The metadata block of a saved SAE's config, without importing SAELens."""
    try:
        return json.loads((Path(path) / CFG_FILENAME).read_text()).get("metadata", {})
    except (OSError, ValueError) as error:
        raise WhisperLensError(f"{path}: unreadable SAE config ({error})") from None
