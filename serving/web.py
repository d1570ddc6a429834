"""``kws serve``: a small web page and JSON API for prediction (stdlib http.server only).

Endpoints
  GET  /                 the page (upload an audio file, paste a URL, or record from the microphone)
  GET  /static/<file>    its JS and CSS
  GET  /api/model        {"model", "labels", "frontend"}
  POST /api/predict      body: audio file bytes (WAV, FLAC, OGG, MP3; any content type),
                         multipart/form-data with a ``file`` field, or JSON {"url": "http(s)://..."}; query ``top_k`` (default 3),
                         ``features=1`` adds the model's input features for the spectrogram view,
                         ``name`` names an upload in the answer.
Errors are JSON ``{"error": "..."}`` with a 4xx status (413 for uploads over the limit); a
server fault is a 500 with a generic message, the traceback goes to the server's log only.
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import sys
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click

from kws.edge.errors import KwsError
from kws.edge.locate import resolve_model

from .fetch import FetchError, TooLargeError, fetch_url
from .predictor import DEFAULT_TOP_K, Predictor

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
# errors answered before the body was read: the connection cannot be reused
CLOSE_STATUSES = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.LENGTH_REQUIRED)


class HttpError(Exception):
    """An error answered as JSON with this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _multipart_file(body: bytes, content_type: str) -> bytes:
    """The first file part of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    for part in msg.iter_parts() if msg.is_multipart() else ():
        if part.get_filename() is not None or part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True) or b""
    raise HttpError(HTTPStatus.BAD_REQUEST, "multipart upload has no file part")


class KwsHandler(BaseHTTPRequestHandler):
    """Serves the page, the static files and the JSON API for one Predictor."""

    server_version = "kws-serve"
    protocol_version = "HTTP/1.1"
    predictor: Predictor  # set on the subclass made by make_server

    # ------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        LOG.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        self.send_response(status)
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

    def _json(self, status: int, data: Any, close: bool = False) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", close)

    def _error(self, status: int, message: str, close: bool = False) -> None:
        self._json(status, {"error": message}, close)

    def _guard(self, fn) -> None:
        """Run a handler; HttpError/KwsError become JSON 4xx, anything else a bare 500."""
        try:
            fn()
        except HttpError as exc:
            self._error(exc.status, str(exc), close=exc.status in CLOSE_STATUSES)
        except TooLargeError as exc:
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

    def _get(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._static("index.html")
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/model":
            return self._json(HTTPStatus.OK, self.predictor.info())
        raise HttpError(HTTPStatus.NOT_FOUND, f"no such page: {path}")

    def _static(self, name: str) -> None:
        allowed = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
        if name not in allowed or Path(name).suffix not in STATIC_TYPES:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such file: {name}")
        self._send(HTTPStatus.OK, allowed[name].read_bytes(), STATIC_TYPES[Path(name).suffix])

    def _read_body(self, limit: int) -> bytes:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "chunked uploads are not supported; send Content-Length")
        if length is None or not length.strip().isdigit():
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        size = int(length)
        if size > limit:
            if size <= DRAIN_FACTOR * limit:  # read it away so the client sees the 413, not a reset
                self._discard(size)
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"upload is {size / 1e6:.1f} MB, more than the {limit / 1e6:.0f} MB allowed")
        return self.rfile.read(size)

    def _discard(self, size: int) -> None:
        while size > 0:
            chunk = self.rfile.read(min(size, DRAIN_CHUNK))
            if not chunk:
                break
            size -= len(chunk)

    def _post(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/api/predict":
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
        if url:
            if ctype != "application/json":
                self._read_body(MAX_JSON_BYTES)  # drain any body so the connection stays usable
            data, source = fetch_url(str(url), MAX_URL_BYTES, URL_TIMEOUT_S), str(url)
        else:
            data = self._read_body(MAX_UPLOAD_BYTES)
            source = query.get("name", ["upload"])[0][:MAX_NAME_CHARS] or "upload"
            if ctype == "multipart/form-data":
                data = _multipart_file(data, self.headers.get("Content-Type", ""))
        result = self.predictor.predict_bytes(data, top_k, name=source if url is None else "url")
        out = result.to_dict(with_features)
        out.update({"input": source, "model": str(self.predictor.path)})
        self._json(HTTPStatus.OK, out)


def _int_value(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be an integer, got {value!r}") from None
    if not 1 <= number <= MAX_TOP_K:
        raise HttpError(HTTPStatus.BAD_REQUEST, f"{name} must be in [1, {MAX_TOP_K}], got {number}")
    return number


def _int_arg(query: dict[str, list[str]], name: str, default: int) -> int:
    return _int_value(query[name][0], name) if name in query else default


def make_server(predictor: Predictor, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> ThreadingHTTPServer:
    """A threading HTTP server bound to host:port (port 0 picks a free one) serving ``predictor``."""
    handler = type("BoundKwsHandler", (KwsHandler,), {"predictor": predictor})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


@click.command("serve")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on (0.0.0.0 exposes the page to your network).")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 picks a free one).")
@click.option("-m", "--model", "model", default=None,
              help="Model run folder (default: models/api, else the newest model).")
def serve_cmd(host: str, port: int, model: str | None) -> None:
    """Web page and JSON API for prediction: upload an audio file, paste a URL, or use the microphone."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        predictor = Predictor(resolve_model(model))
        server = make_server(predictor, host, port)
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.server_address[:2]
    click.echo(f"kws serve: model {predictor.path} ({', '.join(predictor.labels)})", err=True)
    click.echo(f"listening on http://{bound_host}:{bound_port}/ (Ctrl-C stops)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


main = serve_cmd
