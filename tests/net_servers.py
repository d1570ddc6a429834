"""Local test servers on the loopback network: a redirector, a trickler, a slow-header server."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TRICKLE_INTERVAL_S = 0.2
TRICKLE_MAX_BYTES = 150  # bounds the trickle at 30 s even if the client never gives up


class _Server:
    """A ThreadingHTTPServer for ``handler`` on ``host`` (any 127.0.0.0/8 address), in a thread."""

    def __init__(self, handler: type, host: str = "127.0.0.1"):
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


def redirect_server(target: str, host: str = "127.0.0.1") -> _Server:
    """Answers every GET with a 302 to ``target``."""

    class Handler(_Quiet):
        def do_GET(self):  # noqa: N802 - stdlib name
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return _Server(Handler, host)


def bytes_server(body: bytes, host: str = "127.0.0.1") -> _Server:
    """Answers every GET with ``body`` (200, application/octet-stream)."""

    class Handler(_Quiet):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return _Server(Handler, host)


def trickle_server(in_headers: bool = False, host: str = "127.0.0.1") -> _Server:
    """Sends one byte every TRICKLE_INTERVAL_S (of the body, or of the headers), at most
    TRICKLE_MAX_BYTES, then stops."""

    class Handler(_Quiet):
        def do_GET(self):  # noqa: N802
            try:
                if in_headers:
                    self.wfile.write(b"HTTP/1.0 200 OK\r\n")
                    self._trickle(b"X-Slow: " + b"a" * TRICKLE_MAX_BYTES)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(TRICKLE_MAX_BYTES))
                    self.end_headers()
                    self._trickle(b"b" * TRICKLE_MAX_BYTES)
            except OSError:
                pass

        def _trickle(self, data: bytes) -> None:
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(TRICKLE_INTERVAL_S)

    return _Server(Handler, host)


def loopback_alias_available(address: str) -> bool:
    """Whether this machine can listen on ``address`` (Linux routes all of 127.0.0.0/8 to lo)."""
    try:
        with socket.socket() as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False
