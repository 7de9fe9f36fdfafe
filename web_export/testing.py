"""Driving a web bundle locally: a static server on 127.0.0.1 and a headless Chromium that works offline.

The browser tests (``tests/web``) and the web benchmark (``benchmarks/web.py``) share these, so both
serve files the way ``python -m http.server`` does and start Chromium the same way.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHROMIUM = os.environ.get("EMBERFLOW_CHROMIUM", "/usr/bin/chromium")
# Headless, offline and as root: without the background-networking flags Chromium keeps dialling
# Google's hosts, which this kind of machine refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".wasm": "application/wasm",
    }

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # a test's output is no place for an access log


@contextlib.contextmanager
def serve(folder):
    """Serves ``folder`` on a free port of 127.0.0.1 from a background thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=os.fspath(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="emberflow-static-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def chromium_missing() -> str | None:
    """Why the browser cannot run here (Playwright or Chromium missing), or ``None`` when it can."""
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return "the playwright Python package is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set EMBERFLOW_CHROMIUM)"
    return None


@contextlib.contextmanager
def chromium():
    """A headless Chromium as a Playwright ``Browser``, closed afterwards. Playwright starts it with a
    fresh, empty profile folder of its own, so no run sees another's cache or cookies."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
