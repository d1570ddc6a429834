"""A careful URL fetcher for prediction inputs: http/https only, bounded size and time, and
redirects followed only to http/https (never file:, ftp: or data:)."""
from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request

from kws.edge.errors import KwsError

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT_S = 15.0
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
USER_AGENT = "kws-serving/0.1"
MAX_SHOWN_URL = 100


class FetchError(KwsError):
    """A URL could not be fetched within the limits."""


class TooLargeError(FetchError):
    """The resource is larger than allowed."""


def check_url(url: str) -> str:
    """Return the URL if it is an absolute http(s) URL with a host, else raise FetchError."""
    url = (url or "").strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise FetchError(f"only http and https URLs are allowed, got {parts.scheme or 'no'} scheme"
                         + (f" in {url[:MAX_SHOWN_URL]!r}" if parts.scheme else ""))
    if not parts.hostname:
        raise FetchError(f"URL has no host: {url!r}")
    return url


class _SafeRedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows at most MAX_REDIRECTS redirects, each to an http(s) URL."""

    max_redirections = MAX_REDIRECTS

    def http_error_302(self, req, fp, code, msg, headers):
        target = headers.get("Location") or headers.get("URI")
        if target:
            check_url(urllib.parse.urljoin(req.full_url, target))
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        newurl = urllib.parse.urljoin(req.full_url, newurl)
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    """An opener that knows only HTTP(S), proxies from the environment and the safe redirects."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(),
                    urllib.request.HTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(),
                    _SafeRedirectHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def fetch_url(url: str, max_bytes: int = DEFAULT_MAX_BYTES, timeout_s: float = DEFAULT_TIMEOUT_S) -> bytes:
    """Download ``url`` into memory; FetchError (TooLargeError) names what went wrong."""
    url = check_url(url)
    deadline = time.monotonic() + timeout_s
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with _opener().open(request, timeout=timeout_s) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise TooLargeError(f"URL content is {int(length)} bytes, more than the {max_bytes} allowed")
            chunks, total = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(f"URL download took longer than {timeout_s:g} s")
                chunk = resp.read(CHUNK_BYTES)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise TooLargeError(f"URL content is more than the {max_bytes} bytes allowed")
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"URL returned HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, FetchError):
            raise reason from None
        raise FetchError(f"could not fetch URL: {reason}") from None
    except (TimeoutError, OSError) as exc:
        raise FetchError(f"could not fetch URL: {exc.__class__.__name__}: {exc}") from None
    except ValueError as exc:
        raise FetchError(f"bad URL: {exc}") from None
