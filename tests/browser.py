"""Pages as a person sees them: a loopback HTTP server and Debian's Chromium driven by Playwright.

Never `playwright install`: it downloads a browser, and there is no network here.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # a test's output should not list every request
        pass


@contextlib.contextmanager
def serve(root: Path):
    """Serve `root` on 127.0.0.1 at a free port for the duration of the block; yield the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def browser_page(profile: Path):
    """A Chromium page with a fresh profile; every request it makes is recorded on `page.requests`."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is not installed: run `bash scripts/setup.sh --test`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            page = context.new_page()
            page.requests = []
            page.errors = []
            page.on("request", lambda request: page.requests.append(request.url))
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            yield page
        finally:
            context.close()


def broken_images(page) -> list[str]:
    return page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")


def drag_over_word(page, word) -> tuple[float, float]:
    """Select a word's span (its button's data-start and data-end) on the dashboard's clip
    spectrogram with a mouse drag, as a person would; the word's (start, end) in seconds."""
    page.wait_for_function("document.getElementById('spectrogram-image').naturalWidth > 0", timeout=120_000)
    box = page.locator("#spectrogram").bounding_box()
    duration = float(page.get_attribute("#spectrogram", "data-duration"))
    start, end = (float(word.get_attribute(f"data-{edge}")) for edge in ("start", "end"))
    page.mouse.move(box["x"] + box["width"] * start / duration, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end / duration, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    return start, end
