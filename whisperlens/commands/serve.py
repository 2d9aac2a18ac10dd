"""`whisperlens serve [RUN_DIR]`: the dashboard, a local web app over a run directory."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    from ..dashboard import DEFAULT_MAX_UPLOAD_MB

    parser = subparsers.add_parser(
        "serve", help="browse, hear and poke at a run in the browser (the dashboard)",
        description="Serve the dashboard over a run directory: every study's page, the feature browser, "
                    "feature pages with audio, your own audio, interventions and attention.",
    )
    parser.add_argument("run_dir", nargs="?", default="runs/main", help="the run directory (default: runs/main)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; anything else exposes it)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--store", default=None, help="feature store folder (default: the one the run's results name)")
    parser.add_argument("--model", default=None, help="model for your audio and pokes (default: the store's, else tiny.en)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f"largest upload accepted, in MB (default: {DEFAULT_MAX_UPLOAD_MB})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..dashboard.app import create_app
    from ..dashboard.server import LOOPBACK, make_server
    from ..devices import check_device
    from ..errors import WhisperLensError

    if not 0 <= args.port <= 65535:
        raise WhisperLensError(f"--port must be 0-65535, not {args.port}")
    if not args.max_upload_mb > 0:
        raise WhisperLensError(f"--max-upload-mb must be positive, not {args.max_upload_mb}")
    check_device(args.device)
    app = create_app(args.run_dir, load_studies(args.study_modules), store=args.store, model=args.model,
                     device=args.device, max_upload_mb=args.max_upload_mb)
    try:
        server = make_server(app, args.host, args.port)
    except OSError as error:
        raise WhisperLensError(f"cannot listen on {args.host}:{args.port} ({error.strerror or error})") from None
    if args.host not in LOOPBACK:
        print(f"whisperlens: warning: listening on {args.host}: anyone who can reach this machine can use the "
              "dashboard (and run the model); there is no login", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    run_dir = app.extensions["whisperlens"]["run"].root
    print(f"whisperlens dashboard for {run_dir}: http://{host}:{server.port}/  (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def load_studies(module_names: list[str]) -> list:
    """The Study of each module the command line names (cli.STUDY_MODULES, passed in by the
    parser: importing cli here would make it a cycle), skipping any not in this checkout."""
    import importlib

    studies = []
    for name in module_names:
        try:
            studies.append(importlib.import_module(name).STUDY)
        except ModuleNotFoundError as error:
            if not (error.name and name.startswith(error.name)):
                raise
    return studies
