"""Serving the app: werkzeug's threaded WSGI server, on the loopback interface unless asked."""

from __future__ import annotations

import contextlib
import threading

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def make_server(app, host: str = "127.0.0.1", port: int = 8000, log_requests: bool = True):
    """A threaded server bound to host:port (port 0: a free one); `server.port` says which."""
    from werkzeug.serving import WSGIRequestHandler
    from werkzeug.serving import make_server as werkzeug_server

    class Handler(WSGIRequestHandler):
        def log_request(self, *args) -> None:
            if log_requests:
                super().log_request(*args)

    return werkzeug_server(host, port, app, threaded=True, request_handler=Handler)


@contextlib.contextmanager
def serving(app, host: str = "127.0.0.1", port: int = 0):
    """Serve `app` in a background thread for the block, without a log line per request; yield its base URL."""
    server = make_server(app, host, port, log_requests=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
