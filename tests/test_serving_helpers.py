"""Helpers for the serving tests: a fixture clip, local HTTP servers, JSON requests."""
from __future__ import annotations

import functools
import json
import socket
import threading
import urllib.error
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from audio_fixtures import SAMPLE_RATE, word_audio

FIXTURE_WORD = "down"
FIXTURE_SEED = 123
HTTP_TIMEOUT_S = 60


def write_fixture_clip(path: Path, word: str = FIXTURE_WORD) -> Path:
    """A fresh (not in the training set) clip of one synthetic fixture word."""
    from kws.edge.audio import write_wav

    write_wav(path, word_audio(word, np.random.default_rng(FIXTURE_SEED)), SAMPLE_RATE)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, data: bytes | None = None, headers: dict | None = None,
            method: str | None = None, timeout: float = HTTP_TIMEOUT_S) -> tuple[int, dict | list]:
    """(status, parsed JSON) of an HTTP request; HTTP errors return their status too."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except json.JSONDecodeError:
            return exc.code, {"raw": body.decode("utf-8", "replace")}


class FileServer:
    """A static http.server on 127.0.0.1 (or another loopback address) serving one folder, in a thread."""

    def __init__(self, folder: Path, host: str = "127.0.0.1"):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def do_GET(self):  # noqa: N802 - stdlib name
        if self.path == "/to-file":  # a redirect to a non-http scheme
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()
