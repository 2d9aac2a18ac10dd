"""`whisperlens inspect`: every hook point's shape and statistics over a transcription."""

from __future__ import annotations

import argparse

from ..errors import WhisperLensError
from .common import add_model_arguments, check_language, load_model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="list hook points with shapes and statistics", description="Transcribe one file with every matching hook cached; print each hook's shape and statistics.")
    parser.add_argument("audio", help="audio file")
    add_model_arguments(parser)
    parser.add_argument("--hooks", default="*", help="glob over hook names, e.g. 'encoder.blocks.*.hook_resid_post' (default: all)")
    parser.add_argument("--language", help="language code (default: detect; English for .en models)")
    parser.add_argument("--save", help="save the cache to FILE (.safetensors or .npz)")
    parser.set_defaults(run=run)


def inspect_audio(model, audio, hooks: str, language: str | None):
    """Transcribe `audio` with the matching hooks cached; returns (text, cache)."""
    import whisper

    if not model.hook_names(hooks):
        raise WhisperLensError(f"no hook point matches {hooks!r}; try 'encoder.*' or see `whisperlens inspect FILE`")
    with model.caching(hooks) as cache:
        result = whisper.transcribe(model, audio, language=language, fp16=False, verbose=None)
    return result["text"].strip(), cache


def summary_rows(cache) -> list[tuple[str, str, float, float, float, float]]:
    rows = []
    for name in cache.keys():
        firings = cache.firings(name)
        try:
            tensor = cache[name]
            shape = "×".join(str(s) for s in tensor.shape)
        except WhisperLensError:
            tensor = firings[-1]
            shape = f"{len(firings)} firings, last " + "×".join(str(s) for s in tensor.shape)
        values = tensor.float()
        finite = values[values.isfinite()]
        stats = (finite.mean().item(), finite.std().item(), finite.min().item(), finite.max().item()) if finite.numel() > 1 else (float("nan"),) * 4
        rows.append((name, shape, *stats))
    return rows


def run(args: argparse.Namespace) -> int:
    from ..audio import load_audio

    if args.save and not args.save.endswith((".safetensors", ".npz")):
        raise WhisperLensError(f"{args.save}: --save takes a .safetensors or .npz file")
    audio = load_audio(args.audio)
    model = load_model_from_args(args)
    text, cache = inspect_audio(model, audio, args.hooks, check_language(model, args.language))
    print(f"transcript: {text}")
    print(f"{'hook':52} {'shape':24} {'mean':>9} {'std':>9} {'min':>9} {'max':>9}")
    for name, shape, mean, std, low, high in summary_rows(cache):
        print(f"{name:52} {shape:24} {mean:9.3f} {std:9.3f} {low:9.3f} {high:9.3f}")
    if args.save:
        cache.save(args.save)
        print(f"saved {len(cache)} activations to {args.save}")
    return 0
