"""`whisperlens STUDY run|show`: the command line of every study, derived from its config
dataclass (simple_parsing reads the fields, their types, defaults and same-line comments)."""

from __future__ import annotations

import functools
from pathlib import Path

from .registry import Study


def register_study(subparsers, study: Study) -> None:
    import simple_parsing

    options = {"nested_mode": simple_parsing.NestedMode.WITHOUT_ROOT, "add_config_path_arg": False}
    parser = subparsers.add_parser(study.name, help=study.title, description=study.description)
    # simple_parsing's parser for the actions: it turns the flags back into the config dataclass.
    # Every action parser, a study's own extra commands included, asks for dashed flags: simple_parsing
    # keeps the dash setting of the last parser it made in a global read at parse time, so one
    # parser made without it would turn --dashed-flags off for every study.
    dashed_parser = functools.partial(simple_parsing.ArgumentParser,
                                      add_option_string_dash_variants=simple_parsing.DashVariant.DASH)
    actions = parser.add_subparsers(dest=f"{study.name}_action", required=True, metavar="ACTION",
                                    parser_class=dashed_parser)
    default_out = Path("runs") / study.name
    if study.add_commands is not None:
        study.add_commands(actions)

    run = actions.add_parser("run", aliases=list(study.run_aliases),
                             help=f"run the study, or reuse its saved result (default folder {default_out})",
                             description=study.description, **options)
    # Flags come from the config's fields, flattened: --model, --device, --clips, --batch-size, ...
    run.add_arguments(study.config, dest="config")
    run.add_argument("--out", type=Path, default=default_out, help=f"result folder (default: {default_out})")
    run.add_argument("--force", action="store_true", help="run even if a saved result has the same fingerprint")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(run=lambda args: _run(study, args))

    show = actions.add_parser("show", help="print a saved result", **options)
    show.add_argument("--out", type=Path, default=default_out, help=f"result folder (default: {default_out})")
    show.set_defaults(run=lambda args: _show(study, args))


def _run(study: Study, args) -> int:
    from .blocks import blocks_as_text
    from .context import StudyContext
    from .runner import run_study

    context = StudyContext(args.out, progress=not args.no_progress)
    result, ran = run_study(study, args.config, args.out, context, force=args.force)
    print(blocks_as_text(result.views()))
    print(f"\n{'result' if ran else 'saved result (same fingerprint; --force to rerun)'}: {result.folder}"
          f"\npage: {result.folder / 'index.html'}")
    return 0


def _show(study: Study, args) -> int:
    from .blocks import blocks_as_text

    result = study.result.load(args.out)
    print(blocks_as_text(result.views()))
    print(f"\npage: {args.out / 'index.html'}")
    return 0
