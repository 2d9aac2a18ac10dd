"""Torch devices and dtypes by name, checked before any work so a bad one is a one-line error."""

from __future__ import annotations

import torch

from .errors import WhisperLensError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_device(device: str) -> None:
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:  # torch asserts when it was built without CUDA
        raise WhisperLensError(f"device {device!r} is not usable here ({str(error).splitlines()[0]})") from None


def dtype_named(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise WhisperLensError(f"unknown dtype {name!r}; choose from {', '.join(DTYPES)}")
    return DTYPES[name]
