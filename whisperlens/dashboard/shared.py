"""What the pages and the API share: the app's state (the run directory, the workbench, the
feature index) and the error that means "not there" (a 404)."""

from __future__ import annotations

from flask import current_app

from ..errors import WhisperLensError


class NotFound(WhisperLensError):
    """Something the request names that is not there: a 404."""


def state() -> dict:
    return current_app.extensions["whisperlens"]


def feature_index():
    """The store's search index, opened (and built if missing or stale) on first use."""
    from .feature_index import FeatureIndex

    app_state = state()
    if "index" not in app_state:
        app_state["index"] = FeatureIndex(app_state["workbench"].require_store())
    return app_state["index"]
