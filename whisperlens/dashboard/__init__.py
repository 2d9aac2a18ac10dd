"""The dashboard: `whisperlens serve [RUN_DIR]`, a local web app over a run directory.

    rundir.py         what a run directory holds: studies' results, the feature store, files to serve
    feature_index.py  the SQLite index the feature browser searches
    feature_view.py   one feature as its page shows it
    workbench.py      the shared model (one request at a time), uploaded and corpus clips
    analysis.py       transcript, per-frame features, interventions, attention: functions of a model
    figures.py        matplotlib PNGs made per request
    params.py         query parameters, checked
    app.py            the Flask app and its error policy; pages.py (HTML) and api.py (JSON, media)
    server.py         the threaded server
    static/           the one script and style sheet (no CDN, no build step)

Nothing here is imported by the command line until `serve` runs (Flask is not loaded for other commands).
"""

DEFAULT_MAX_UPLOAD_MB = 20
