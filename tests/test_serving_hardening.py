"""kws serve against hostile and clumsy clients, all on 127.0.0.1: server-side request forgery,
fetched bytes never echoed, bad numbers and short bodies as 4xx, slow and idle clients timed out,
a real backlog with a bounded worker pool, and multipart bodies with too many parts."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from net_servers import bytes_server
from test_serving_helpers import FIXTURE_WORD, request, write_fixture_clip
from test_serving_web import lab_server, predictor, running, server  # noqa: F401 - fixtures

pytest.importorskip("keras")

SECRET = b"<html>top-secret admin panel token=hunter2</html>"
GENEROUS_S = 20.0  # a timed-out client must be dropped well within this
SOCKET_TIMEOUT_S = 30.0
CONCURRENT_CLIENTS = 50
JSON = {"Content-Type": "application/json"}


def _predict_url(base: str, url: str, **extra) -> tuple[int, dict]:
    return request(base + "/api/predict", json.dumps({"url": url, **extra}).encode(), JSON)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ 1: SSRF
def test_urls_to_this_machine_and_its_network_are_refused(server):
    with bytes_server(SECRET) as inner:
        answers = []
        for host in ("127.0.0.1", "localhost", "2130706433", "127.1", "[::1]", "0.0.0.0"):
            status, out = _predict_url(server, f"http://{host}:{inner.port}/admin")
            assert status == 400 and "allow-private-urls" in out["error"], (host, out)
            assert "secret" not in json.dumps(out)
            answers.append(out["error"].split("'")[0])
        # an open and a closed port answer alike: no port scanning through the server
        status, closed = _predict_url(server, f"http://127.0.0.1:{_closed_port()}/admin")
        assert status == 400 and closed["error"].split("'")[0] == answers[0]


def test_fetched_bytes_are_never_echoed(lab_server):
    with bytes_server(SECRET) as inner:
        status, out = _predict_url(lab_server, f"{inner.url}/page.html")
    assert status == 400 and "not an audio file" in out["error"]
    assert "html" not in out["error"] and "secret" not in out["error"]


# ------------------------------------------------------------------ 10: numbers, sizes, short bodies
def test_huge_top_k_is_400(server):
    body = b'{"url": "http://192.0.2.1/x.wav", "top_k": 1e400}'
    status, out = request(server + "/api/predict", body, JSON)
    assert status == 400 and "top_k must be an integer" in out["error"]
    for bad in ("99999999999999999999999", "%C2%B2", "1e3", "0"):  # %C2%B2 is '²', a digit to str.isdigit
        status, out = request(server + f"/api/predict?top_k={bad}", b"x", {"Content-Type": "audio/wav"})
        assert status == 400 and "top_k" in out["error"], (bad, out)


def test_oversized_json_names_its_limit_in_kb(server):
    from kws.serving.web import MAX_JSON_BYTES

    status, out = request(server + "/api/predict", b" " * (MAX_JSON_BYTES + 10), JSON)
    assert status == 413 and f"{round(MAX_JSON_BYTES / 1000)} KB allowed" in out["error"]
    assert " 0 MB" not in out["error"]


def test_a_small_file_holding_hours_of_audio_is_413_before_it_is_all_decoded(server):
    """10 MB of FLAC silence holds hours: the upload limit bounds bytes, the duration limit the work."""
    import io

    import numpy as np
    import soundfile as sf

    from kws.serving.predictor import MAX_AUDIO_SECONDS

    buf = io.BytesIO()
    sf.write(buf, np.zeros(16000 * 600, np.int16), 16000, format="FLAC", subtype="PCM_16")  # 10 minutes
    assert len(buf.getvalue()) < 100_000
    status, out = request(server + "/api/predict?name=long.flac", buf.getvalue(), {"Content-Type": "audio/flac"})
    assert status == 413 and out["error"] == f"long.flac: longer than the {MAX_AUDIO_SECONDS:g} s allowed here"
    status, out = _predict_url(server, "http://[::1")
    assert status == 400 and "not a valid URL" in out["error"]


def _raw(base: str, data: bytes, half_close: bool = True) -> bytes:
    """Send raw bytes to the server; everything it answers until it closes."""
    host, port = base.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_body_shorter_than_its_content_length_is_refused(server, tmp_path):
    clip = write_fixture_clip(tmp_path / "c.wav").read_bytes()
    head = (f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
            f"Content-Length: {len(clip)}\r\n\r\n").encode()
    answer = _raw(server, head + clip[:len(clip) // 2])
    assert answer.startswith(b"HTTP/1.1 400")
    assert f"ended after {len(clip) // 2} of the {len(clip)} bytes".encode() in answer


@pytest.mark.parametrize("request_line", ["POST /api/predict?top_k=abc", "POST /api/predict?top_k=0",
                                          "POST /no/such/endpoint", "GET /api/model"])
def test_an_unread_body_is_never_taken_for_the_next_request(server, request_line):
    """A request answered without reading its body (an early 4xx, or a GET with a body) closes the
    connection: otherwise the body would be parsed as a second request (request smuggling)."""
    inner = b"GET /api/model HTTP/1.1\r\nHost: x\r\n\r\n"
    head = (f"{request_line} HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
            f"Content-Length: {len(inner)}\r\n\r\n").encode()
    answer = _raw(server, head + inner)
    assert answer.count(b"HTTP/1.1 ") == 1, answer[:400]
    assert b"Connection: close" in answer


def test_a_request_whose_body_was_read_keeps_its_connection(server):
    """The rule above costs nothing for well-formed requests: two JSON requests on one connection."""
    body = b'{"top_k": "abc", "url": "https://example.invalid/x.wav"}'
    one = (f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    answer = _raw(server, one + b"GET /api/model HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and answer.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 200" in answer


def _answer(raw: bytes) -> tuple[int, dict[str, str], dict]:
    """(status, headers with lower-case names, JSON body) of one raw HTTP answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("request_head, status, allow", [
    ("PUT /api/predict HTTP/1.1\r\nContent-Length: 0", 405, "GET, HEAD, POST"),
    ("DELETE / HTTP/1.1", 405, "GET, HEAD, POST"),
    ("GET /api/predict HTTP/1.1", 405, "POST"),
    ("BREW /api/predict HTTP/1.1", 501, None),
    ("GET / HTTP/1.1\r\nX-Long: " + "a" * 70_000, 431, None),
])
def test_refused_methods_and_malformed_requests_are_json(server, request_head, status, allow):
    """The stdlib's own refusals were HTML pages (501 for PUT/DELETE/OPTIONS, 431 for a header line over 64 KiB); now JSON
    like every other error, and a method the server knows but the path does not take is a 405."""
    got, headers, body = _answer(_raw(server, f"{request_head}\r\nHost: x\r\n\r\n".encode()))
    assert got == status and headers["content-type"] == "application/json"
    assert body["error"]
    assert headers.get("allow") == allow


def test_options_lists_the_methods(server):
    raw = _raw(server, b"OPTIONS /api/predict HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and b"\r\nAllow: GET, HEAD, POST\r\n" in raw


# ------------------------------------------------------------------ 11: slow and idle clients
def _dropped_within(base: str, sender) -> float:
    """Seconds until the server closes a connection that ``sender(sock)`` feeds slowly."""
    host, port = base.rsplit("/", 1)[-1].split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as sock:
        stop = threading.Event()
        feeder = threading.Thread(target=sender, args=(sock, stop), daemon=True)
        feeder.start()
        try:
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        finally:
            stop.set()
    return time.monotonic() - started


def _trickle(data: bytes, interval_s: float = 0.25):
    def send(sock, stop):
        for i in range(len(data)):
            if stop.is_set():
                return
            try:
                sock.sendall(data[i:i + 1])
            except OSError:
                return
            time.sleep(interval_s)
    return send


def test_idle_slow_header_and_slow_body_clients_are_dropped(predictor):
    header = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nX-Pad: " + b"a" * 200 + b"\r\n"
    body_first = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n"
    with running(predictor, idle_timeout_s=1.0, read_timeout_s=2.0) as (base, _):
        assert _dropped_within(base, lambda sock, stop: stop.wait(GENEROUS_S)) < GENEROUS_S  # idle
        assert _dropped_within(base, _trickle(header)) < GENEROUS_S  # 1 header byte per 0.25 s
        slow_body = _trickle(b"x" * 400)

        def body_sender(sock, stop):
            sock.sendall(body_first)
            slow_body(sock, stop)
        assert _dropped_within(base, body_sender) < GENEROUS_S
        # the server still answers
        assert request(base + "/api/model")[0] == 200


# ------------------------------------------------------------------ 12: backlog and workers
def test_fifty_concurrent_clients_get_answers_not_resets(server):
    from kws.serving.web import KwsServer

    assert KwsServer.request_queue_size >= CONCURRENT_CLIENTS
    results: list = [None] * CONCURRENT_CLIENTS
    start = threading.Barrier(CONCURRENT_CLIENTS)

    def client(i: int) -> None:
        start.wait(timeout=SOCKET_TIMEOUT_S)
        try:
            with urllib.request.urlopen(server + "/api/model", timeout=SOCKET_TIMEOUT_S) as resp:
                results[i] = resp.status
        except urllib.error.HTTPError as exc:
            results[i] = exc.code
        except OSError as exc:
            results[i] = repr(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CONCURRENT_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(GENEROUS_S * 3)
    assert all(r in (200, 503) for r in results), results
    assert results.count(200) >= 1


def test_a_full_worker_pool_answers_503(predictor):
    with running(predictor, max_workers=2, idle_timeout_s=10.0, read_timeout_s=10.0) as (base, _):
        host, port = base.rsplit("/", 1)[-1].split(":")
        holders = [socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) for _ in range(2)]
        try:
            for sock in holders:
                sock.sendall(b"GET /api/model HTTP/1.1\r\n")  # half a request holds a worker
            time.sleep(0.5)
            status, out = request(base + "/api/model")
            assert status == 503 and "busy" in out["error"]
        finally:
            for sock in holders:
                sock.close()


# ------------------------------------------------------------------ 13: multipart
def test_multipart_with_thousands_of_parts_is_refused_quickly(server, tmp_path):
    from kws.serving.multipart import MAX_PARTS

    clip = write_fixture_clip(tmp_path / "c.wav").read_bytes()
    b = "kwsb"
    parts = b"".join(f"--{b}\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nx\r\n".encode()
                     for i in range(50_000))
    body = (parts + f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n".encode()
            + clip + f"\r\n--{b}--\r\n".encode())
    started = time.monotonic()
    status, out = request(server + "/api/predict", body, {"Content-Type": f"multipart/form-data; boundary={b}"})
    assert status == 400 and f"more than {MAX_PARTS} parts" in out["error"]
    assert time.monotonic() - started < GENEROUS_S
    # a few fields before the file are fine
    ok = (parts[:200].rsplit(f"--{b}".encode(), 1)[0] + body[len(parts):])
    status, out = request(server + "/api/predict", ok, {"Content-Type": f"multipart/form-data; boundary={b}"})
    assert status == 200 and out["labels"][0]["label"] == FIXTURE_WORD, out
