"""Prediction inputs by URL: the edge's guarded fetcher (``kws.edge.urlfetch``) with the
servers' limits. Servers refuse loopback/private/link-local/multicast/reserved addresses unless
started with ``--allow-private-urls``."""
from __future__ import annotations

from kws.edge.urlfetch import (ALLOW_ALL, PUBLIC_ONLY, BlockedAddressError, FetchError, TooLargeError,
                               UrlPolicy, check_url, fetch_bytes)

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT_S = 15.0

__all__ = ["ALLOW_ALL", "PUBLIC_ONLY", "BlockedAddressError", "FetchError", "TooLargeError", "UrlPolicy",
           "check_url", "fetch_url", "DEFAULT_MAX_BYTES", "DEFAULT_TIMEOUT_S"]


def fetch_url(url: str, max_bytes: int = DEFAULT_MAX_BYTES, timeout_s: float = DEFAULT_TIMEOUT_S,
              policy: UrlPolicy = PUBLIC_ONLY) -> bytes:
    """Download ``url`` into memory; FetchError (TooLargeError, BlockedAddressError) says why not."""
    return fetch_bytes(url, max_bytes, timeout_s, policy)
