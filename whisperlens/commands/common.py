"""Arguments and checks shared by several subcommands."""

from __future__ import annotations

import argparse

from ..devices import DTYPES, check_device
from ..errors import WhisperLensError


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny.en",
                        help="bundled name (tiny.en, base) or a path to a Whisper checkpoint (default: tiny.en)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="weights and activations (default: float32)")


def load_model_from_args(args: argparse.Namespace):
    from ..models.loading import load_model

    check_device(args.device)
    return load_model(args.model, device=args.device, dtype=DTYPES[args.dtype])


def check_language(model, language: str | None) -> str | None:
    """Validate a language code or name against the model; None means auto-detect."""
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    if language is None:
        return "en" if not model.is_multilingual else None
    code = language.lower()
    code = TO_LANGUAGE_CODE.get(code, code)
    if code not in LANGUAGES:
        raise WhisperLensError(f"unknown language {language!r}; use a code such as en, es, fr, de")
    if not model.is_multilingual and code != "en":
        raise WhisperLensError(f"model {model.name} is English-only; "
                               f"use a multilingual model (e.g. --model base) for {language!r}")
    return code
