"""The DEEPaaS V2 entry point through the real ``deepaas-run`` on 127.0.0.1: metadata, training a
timestamped model into $KWS_MODELS_DIR, and predicting from an upload and a URL."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from net_servers import loopback_alias_available
from test_serving_helpers import FIXTURE_WORD, FileServer, free_port, request, write_fixture_clip

pytest.importorskip("keras")
pytest.importorskip("deepaas", reason="deepaas not installed (pip install '.[api]')")

DEEPAAS_RUN = Path(sys.executable).with_name("deepaas-run")
START_TIMEOUT_S = 60
TRAIN_TIMEOUT_S = 150
POLL_S = 0.5
MODEL = "kws"
LAB_HOST = "127.0.0.2"
LAB_NETWORK = "127.0.0.2/32"


def _multipart(field: str, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def deepaas(tmp_path_factory):
    """deepaas-run serving only the kws model, with an empty temp models folder."""
    if not DEEPAAS_RUN.exists():
        pytest.skip(f"{DEEPAAS_RUN} missing (pip install '.[api]')")
    models = tmp_path_factory.mktemp("deepaas_models")
    port = free_port()
    log = tmp_path_factory.mktemp("deepaas_log") / "deepaas.log"
    tmp = tmp_path_factory.mktemp("deepaas_tmp")  # where DEEPaaS stores uploads: must stay empty
    # URLs may reach 127.0.0.2 (standing in for a lab network), not the rest of the machine
    env = dict(os.environ, KWS_MODELS_DIR=str(models), DEEPAAS_V2_MODEL=MODEL, TMPDIR=str(tmp),
               KWS_ALLOW_PRIVATE_URLS=LAB_NETWORK)
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(DEEPAAS_RUN), "--listen-ip", "127.0.0.1", "--listen-port", str(port),
                                 "--model-name", MODEL], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v2"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"deepaas-run exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if request(base + "/models/", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"deepaas-run did not start in {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(POLL_S)
        yield base, models, log, tmp
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_deepaas_without_a_model_says_so(deepaas, tmp_path):
    base, models, _log, tmp = deepaas
    if any(models.iterdir()):
        pytest.skip("a model was trained already")
    clip = write_fixture_clip(tmp_path / f"{FIXTURE_WORD}.wav")
    body, ctype = _multipart("data", clip.name, clip.read_bytes())
    status, out = request(f"{base}/models/{MODEL}/predict/", body, {"Content-Type": ctype})
    assert status == 404 and "train one first" in out["error"], out
    assert str(models) not in json.dumps(out) and list(tmp.iterdir()) == []
    # a misspelt training argument is rejected, not silently replaced by its default
    status, out = request(f"{base}/models/{MODEL}/train/?data_path=/nowhere&train_epochz=3", b"", method="POST")
    assert status == 422 and "unknown training argument(s): train_epochz" in json.dumps(out), out
    status, trainings = request(f"{base}/models/{MODEL}/train/")
    assert status == 200 and trainings == [], trainings


def test_deepaas_metadata_train_predict(deepaas, tiny_dataset, trained_run, tmp_path):
    base, models, log, tmp = deepaas
    status, meta = request(f"{base}/models/{MODEL}/")
    assert status == 200, meta
    assert meta["name"] == MODEL and meta["license"] == "MIT" and meta["model"] is None
    for key in ("version", "author", "description"):
        assert meta[key]

    query = ("data_path={}&data_wanted_words=up,down,beep&train_epochs=2&train_batch_size=16"
             "&train_learning_rate=0.005&model_architecture=ds_cnn").format(tiny_dataset)
    status, started = request(f"{base}/models/{MODEL}/train/?{query}", b"", method="POST")
    assert status == 200, started
    deadline = time.monotonic() + TRAIN_TIMEOUT_S
    while True:
        status, training = request(f"{base}/models/{MODEL}/train/{started['uuid']}")
        assert status == 200, training
        if training["status"] != "running":
            break
        assert time.monotonic() < deadline, "training through DEEPaaS took too long"
        time.sleep(POLL_S)
    assert training["status"] == "done", f"{training}\n{log.read_text()[-3000:]}"
    run_dir = Path(training["result"]["output"]["model"])
    assert run_dir.parent == models and (run_dir / "model.keras").is_file()
    # the status reports what the run measured, as metrics.json has it
    saved = json.loads((run_dir / "metrics.json").read_text())
    reported = training["result"]["output"]["metrics"]
    assert reported["train_accuracy"] == saved["train"]["accuracy"]
    assert reported["validation_accuracy"] == saved["validation"]["accuracy"]

    status, meta = request(f"{base}/models/{MODEL}/")
    assert meta["model"] == str(run_dir) and FIXTURE_WORD in meta["labels"]

    clip = write_fixture_clip(tmp_path / f"{FIXTURE_WORD}.wav")
    body, ctype = _multipart("data", clip.name, clip.read_bytes())
    status, out = request(f"{base}/models/{MODEL}/predict/", body, {"Content-Type": ctype})
    assert status == 200, out
    labels = out["predictions"]["labels"]
    assert len(labels) == 3 and {x["label"] for x in labels} <= set(meta["labels"])
    assert out["predictions"]["model"] == str(run_dir)

    # models/api wins over the newest run (the seed's rule): the 8-epoch fixture model names the clip
    shutil.copytree(trained_run, models / "api")
    status, out = request(f"{base}/models/{MODEL}/predict/", body, {"Content-Type": ctype})
    assert status == 200, out
    assert out["predictions"]["model"].endswith("api")
    assert out["predictions"]["labels"][0]["label"] == FIXTURE_WORD

    if loopback_alias_available(LAB_HOST):
        with FileServer(clip.parent, host=LAB_HOST) as files:
            status, out = request(f"{base}/models/{MODEL}/predict/?url={files.url}/{clip.name}", b"", method="POST")
        assert status == 200, out
        assert out["predictions"]["labels"][0]["label"] == FIXTURE_WORD
    check_client_errors(base, clip, tmp, models)


def check_client_errors(base: str, clip: Path, tmp: Path, models: Path) -> None:
    """4xx with the reason, no server folder names, no upload left behind."""
    predict = f"{base}/models/{MODEL}/predict/"
    with FileServer(clip.parent) as files:  # on 127.0.0.1: this machine, refused
        status, out = request(f"{predict}?url={files.url}/{clip.name}", b"", method="POST")
        assert status == 400 and "KWS_ALLOW_PRIVATE_URLS" in out["error"], out
        body, ctype = _multipart("data", clip.name, clip.read_bytes())
        status, out = request(f"{predict}?url={files.url}/{clip.name}", body, {"Content-Type": ctype})
        assert status == 400 and "exactly one" in out["error"], out
    body, ctype = _multipart("data", "notes.wav", b"this is not audio at all")
    status, out = request(predict, body, {"Content-Type": ctype})
    assert status == 400 and "notes.wav" in out["error"] and "not a readable audio file" in out["error"], out
    for secret in (str(tmp), str(models), "/tmp/"):
        assert secret not in json.dumps(out)
    assert list(tmp.iterdir()) == [], "an upload was left in the server's temp folder"


def test_train_form_offers_auto_where_the_architecture_decides():
    """Width and input standardisation default to auto in the training form, so a request for another
    architecture gets that architecture's own (not the default tcn's resolved values)."""
    from kws.serving.deepaas_api import config_from_args, get_train_args

    args = get_train_args()
    assert args["model_width"].load_default == "auto"
    assert args["model_input_normalization"].load_default == "auto"
    assert "(true, false or auto)" in args["model_input_normalization"].metadata["description"]
    cfg = config_from_args({"model_architecture": "ds_cnn", "model_width": "auto", "model_input_normalization": "auto"})
    assert cfg.model.width == 64 and cfg.model.input_normalization is False
    cfg = config_from_args({"model_architecture": "embedding", "model_input_normalization": "auto"})
    assert cfg.model.input_normalization is True
    cfg = config_from_args({"model_architecture": "embedding", "model_input_normalization": "false"})
    assert cfg.model.input_normalization is False
