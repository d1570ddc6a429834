"""kws serve's JSON API (in-process server on 127.0.0.1) and the URL fetcher's limits."""
from __future__ import annotations

import contextlib
import json
import threading

import pytest

from test_serving_helpers import FIXTURE_WORD, FileServer, request, write_fixture_clip

pytest.importorskip("keras")


@pytest.fixture(scope="module")
def predictor(trained_run):
    from kws.serving.predictor import Predictor

    return Predictor(trained_run)


@contextlib.contextmanager
def running(predictor, **options):
    """kws serve's server on 127.0.0.1 (a free port) in a thread; yields (base URL, server)."""
    from kws.serving.web import make_server

    httpd = make_server(predictor, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def server(predictor):
    """The default server: prediction URLs only to public addresses."""
    with running(predictor) as (url, _):
        yield url


@pytest.fixture(scope="module")
def lab_server(predictor):
    """Started with --allow-private-urls, so it may fetch from the tests' loopback file server."""
    with running(predictor, allow_private_urls=True) as (url, _):
        yield url


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_fixture_clip(tmp_path_factory.mktemp("clips") / f"{FIXTURE_WORD}.wav")


def test_page_and_model_info(server, trained_run):
    import urllib.request

    with urllib.request.urlopen(server + "/", timeout=10) as resp:
        assert "file-input" in resp.read().decode()
    status, info = request(server + "/api/model")
    assert status == 200 and FIXTURE_WORD in info["labels"]
    assert request(server + "/static/../config.yaml")[0] == 404


def test_upload_predicts_top3(server, clip):
    status, out = request(server + "/api/predict?features=1&name=my.wav", clip.read_bytes(),
                          {"Content-Type": "audio/wav"})
    assert status == 200, out
    assert len(out["labels"]) == 3 and out["labels"][0]["label"] == FIXTURE_WORD
    assert out["input"] == "my.wav"
    from kws.edge.frontend import FrontendConfig

    frames, bins = FrontendConfig.from_dict(request(server + "/api/model")[1]["frontend"]).input_shape
    assert len(out["features"]) == frames and len(out["features"][0]) == bins


def test_multipart_upload(server, clip):
    boundary = "kwsboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, out = request(server + "/api/predict?top_k=2", body,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, out
    assert len(out["labels"]) == 2 and out["labels"][0]["label"] == FIXTURE_WORD


def test_url_prediction(lab_server, clip):
    server = lab_server
    with FileServer(clip.parent) as files:
        status, out = request(server + "/api/predict", json.dumps({"url": f"{files.url}/{clip.name}"}).encode(),
                              {"Content-Type": "application/json"})
        assert status == 200, out
        assert out["labels"][0]["label"] == FIXTURE_WORD
        status, out = request(server + "/api/predict", json.dumps({"url": f"{files.url}/missing.wav"}).encode(),
                              {"Content-Type": "application/json"})
        assert status == 400 and "404" in out["error"]
        status, out = request(server + "/api/predict", json.dumps({"url": f"{files.url}/to-file"}).encode(),
                              {"Content-Type": "application/json"})
        assert status == 400 and "http" in out["error"]


def test_url_in_the_query_needs_no_body(lab_server, clip):
    """``curl -X POST 'http://.../api/predict?url=...'`` sends no Content-Length: no body (HTTP/1.1's
    rule), not a 411."""
    import socket

    host, port = lab_server.rsplit("/", 1)[-1].split(":")
    with FileServer(clip.parent) as files, socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(f"POST /api/predict?url={files.url}/{clip.name} HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(body)["labels"][0]["label"] == FIXTURE_WORD


@pytest.mark.parametrize("value, kind", [(["https://host/clip.wav"], "array"), (5, "number"),
                                         ({"href": "https://host/clip.wav"}, "object")])
def test_a_url_that_is_not_a_string_says_so(server, value, kind):
    """It was turned into text and refused as 'got no scheme' (['https://...'] has none)."""
    status, out = request(server + "/api/predict", json.dumps({"url": value}).encode(),
                          {"Content-Type": "application/json"})
    assert status == 400 and out["error"] == f'"url" must be a string like "https://host/clip.wav", got a JSON {kind}'


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.wav", "data:audio/wav;base64,AAAA"])
def test_non_http_scheme_rejected(server, url):
    status, out = request(server + "/api/predict", json.dumps({"url": url}).encode(),
                          {"Content-Type": "application/json"})
    assert status == 400 and "only http and https" in out["error"]


def test_too_large_upload_is_413(server):
    from kws.serving.web import MAX_UPLOAD_BYTES

    status, out = request(server + "/api/predict", b"\0" * (MAX_UPLOAD_BYTES + 1),
                          {"Content-Type": "audio/wav"})
    assert status == 413 and "MB" in out["error"]


def test_bad_inputs_are_json_4xx(server):
    status, out = request(server + "/api/predict", b"this is not a wav file", {"Content-Type": "audio/wav"})
    assert status == 400 and "not a readable audio file" in out["error"] and "Traceback" not in out["error"]
    assert "/tmp" not in out["error"]
    status, out = request(server + "/api/predict", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON" in out["error"]
    status, out = request(server + "/api/predict?top_k=zero", b"x", {"Content-Type": "audio/wav"})
    assert status == 400 and "top_k" in out["error"]
    assert request(server + "/api/nothing")[0] == 404


def test_fetch_limits(clip):
    from kws.serving.fetch import FetchError, TooLargeError, fetch_url

    from kws.serving.fetch import ALLOW_ALL

    with FileServer(clip.parent) as files:
        assert fetch_url(f"{files.url}/{clip.name}", policy=ALLOW_ALL) == clip.read_bytes()
        with pytest.raises(TooLargeError):
            fetch_url(f"{files.url}/{clip.name}", max_bytes=1000, policy=ALLOW_ALL)
        with pytest.raises(FetchError, match="http and https"):
            fetch_url(f"{files.url}/to-file", policy=ALLOW_ALL)
    with pytest.raises(FetchError, match="no host"):
        fetch_url("http:///x.wav")


def test_a_long_recording_gets_the_answer_kws_predict_gives(predictor, trained_run):
    """A quiet word after a loud unknown burst: the server reports the window kws-predict reports
    (the most confident keyword window), not the loudest one."""
    import numpy as np

    from audio_fixtures import other_audio, word_audio
    from kws.evaluation.models import load_classifier
    from kws.evaluation.predict import classify_audio

    rng = np.random.default_rng(7)
    loud = other_audio(rng) * 3.0
    word = word_audio("up", rng) * 0.5
    audio = np.concatenate([loud, word, np.zeros(8000, np.float32)]).astype(np.float32)
    expected = classify_audio(load_classifier(trained_run), audio, top_k=3)
    got = predictor.predict_samples(audio, 16000, top_k=3)
    assert expected["label"] == "up"
    assert got.labels[0]["label"] == expected["label"]
    assert abs(got.labels[0]["probability"] - expected["score"]) < 1e-3
    single = predictor.predict_samples(audio[16000:32000], 16000)  # a clip's length: taken as it is
    assert single.labels[0]["label"] == "up"
