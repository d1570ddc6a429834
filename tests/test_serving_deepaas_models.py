"""DEEPaaS's model choice, called in-process: the metadata's labels and the model a prediction runs
when models/api is a kws-convert folder (no labels.txt, no model.keras)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from test_serving_helpers import FIXTURE_WORD, write_fixture_clip

pytest.importorskip("aiohttp")
pytest.importorskip("marshmallow")


class _Upload:
    """What DEEPaaS hands predict() for a multipart file: a temp file and the client's name."""

    def __init__(self, path: Path, original_filename: str):
        self.filename = str(path)
        self.original_filename = original_filename


def _float_only_copy(converted: Path, dest: Path) -> Path:
    """The converted fixture without its int8 model: the same folder re-converted with --formats float."""
    shutil.copytree(converted, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    (dest / manifest["models"].pop("int8")["file"]).unlink()
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def _predict(api, clip: Path, tmp: Path) -> list[dict]:
    upload = tmp / "upload.wav"
    shutil.copyfile(clip, upload)
    return api.predict(data=_Upload(upload, clip.name))["labels"]


def test_converted_api_model_metadata_and_replacement(converted_run, tmp_path, monkeypatch):
    from kws.serving import deepaas_api as api
    from kws.serving.predictor import Predictor

    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("KWS_MODELS_DIR", str(models))
    monkeypatch.setattr(api, "_predictor", None)
    monkeypatch.setattr(api, "_predictor_key", None)
    shutil.copytree(converted_run, models / "api")
    labels = json.loads((converted_run / "manifest.json").read_text())["labels"]
    assert api.get_metadata()["labels"] == labels  # was []: a converted folder has no labels.txt

    clip = write_fixture_clip(tmp_path / f"{FIXTURE_WORD}.wav")
    int8_answer = _predict(api, clip, tmp_path)
    assert int8_answer[0]["label"] == FIXTURE_WORD

    # models/api replaced by a re-conversion (float only): the next prediction runs the new model
    float_only = _float_only_copy(converted_run, tmp_path / "float_only")
    shutil.rmtree(models / "api")
    shutil.copytree(float_only, models / "api")
    float_answer = _predict(api, clip, tmp_path)
    fresh = Predictor(float_only).predict_file(clip).labels  # the new model, loaded anew
    assert float_answer == fresh
    assert float_answer[0]["probability"] != int8_answer[0]["probability"]


@pytest.mark.parametrize("threshold", [0, 1])
def test_a_training_request_whose_threshold_never_detects_is_a_bad_request(tiny_dataset, threshold):
    """kws-train refuses smoothing.detection_threshold 0 or 1 before it reads the data (a model that
    holds its first detection for ever, or never detects); a training request through the API
    started such a run all the same."""
    from kws.serving import deepaas_api as api

    with pytest.raises(api.BadRequest) as err:
        api.train(data_path=str(tiny_dataset), smoothing_detection_threshold=threshold)
    assert "the training request: smoothing.detection_threshold must be between 0 and 1" in err.value.text
