"""`whisperlens transcribe`: openai-whisper's transcribe on the hooked model."""

from __future__ import annotations

import argparse
import json

from ..inspection import transcribe_file
from .common import add_model_arguments, check_language, load_model_from_args


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "transcribe", help="transcribe audio files",
        description="Transcribe audio files (any format PyAV reads; long files in 30 s windows).",
    )
    parser.add_argument("audio", nargs="+", help="audio files")
    add_model_arguments(parser)
    parser.add_argument("--language", help="language code or name (default: detect; English for .en models)")
    parser.add_argument("--word-timestamps", action="store_true", help="add word start/end times")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..audio import load_audio

    for path in args.audio:  # check every input before the slow model load
        load_audio(path)
    model = load_model_from_args(args)
    language = check_language(model, args.language)
    results = [transcribe_file(model, path, language, args.word_timestamps) for path in args.audio]
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
        return 0
    for entry in results:
        prefix = f"{entry['file']}: " if len(results) > 1 else ""
        print(f"{prefix}{entry['text']}")
        for word in entry.get("words", []):
            print(f"  {word['start']:7.2f} {word['end']:7.2f}  {word['word']}")
    return 0
