"""The guarded URL fetcher every tool uses: address policy (SSRF), redirects, whole-fetch
deadline, size cap, messages without fetched bytes. Loopback servers only."""
from __future__ import annotations

import errno
import os
import time

import pytest

from net_servers import bytes_server, loopback_alias_available, redirect_server, trickle_server

from kws.edge.errors import os_error_line
from kws.edge.urlfetch import (ALLOW_ALL, PUBLIC_ONLY, BlockedAddressError, FetchError, TooLargeError,
                               UrlPolicy, fetch_bytes, saving_error, stream_url)

TIMEOUT_S = 1.0
GENEROUS_S = 10.0  # a fetch with a 1 s deadline must be over well within this
SECRET = b"internal-secret-\x00\x01 admin-token=hunter2"


def test_policy_classifies_addresses():
    for address, kind in [("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
                          ("192.168.0.10", "private"), ("172.16.5.5", "private"), ("169.254.169.254", "link-local"),
                          ("fe80::1", "link-local"), ("224.0.0.1", "multicast"), ("0.0.0.0", "unspecified"),
                          ("::ffff:127.0.0.1", "loopback"), ("100.64.0.1", "non-public"), ("240.0.0.1", "reserved"),
                          ("2002:7f00:1::1", "loopback"), ("64:ff9b::a00:1", "private"), ("fd00::1", "private")]:
        assert PUBLIC_ONLY.refusal(address) == kind, address
    assert PUBLIC_ONLY.refusal("93.184.216.34") is None
    assert ALLOW_ALL.refusal("127.0.0.1") is None
    assert UrlPolicy(allow_networks=("127.0.0.2/32",)).refusal("127.0.0.2") is None


def test_loopback_in_every_spelling_is_refused():
    with bytes_server(SECRET) as srv:
        for host in ("127.0.0.1", "localhost", "2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]"):
            with pytest.raises(BlockedAddressError, match="allow-private-urls") as err:
                fetch_bytes(f"http://{host}:{srv.port}/x.wav", 1 << 20, TIMEOUT_S)
            assert "secret" not in str(err.value)
        # a lab set-up opts in
        assert fetch_bytes(f"{srv.url}/x.wav", 1 << 20, TIMEOUT_S, ALLOW_ALL) == SECRET


def test_redirect_to_a_refused_address_is_refused():
    """The first hop is allowed (127.0.0.2 stands in for a public host); its redirect to
    127.0.0.1 is checked again and refused."""
    if not loopback_alias_available("127.0.0.2"):
        pytest.skip("127.0.0.2 is not routed to loopback here")
    policy = UrlPolicy(allow_networks=("127.0.0.2/32",))
    with bytes_server(SECRET) as inner, redirect_server(f"{inner.url}/admin", host="127.0.0.2") as outer:
        with pytest.raises(BlockedAddressError, match="loopback"):
            fetch_bytes(f"{outer.url}/clip.wav", 1 << 20, TIMEOUT_S, policy)
        with redirect_server(f"http://2130706433:{inner.port}/", host="127.0.0.2") as decimal:
            with pytest.raises(BlockedAddressError):
                fetch_bytes(f"{decimal.url}/clip.wav", 1 << 20, TIMEOUT_S, policy)
        with redirect_server("file:///etc/passwd", host="127.0.0.2") as to_file:
            with pytest.raises(FetchError, match="only http and https"):
                fetch_bytes(f"{to_file.url}/clip.wav", 1 << 20, TIMEOUT_S, policy)


@pytest.mark.parametrize("in_headers", [False, True], ids=["body", "headers"])
def test_trickling_server_hits_the_whole_fetch_deadline(in_headers):
    with trickle_server(in_headers=in_headers) as srv:
        started = time.monotonic()
        with pytest.raises(FetchError, match="longer than 1 s"):
            fetch_bytes(f"{srv.url}/slow.wav", 1 << 20, TIMEOUT_S, ALLOW_ALL)
        assert time.monotonic() - started < GENEROUS_S


def test_size_cap_and_http_errors_do_not_echo_bytes():
    with bytes_server(SECRET * 100) as srv:
        with pytest.raises(TooLargeError, match="more than the 100"):
            fetch_bytes(f"{srv.url}/big", 100, TIMEOUT_S, ALLOW_ALL)
    with redirect_server("/loop") as loop:
        with pytest.raises(FetchError, match="redirected more than"):
            fetch_bytes(f"{loop.url}/loop", 100, TIMEOUT_S, ALLOW_ALL)


def test_refused_connection_names_the_url():
    with bytes_server(b"") as srv:
        port = srv.port
    with pytest.raises(FetchError, match=f"127.0.0.1:{port}/gone.wav: connection refused"):
        fetch_bytes(f"http://127.0.0.1:{port}/gone.wav", 100, TIMEOUT_S, ALLOW_ALL)


def test_a_malformed_url_is_a_fetch_error_naming_it():
    for url in ("http://[::1", "http://[not-an-address]/x.wav"):
        with pytest.raises(FetchError, match="not a valid URL") as err:
            fetch_bytes(url, 1 << 20, TIMEOUT_S)
        assert url in str(err.value) and "\n" not in str(err.value)


def test_a_full_disk_while_saving_is_not_a_network_error(tmp_path):
    """The caller's write failing (a full disk) comes out as that OSError, not as 'could not fetch
    URL: no space left on device'; saving_error names the file being written and the URL."""
    def full_disk(chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with bytes_server(b"RIFF" * 1000) as srv:
        url = f"{srv.url}/clip.wav"
        with pytest.raises(OSError) as err:
            stream_url(url, full_disk, max_bytes=1 << 20, timeout_s=GENEROUS_S, policy=ALLOW_ALL)
    assert not isinstance(err.value, FetchError) and err.value.errno == errno.ENOSPC
    named = saving_error(err.value, tmp_path / "clip.wav", url)
    assert named.errno == errno.ENOSPC
    assert os_error_line(named) == f"{tmp_path / 'clip.wav'}: No space left on device (downloading {url})"
