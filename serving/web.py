"""``kws serve``: a small web page and JSON API for prediction (stdlib http.server only).

Endpoints
  GET  /                 the page (upload an audio file, paste a URL, or record from the microphone)
  GET  /static/<file>    its JS and CSS
  GET  /api/model        {"model", "labels", "frontend"}
  POST /api/predict      body: audio file bytes (WAV, FLAC, OGG, MP3; any content type),
                         multipart/form-data with a ``file`` field, or JSON {"url": "http(s)://..."}; query ``top_k`` (default 3),
                         ``features=1`` adds the model's input features for the spectrogram view,
                         ``name`` names an upload in the answer, ``url`` is fetched instead of a body
                         (which may then be absent, Content-Length and all).
Errors are JSON ``{"error": "..."}`` with a 4xx status (413 for uploads over the limit, 408 for a
body that does not arrive); a server fault is a 500 with a generic message, the traceback goes to
the server's log only; 503 when every worker is busy. URLs are fetched only from public addresses
unless ``--allow-private-urls``; fetched bytes are never echoed.
"""
from __future__ import annotations

import json
import logging
import math
import re
import socket
import sys
import threading
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click

from kws.edge.errors import AudioTooLongError, KwsError
from kws.edge.locate import SINGLE_MODEL, resolve_model

from .fetch import ALLOW_ALL, PUBLIC_ONLY, FetchError, TooLargeError, UrlPolicy, fetch_url
from .multipart import first_file_part
from .predictor import DEFAULT_TOP_K, MAX_AUDIO_SECONDS, Predictor

LOG = logging.getLogger("kws.serving.web")
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_URL_BYTES = 10 * 1024 * 1024
URL_TIMEOUT_S = 15.0
MAX_JSON_BYTES = 64 * 1024
MAX_TOP_K = 100
DRAIN_FACTOR = 4  # over-limit bodies up to this many times the limit are read and dropped
DRAIN_CHUNK = 1 << 16
MAX_NAME_CHARS = 200  # an upload's display name (?name=)
MAX_SHOWN_VALUE = 40  # of a bad parameter, in its error message
INTEGER_RE = re.compile(r"[+-]?[0-9]+")  # ASCII digits only (str.isdigit also accepts '²')
# errors answered before the body was read: the connection cannot be reused
CLOSE_STATUSES = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.LENGTH_REQUIRED, HTTPStatus.REQUEST_TIMEOUT)
LISTEN_BACKLOG = 128  # connections the kernel queues while every worker is busy (socketserver's default is 5)
MAX_WORKERS = 32  # requests handled at once; more wait up to SLOT_WAIT_S, then get a 503
SLOT_WAIT_S = 2.0
IDLE_TIMEOUT_S = 15.0  # a connection that sends nothing for this long is closed
READ_TIMEOUT_S = 30.0  # a request's line, headers and body must all arrive within this
BUSY_DRAIN_BYTES = 64 * 1024  # what a refused connection's request may have sent, read away before closing
BUSY_BODY = json.dumps({"error": "server busy: too many requests at once; retry shortly"}).encode()
PREDICT_PATH = "/api/predict"
ALLOWED_METHODS = "GET, HEAD, POST"  # of the server; /api/predict takes POST only
BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                 b"Connection: close\r\nContent-Length: " + str(len(BUSY_BODY)).encode() + b"\r\n\r\n" + BUSY_BODY)


class HttpError(Exception):
    """An error answered as JSON with this status."""

    def __init__(self, status: int, message: str, close: bool = False, allow: str | None = None):
        super().__init__(message)
        self.status = status
        self.close = close  # the body was not (fully) read: the connection cannot be reused
        self.allow = allow  # the methods the path takes (the Allow header of a 405)


class KwsHandler(BaseHTTPRequestHandler):
    """Serves the page, the static files and the JSON API for one Predictor."""

    server_version = "kws-serve"
    protocol_version = "HTTP/1.1"
    predictor: Predictor  # these are set on the subclass made by make_server
    url_policy: UrlPolicy = PUBLIC_ONLY
    timeout = IDLE_TIMEOUT_S  # socket timeout of every read and write (StreamRequestHandler)
    read_timeout_s = READ_TIMEOUT_S
    _watchdog: threading.Timer | None = None
    _body_done = False  # this request's body has been read (or there was none to read)

    # ------------------------------------------------------------ slow clients
    def handle_one_request(self) -> None:
        """One request, with a watchdog closing the connection if it does not arrive in time."""
        self._watchdog = threading.Timer(self.read_timeout_s, self._too_slow)
        self._watchdog.daemon = True
        self._watchdog.start()
        self._body_done = False
        try:
            super().handle_one_request()
        finally:
            self._request_read()

    def _request_read(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()

    def _too_slow(self) -> None:
        LOG.info("%s: request not received within %g s; closing", self.address_string(), self.read_timeout_s)
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        LOG.info("%s %s", self.address_string(), format % args)

    def _body_unread(self) -> bool:
        """A request body was announced and not read: answering and then reading on would take those
        bytes for the next request (a client could smuggle one in), so the connection must close."""
        if self._body_done or not hasattr(self, "headers"):
            return False
        if self.headers.get("Transfer-Encoding"):
            return True
        length = (self.headers.get("Content-Length") or "0").strip()
        return not (length.isdigit() and int(length) == 0)

    def _send(self, status: int, body: bytes, content_type: str, close: bool = False,
              allow: str | None = None) -> None:
        close = close or self._body_unread()
        self.send_response(status)
        if allow:
            self.send_header("Allow", allow)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, close: bool = False, allow: str | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", close, allow)

    def _error(self, status: int, message: str, close: bool = False, allow: str | None = None) -> None:
        self._json(status, {"error": message}, close, allow)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (a malformed request line, a header line over 64 KiB, an unknown
        method) as JSON like every other error, instead of its HTML page; the connection closes."""
        self._error(code, message or HTTPStatus(code).phrase, close=True)

    def _guard(self, fn) -> None:
        """Run a handler; HttpError/KwsError become JSON 4xx, anything else a bare 500."""
        try:
            fn()
        except HttpError as exc:
            self._error(exc.status, str(exc), close=exc.close or exc.status in CLOSE_STATUSES, allow=exc.allow)
        except (TooLargeError, AudioTooLongError) as exc:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc))
        except FetchError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except KwsError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the client gets a message, the log gets the traceback
            LOG.exception("error handling %s %s", self.command, self.path)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal server error (see the server log)")

    # ------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._guard(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._guard(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guard(self._post)

    def do_OPTIONS(self) -> None:  # noqa: N802
        """What the server takes: an empty 200 with Allow."""
        self._request_read()
        self._send(HTTPStatus.OK, b"", "application/json", allow=ALLOWED_METHODS)

    def _not_allowed(self) -> None:
        self._request_read()
        raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported here; use "
                        f"GET for the page and /api/model, POST for {PREDICT_PATH}", allow=ALLOWED_METHODS)

    def do_PUT(self) -> None:  # noqa: N802
        self._guard(self._not_allowed)

    do_DELETE = do_PATCH = do_PUT

    def _get(self) -> None:
        self._request_read()
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/model":
            return self._json(HTTPStatus.OK, self.predictor.info())
        if path == PREDICT_PATH:
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{PREDICT_PATH} takes POST (an audio file, "
                            'multipart with a "file" field, or JSON {"url": ...})', allow="POST")
        raise HttpError(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    def _static(self, name: str) -> None:
        allowed = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        if name not in allowed or Path(name).suffix not in STATIC_TYPES:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such file: {name}")
        self._send(HTTPStatus.OK, allowed[name].read_bytes(), STATIC_TYPES[Path(name).suffix])

    def _read_body(self, limit: int, required: bool = True) -> bytes:
        """The request body (Content-Length bytes, at most ``limit``), then the watchdog is off. Unless
        ``required``, a request with neither Content-Length nor Transfer-Encoding has an empty body
        (HTTP/1.1's rule: ``curl -X POST '...?url=...'`` sends no Content-Length)."""
        try:
            return self._read_body_within(limit, required)
        except TimeoutError:
            raise HttpError(HTTPStatus.REQUEST_TIMEOUT,
                            f"request body not received within {self.timeout:g} s") from None
        finally:
            self._request_read()

    def _read_body_within(self, limit: int, required: bool = True) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "chunked uploads are not supported; send Content-Length")
        if length is None and not required and not self.headers.get("Transfer-Encoding"):
            self._body_done = True
            return b""
        if length is None or not length.strip().isdigit():
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        size = int(length)
        if size > limit:
            if size <= DRAIN_FACTOR * limit:  # read it away so the client sees the 413, not a reset
                self._body_done = self._discard(size)
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"upload is {_size_text(size)}, more than the {_size_text(limit)} allowed")
        data = self.rfile.read(size)
        self._body_done = len(data) == size
        if len(data) < size:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"request body ended after {len(data)} of the {size} bytes "
                                                    "its Content-Length announced", close=True)
        return data

    def _discard(self, size: int) -> bool:
        """Read ``size`` bytes of body away; whether all of them came."""
        while size > 0:
            chunk = self.rfile.read(min(size, DRAIN_CHUNK))
            if not chunk:
                return False
            size -= len(chunk)
        return True

    def _post(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != PREDICT_PATH:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such endpoint: {parts.path}")
        query = urllib.parse.parse_qs(parts.query)
        top_k = _int_arg(query, "top_k", DEFAULT_TOP_K)
        with_features = query.get("features", ["0"])[0] in ("1", "true", "yes")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        url = query.get("url", [None])[0]
        if ctype == "application/json":
            body = self._read_body(MAX_JSON_BYTES)
            try:
                payload = json.loads(body or b"{}")
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise HttpError(HTTPStatus.BAD_REQUEST, "request body is not valid JSON") from None
            if not isinstance(payload, dict):
                raise HttpError(HTTPStatus.BAD_REQUEST, 'expected a JSON object like {"url": "https://..."}')
            url = payload.get("url") or url
            top_k = _int_value(payload.get("top_k", top_k), "top_k")
            if not url:
                raise HttpError(HTTPStatus.BAD_REQUEST, 'JSON body needs "url"')
            if not isinstance(url, str):
                raise HttpError(HTTPStatus.BAD_REQUEST, f'"url" must be a string like "https://host/clip.wav", '
                                                        f"got a JSON {_json_type(url)}")
        if url:
            if ctype != "application/json":
                self._read_body(MAX_JSON_BYTES, required=False)  # drain any body: the connection stays usable
            data = fetch_url(str(url), MAX_URL_BYTES, URL_TIMEOUT_S, self.url_policy)
            source = str(url)
            result = self.predictor.predict_fetched(data, top_k)
        else:
            data = self._read_body(MAX_UPLOAD_BYTES)
            source = query.get("name", ["upload"])[0][:MAX_NAME_CHARS] or "upload"
            if ctype == "multipart/form-data":
                data = first_file_part(data, self.headers.get("Content-Type", ""))
            result = self.predictor.predict_bytes(data, top_k, name=source)
        out = result.to_dict(with_features)
        out.update({"input": source, "model": str(self.predictor.path)})
        self._json(HTTPStatus.OK, out)


def _int_value(value: Any, name: str) -> int:
    """An integer in [1, MAX_TOP_K] from a query string or JSON value; HttpError 400 otherwise."""
    number: Any = value
    if isinstance(value, str) and INTEGER_RE.fullmatch(value.strip()):
        digits = value.strip().lstrip("+-").lstrip("0")
        number = int(value) if len(digits) <= len(str(MAX_TOP_K)) else MAX_TOP_K + 1
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int):
        shown = repr(value) if len(repr(value)) <= MAX_SHOWN_VALUE else repr(value)[:MAX_SHOWN_VALUE] + "..."
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be an integer, got {shown}")
    if not 1 <= number <= MAX_TOP_K:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be in [1, {MAX_TOP_K}]")
    return number


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}.get(type(value), "value")


def _size_text(size: int) -> str:
    """A byte count for messages: KB below a megabyte, else MB (never "0 MB")."""
    if size < 1_000_000:
        return f"{max(1, round(size / 1000))} KB"
    return f"{size / 1e6:.1f} MB"


def _int_arg(query: dict[str, list[str]], name: str, default: int) -> int:
    return _int_value(query[name][0], name) if name in query else default


class KwsServer(ThreadingHTTPServer):
    """A threading HTTP server with a real listen backlog and at most ``max_workers`` requests in
    progress; a connection that finds every worker busy for SLOT_WAIT_S gets a 503."""

    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, max_workers: int = MAX_WORKERS):
        self._slots = threading.BoundedSemaphore(max_workers)
        self.max_workers = max_workers
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(timeout=SLOT_WAIT_S):
            threading.Thread(target=self._refuse, args=(request,), name="kws-busy", daemon=True).start()
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        """503, then read what the client sent (so closing does not reset the connection), then close."""
        try:
            request.settimeout(IDLE_TIMEOUT_S)
            request.sendall(BUSY_RESPONSE)
            request.shutdown(socket.SHUT_WR)
            request.settimeout(SLOT_WAIT_S)
            drained = 0
            while drained < BUSY_DRAIN_BYTES:
                chunk = request.recv(DRAIN_CHUNK)
                if not chunk:
                    break
                drained += len(chunk)
        except OSError:
            pass
        finally:
            request.close()


def make_server(predictor: Predictor, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                allow_private_urls: bool = False, max_workers: int = MAX_WORKERS,
                idle_timeout_s: float = IDLE_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S) -> KwsServer:
    """A server bound to host:port (port 0 picks a free one) serving ``predictor``: URLs only to public
    addresses unless ``allow_private_urls``; idle connections closed after ``idle_timeout_s``; a
    request that has not fully arrived after ``read_timeout_s`` is dropped."""
    handler = type("BoundKwsHandler", (KwsHandler,), {
        "predictor": predictor, "url_policy": ALLOW_ALL if allow_private_urls else PUBLIC_ONLY,
        "timeout": idle_timeout_s, "read_timeout_s": read_timeout_s})
    return KwsServer((host, port), handler, max_workers)


@click.command("serve")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on (0.0.0.0 exposes the page to your network).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 picks a free one).")
@click.option("-m", "--model", "model", default=None,
              help="A .tflite (with manifest.json beside it), a converted folder, or a training run folder. "
                   "Default: models/api, else the newest model.")
@click.option("--allow-private-urls", is_flag=True,
              help="Let prediction URLs reach loopback, private, link-local and other non-public addresses "
                   "(lab set-ups only: anyone who can reach the page can then make this machine fetch from "
                   "its own network).")
@click.option("--workers", default=MAX_WORKERS, show_default=True, type=click.IntRange(1, 1024),
              help="Requests handled at once; more get 503 after a short wait.")
@click.option("--max-seconds", default=MAX_AUDIO_SECONDS, show_default=True,
              type=click.FloatRange(1, 3600),
              help="Longest recording a request may send (decoded); a longer one gets 413.")
def serve_cmd(host: str, port: int, model: str | None, allow_private_urls: bool, workers: int,
              max_seconds: float) -> None:
    """Web page and JSON API for prediction: upload an audio file, paste a URL, or use the microphone."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        predictor = Predictor(resolve_model(model, SINGLE_MODEL), max_seconds)
        server = make_server(predictor, host, port, allow_private_urls=allow_private_urls, max_workers=workers)
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"kws serve: model {predictor.path} ({', '.join(predictor.labels)})", err=True)
    click.echo(f"listening on http://{bound_host}:{bound_port}/ (Ctrl-C stops)", err=True)
    if allow_private_urls:
        click.echo("prediction URLs may reach private and loopback addresses (--allow-private-urls)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


main = serve_cmd
