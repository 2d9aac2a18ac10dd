"""The `whisperlens` command line.

Each subcommand lives beside the code it drives, in a module with a `register(subparsers)`
function; adding a study means adding its module to COMMAND_MODULES and nothing else.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import WhisperLensError

# One module per study, each defining STUDY: `whisperlens NAME run|show` and the flags of its config.
STUDY_MODULES = [
    "whisperlens.studies.example",
    "whisperlens.studies.wer",
    "whisperlens.studies.align",
    "whisperlens.studies.layers",
    "whisperlens.features.study",
    "whisperlens.features.agreement",
    "whisperlens.studies.probes",
    "whisperlens.studies.decoder_lm",
    "whisperlens.studies.locality",
    "whisperlens.studies.patching",
]

COMMAND_MODULES = [
    "whisperlens.commands.run",
    "whisperlens.commands.transcribe",
    "whisperlens.commands.inspect",
    "whisperlens.commands.models",
    "whisperlens.commands.serve",
    "whisperlens.corpus.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisperlens", description="Mechanistic interpretability for OpenAI Whisper."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.set_defaults(study_modules=STUDY_MODULES)  # for commands that show any study's results (serve)
    from .study.cli import register_study

    for module_name in STUDY_MODULES:
        register_study(subparsers, importlib.import_module(module_name).STUDY)
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # a study not present in this checkout
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args) or 0)
    except WhisperLensError as error:
        print(f"whisperlens: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed: not an error of ours
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("whisperlens: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
