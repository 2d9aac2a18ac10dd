"""The dashboard's Flask app: pages (pages.py), data and media (api.py), and one error policy.

Flask rather than FastAPI: every request that does real work is a synchronous torch call
serialised behind one lock (workbench.py), so an async framework would buy nothing; Flask
bounds upload size before reading the body (MAX_CONTENT_LENGTH, a 413), serves byte ranges
for media out of the box, and brings fewer dependencies (no pydantic, uvicorn, multipart
parser). werkzeug's threaded server is enough for a local, single-user tool.

Error policy: a WhisperLensError (bad input, said in one line) is a 400 with its message, a
missing thing a 404, an oversized upload a 413; anything else is a 500 whose page says only
that something broke (the traceback goes to the server's log, never to the browser).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import WhisperLensError
from ..study.render import render
from . import DEFAULT_MAX_UPLOAD_MB, api, pages
from .rundir import MediaNotFound, RunDirectory
from .shared import NotFound
from .workbench import ClipNotFound, Workbench

log = logging.getLogger("whisperlens.dashboard")


def create_app(run_dir: str | Path, studies: list, store: str | Path | None = None, model: str | None = None,
               device: str = "cpu", max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB) -> Flask:
    """The app over `run_dir`; `studies` are the Study records whose results it can show (the
    command line's list: this layer names no study)."""
    run = RunDirectory(run_dir, studies, store)
    feature_store = run.store
    manifest = feature_store.manifest if feature_store is not None else {}
    workbench = Workbench(model or manifest.get("model", "tiny.en"), device, feature_store, manifest.get("mode", "short"))
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    app.extensions["whisperlens"] = {"run": run, "workbench": workbench, "max_upload_mb": max_upload_mb}
    app.register_blueprint(pages.blueprint)
    app.register_blueprint(api.blueprint)
    _error_handlers(app)
    return app


def _error_handlers(app: Flask) -> None:
    def answer(status: int, message: str):
        if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
            return jsonify({"error": message}), status
        return render("dashboard_error.html.j2", title=f"{status}", status=status, message=message), status

    @app.errorhandler(WhisperLensError)
    def bad_input(error: WhisperLensError):
        missing = isinstance(error, (MediaNotFound, ClipNotFound, NotFound))
        return answer(404 if missing else 400, str(error))

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        limit = app.extensions["whisperlens"]["max_upload_mb"]
        return answer(413, f"the upload is larger than the {limit:g} MB limit (serve --max-upload-mb to change it)")

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return answer(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error on %s", request.path)
        return answer(500, "something went wrong on the server (details are in its log)")
