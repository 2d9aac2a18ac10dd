"""`whisperlens inspect`: every hook point's shape and statistics over a transcription."""

from __future__ import annotations

import argparse

from ..errors import WhisperLensError
from ..inspection import inspect_audio, summary_rows
from .common import add_model_arguments, check_language, load_model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="list hook points with shapes and statistics",
        description="Transcribe one file with every matching hook cached; print each hook's shape and statistics.",
    )
    parser.add_argument("audio", help="audio file")
    add_model_arguments(parser)
    parser.add_argument("--hooks", default="*",
                        help="glob over hook names, e.g. 'encoder.blocks.*.hook_resid_post' (default: all)")
    parser.add_argument("--language", help="language code (default: detect; English for .en models)")
    parser.add_argument("--save", help="save the cache to FILE (.safetensors or .npz)")
    parser.set_defaults(run=run)


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
