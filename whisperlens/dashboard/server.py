"""Serving the app: werkzeug's threaded WSGI server, on the loopback interface unless asked."""

from __future__ import annotations

import contextlib
import threading

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def make_server(app, host: str = "127.0.0.1", port: int = 8000):
    """A threaded server bound to host:port (port 0: a free one); `server.port` says which."""
    from werkzeug.serving import make_server as werkzeug_server

    return werkzeug_server(host, port, app, threaded=True)


@contextlib.contextmanager
def serving(app, host: str = "127.0.0.1", port: int = 0):
    """Serve `app` in a background thread for the block; yield its base URL."""
    server = make_server(app, host, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
