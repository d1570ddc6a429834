"""The one HTTP(S) GET used by every kws tool that downloads (kws serve, DEEPaaS, kws-predict,
kws-train --data URL): only http/https; the host resolved once and the connection pinned to that
address; loopback, private, link-local, multicast and reserved addresses refused unless the
policy allows them (checked again after every redirect, on the address actually connected); a
size cap; and one deadline for the whole fetch (DNS, connect, headers and body), enforced with
socket timeouts and a watchdog that shuts the socket, so a server trickling bytes cannot hold it.

Errors never contain fetched bytes (not even the server's HTTP reason phrase). Environment
proxies are not used: a proxy would connect to addresses this module cannot check.
"""
from __future__ import annotations

import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Callable, Mapping

from .errors import KwsError

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
USER_AGENT = "kws/0.1"
MAX_SHOWN_URL = 100
DOWNLOADING = "downloading"  # what a local write failure was doing (saving_error)
MIN_SOCKET_TIMEOUT_S = 0.05
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
# The option (or setting) that lets a lab set-up fetch from its own network; named in the errors.
ALLOW_PRIVATE_HINT = "--allow-private-urls"


class FetchError(KwsError):
    """A URL could not be fetched within the limits."""


class TooLargeError(FetchError):
    """The resource is larger than allowed."""


class BlockedAddressError(FetchError):
    """The URL's host is (or redirects to) an address the policy refuses."""


class _WriteFailed(Exception):
    """Carries an OSError of stream_url's ``write`` (a full disk) past its handler of network errors."""

    def __init__(self, error: OSError):
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class UrlPolicy:
    """Which addresses a fetch may connect to: public ones always; loopback, private, link-local,
    multicast and reserved ones only with ``allow_private`` or inside one of ``allow_networks``."""

    allow_private: bool = False
    allow_networks: tuple = ()
    hint: str = ALLOW_PRIVATE_HINT

    def refusal(self, address: str) -> str | None:
        """Why ``address`` may not be connected to (None: it may). An IPv6 address that carries an
        IPv4 one (mapped, 6to4, NAT64) is judged by that too."""
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if self.allow_private or any(ip in ipaddress.ip_network(n) for n in self.allow_networks):
            return None
        own = () if ip in NAT64_PREFIX else (ip,)  # NAT64 lies in reserved ::/8: judge by the IPv4 inside
        for candidate in (*_embedded_ipv4(ip), *own):
            for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
                if getattr(candidate, f"is_{kind}"):
                    return kind.replace("_", "-")
            if not candidate.is_global:
                return "non-public"
        return None


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (IPv4-mapped, 6to4, the NAT64 well-known prefix)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [ip.ipv4_mapped, ip.sixtofour]
    if ip in NAT64_PREFIX:  # the last 32 bits
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [a for a in found if a is not None]


PUBLIC_ONLY = UrlPolicy()
ALLOW_ALL = UrlPolicy(allow_private=True)


@dataclass
class FetchResult:
    """What a completed fetch returned: the final URL, its status (200, or 304 when asked) and headers."""

    url: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    size: int = 0


def shown(url: str) -> str:
    """A URL shortened for messages."""
    return url if len(url) <= MAX_SHOWN_URL else url[:MAX_SHOWN_URL] + "..."


def check_url(url: str) -> str:
    """Return the URL if it is an absolute http(s) URL with a host, else raise FetchError."""
    url = (url or "").strip()
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for an unclosed "["
        raise FetchError(f"not a valid URL ({exc}): {shown(url)!r}") from None
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise FetchError(f"only http and https URLs are allowed, got {parts.scheme or 'no'} scheme"
                         + (f" in {shown(url)!r}" if parts.scheme else ""))
    if not parts.hostname:
        raise FetchError(f"URL has no host: {shown(url)!r}")
    try:
        parts.port
    except ValueError:
        raise FetchError(f"URL has a bad port: {shown(url)!r}") from None
    return url


class _Deadline:
    """The time left of one fetch, and a watchdog that shuts the current socket when it is over."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.end = time.monotonic() + timeout_s
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.error()
        return max(left, MIN_SOCKET_TIMEOUT_S)

    def error(self) -> FetchError:
        return FetchError(f"URL download took longer than {self.timeout_s:g} s")

    def watch(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.expired and sock is not None:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _resolve(host: str, port: int, deadline: _Deadline) -> list[str]:
    """The addresses of ``host`` (getaddrinfo in a helper thread so the deadline bounds it)."""
    out: dict[str, object] = {}

    def work() -> None:
        try:
            out["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            out["error"] = exc

    thread = threading.Thread(target=work, name="kws-resolve", daemon=True)
    thread.start()
    thread.join(deadline.left())
    if thread.is_alive():
        raise deadline.error()
    if "error" in out:
        raise FetchError(f"cannot resolve host {host!r}")
    return [info[4][0] for info in out["infos"]]  # type: ignore[index]


def _pinned_address(host: str, port: int, policy: UrlPolicy, deadline: _Deadline) -> str:
    """One address of ``host`` the policy allows; BlockedAddressError if it has none."""
    addresses = _resolve(host, port, deadline)
    refusals = [policy.refusal(a) for a in addresses]
    for address, refusal in zip(addresses, refusals):
        if refusal is None:
            return address
    raise BlockedAddressError(f"URL host {host!r} is a {refusals[0]} address; refused "
                              f"(a lab set-up can allow it with {policy.hint})")


def _connection(scheme: str, host: str, port: int, address: str, policy: UrlPolicy,
                deadline: _Deadline, idle_timeout_s: float | None = None) -> http.client.HTTPConnection:
    """An HTTP(S) connection to ``host`` that connects to ``address`` only and checks the peer."""
    timeout = min(deadline.left(), idle_timeout_s or deadline.timeout_s)

    def connect(_addr, timeout, source_address=None):
        sock = socket.create_connection((address, port), timeout, source_address)
        deadline.watch(sock)
        refusal = policy.refusal(sock.getpeername()[0])
        if refusal is not None:
            sock.close()
            raise BlockedAddressError(f"URL host {host!r} connected to a {refusal} address; refused "
                                      f"(a lab set-up can allow it with {policy.hint})")
        return sock

    if scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn._create_connection = connect  # type: ignore[attr-defined] # the documented hook of http.client
    return conn


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def stream_url(url: str, write: Callable[[bytes], None], *, max_bytes: int, timeout_s: float,
               policy: UrlPolicy = PUBLIC_ONLY, headers: Mapping[str, str] | None = None,
               on_headers: Callable[[FetchResult], None] | None = None,
               not_modified_ok: bool = False, idle_timeout_s: float | None = None) -> FetchResult:
    """GET ``url`` and pass its body to ``write`` chunk by chunk, within ``max_bytes`` and
    ``timeout_s`` in all (and ``idle_timeout_s`` without progress, if given); ``on_headers`` sees
    the final response's headers before the body. With ``not_modified_ok`` a 304 answer (to
    conditional ``headers``) is returned, bodyless. An OSError of ``write`` (a full disk) is raised as
    it is, not as a FetchError: the network did not fail (``saving_error`` names the file)."""
    url = check_url(url)
    deadline = _Deadline(timeout_s)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            scheme, host = parts.scheme.lower(), parts.hostname or ""
            port = parts.port or DEFAULT_PORTS[scheme]
            address = _pinned_address(host, port, policy, deadline)
            conn = _connection(scheme, host, port, address, policy, deadline, idle_timeout_s)
            try:
                target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
                conn.request("GET", target, headers={"User-Agent": USER_AGENT, **(headers or {})})
                resp = conn.getresponse()
                location = resp.getheader("Location")
                if resp.status in REDIRECT_STATUSES and location:
                    url = check_url(urllib.parse.urljoin(url, location))
                    continue
                result = FetchResult(url, resp.status, {k.lower(): v for k, v in resp.getheaders()})
                if resp.status == HTTPStatus.NOT_MODIFIED and not_modified_ok:
                    return result
                if resp.status != HTTPStatus.OK:
                    raise FetchError(f"URL returned {_status_text(resp.status)}")
                length = resp.getheader("Content-Length", "")
                if length.isdigit() and int(length) > max_bytes:
                    raise TooLargeError(f"URL content is {int(length)} bytes, more than the {max_bytes} allowed")
                if on_headers is not None:
                    on_headers(result)
                while True:
                    if conn.sock is not None:
                        conn.sock.settimeout(min(deadline.left(), idle_timeout_s or deadline.timeout_s))
                    chunk = resp.read1(CHUNK_BYTES)
                    if not chunk:
                        break
                    result.size += len(chunk)
                    if result.size > max_bytes:
                        raise TooLargeError(f"URL content is more than the {max_bytes} bytes allowed")
                    try:
                        write(chunk)
                    except OSError as exc:
                        raise _WriteFailed(exc) from None
                if deadline.expired:
                    raise deadline.error()
                return result
            finally:
                conn.close()
        raise FetchError(f"URL redirected more than {MAX_REDIRECTS} times")
    except FetchError:
        raise
    except _WriteFailed as failed:
        raise failed.error from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.expired:
            raise deadline.error() from None
        if isinstance(exc, TimeoutError):
            raise FetchError(f"could not fetch {shown(url)}: no data for {idle_timeout_s or timeout_s:g} s") from None
        raise FetchError(f"could not fetch {shown(url)}: {_os_reason(exc)}") from None
    finally:
        deadline.cancel()


def saving_error(exc: OSError, path: str | os.PathLike, url: str, doing: str = DOWNLOADING) -> OSError:
    """A local failure while saving ``url`` (a full disk, a read-only folder) as the same OSError about
    ``path``, the file (or folder) being written, with the URL after the reason: ``os_error_line``
    gives '<path>: No space left on device (downloading <url>)', never a network error."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return type(exc)(exc.errno, f"{reason} ({doing} {shown(url)})", os.fspath(path))


def _os_reason(exc: BaseException) -> str:
    """A short reason for a network failure, without any bytes the server sent."""
    if isinstance(exc, ssl.SSLError):
        return "TLS error"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, http.client.HTTPException):
        return "the server's answer is not valid HTTP"
    return exc.__class__.__name__


def fetch_bytes(url: str, max_bytes: int, timeout_s: float, policy: UrlPolicy = PUBLIC_ONLY) -> bytes:
    """The body of ``url`` in memory (see ``stream_url`` for the limits)."""
    chunks: list[bytes] = []
    stream_url(url, chunks.append, max_bytes=max_bytes, timeout_s=timeout_s, policy=policy)
    return b"".join(chunks)
