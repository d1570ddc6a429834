"""The default model (issue 14 item 15): the newest *complete* model, never an unfinished training run
(killed before its first checkpoint: a timestamp folder with only config.yaml)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import SAMPLE_RATE, word_audio
from kws.edge.audio import write_wav
from kws.edge.errors import ModelNotFoundError
from kws.edge.locate import default_model, incomplete_runs

VENV_BIN = Path(sys.executable).parent
OLD_RUN = "20260101T000000Z"
NEWER_UNFINISHED = ("20270101T000000Z", "20270102T000000Z")


def _unfinished(root: Path, name: str, with_checkpoint: bool = False) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("train:\n  epochs: 20\n")
    if with_checkpoint:  # killed after an epoch: a checkpoint, still no model.keras
        (run / "ckpts").mkdir()
        (run / "ckpts" / "last.keras").write_bytes(b"PK\x03\x04")
        (run / "state.json").write_text(json.dumps({"epochs_done": 1}))
    return run


def test_unfinished_runs_are_listed_not_chosen(tmp_path):
    complete = tmp_path / OLD_RUN
    (complete / "dist").mkdir(parents=True)
    (complete / "config.yaml").write_text("")
    (complete / "dist" / "manifest.json").write_text("{}")
    _unfinished(tmp_path, NEWER_UNFINISHED[0])
    _unfinished(tmp_path, NEWER_UNFINISHED[1], with_checkpoint=True)
    assert default_model(tmp_path) == complete
    assert [p.name for p in incomplete_runs(tmp_path)] == list(reversed(NEWER_UNFINISHED))
    # an unfinished models/api is skipped too
    _unfinished(tmp_path, "api")
    assert default_model(tmp_path) == complete


def test_a_rejected_conversion_is_never_the_default(tmp_path):
    """kws-convert --out models/mine, rejected where models/mine held a conversion, writes
    models/mine.rejected: the newest complete folder, but not one to serve without -m."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "manifest.json").write_text("{}")
    rejected = tmp_path / "mine.rejected"
    rejected.mkdir()
    (rejected / "manifest.json").write_text("{}")
    os.utime(mine / "manifest.json", (1_000_000, 1_000_000))  # the rejected one is newer
    assert default_model(tmp_path) == mine


def test_each_tool_defaults_to_the_newest_model_it_can_use(tmp_path):
    """After the README's kws ensemble --out models/pair, kws-predict and kws serve without -m took the
    ensemble and refused it, deepaas-run did not start, and kws-convert took a converted folder."""
    from kws.edge.locate import SINGLE_MODEL, TRAINING_RUN

    run = tmp_path / OLD_RUN
    (run / "dist").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"PK\x03\x04")
    (run / "dist" / "manifest.json").write_text("{}")
    converted = tmp_path / "20260601T000000Z"
    converted.mkdir()
    (converted / "manifest.json").write_text(json.dumps({"labels": []}))
    pair = tmp_path / "pair"
    pair.mkdir()
    (pair / "manifest.json").write_text(json.dumps({"ensemble": {"members": []}}))
    os.utime(pair / "manifest.json", (4e9, 4e9))  # the newest of all
    assert default_model(tmp_path) == pair  # kws-listen and kws-eval run an ensemble
    assert default_model(tmp_path, need=SINGLE_MODEL) == converted
    assert default_model(tmp_path, need=TRAINING_RUN) == run
    (run / "model.keras").unlink()
    with pytest.raises(ModelNotFoundError, match=r"no finished training run \(model.keras\) in .*pass -m/--model"):
        default_model(tmp_path, need=TRAINING_RUN)


def test_only_unfinished_runs_is_an_error_with_the_resume_hint(tmp_path):
    for name in NEWER_UNFINISHED:
        _unfinished(tmp_path, name)
    with pytest.raises(ModelNotFoundError) as err:
        default_model(tmp_path)
    newest = tmp_path / NEWER_UNFINISHED[1]
    assert f"2 unfinished training run(s) without model.keras (newest: {newest})" in str(err.value)
    assert f"kws-train --resume {newest}" in str(err.value)


def test_default_model_predict_and_listen_skip_a_newer_unfinished_run(converted_run, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(converted_run, models / OLD_RUN / "dist")
    _unfinished(models, NEWER_UNFINISHED[0])
    clip = tmp_path / "up.wav"
    write_wav(clip, word_audio("up", np.random.default_rng(30)), SAMPLE_RATE)
    env = {**os.environ, "KWS_MODELS_DIR": str(models)}
    predict = subprocess.run([str(VENV_BIN / "kws-predict"), str(clip), "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert predict.returncode == 0, predict.stderr
    assert json.loads(predict.stdout)["label"] == "up"
    listen = subprocess.run([str(VENV_BIN / "kws-listen"), "--wav", str(clip)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert listen.returncode == 0, listen.stderr
    assert f"model {models / OLD_RUN / 'dist'}" in listen.stderr


def test_a_manifest_json_that_is_no_file_is_named_as_what_it_is(tmp_path):
    """A manifest.json that is a folder (an unzip gone wrong, a copy into the wrong place) was reported
    as "no manifest.json here" though it was there; given to the loader, a named pipe hung it."""
    from kws.edge.errors import ManifestError
    from kws.edge.manifest import load_manifest
    from kws.edge.model_loader import locate, open_model

    def refused(call, path) -> str:
        with pytest.raises(ManifestError) as err:
            call(path)
        return str(err.value)

    dist = tmp_path / "dist"
    (dist / "manifest.json").mkdir(parents=True)
    (dist / "model_int8.tflite").write_bytes(b"TFL3")
    folder = f"{dist / 'manifest.json'}: a folder, not a manifest file"
    for path in (dist, dist / "manifest.json", dist / "model_int8.tflite", tmp_path):  # tmp_path: its dist/
        assert refused(open_model, path) == folder, path
    assert refused(load_manifest, dist) == folder
    (dist / "manifest.json").rmdir()
    (dist / "manifest.json").symlink_to(tmp_path / "gone.json")
    assert refused(locate, dist) == f"{dist / 'manifest.json'}: a broken link, not a manifest file"
    (dist / "manifest.json").unlink()
    os.mkfifo(dist / "manifest.json")
    pipe = f"{dist / 'manifest.json'}: a named pipe, not a manifest file"
    assert refused(load_manifest, dist / "manifest.json") == pipe
    (dist / "manifest.json").unlink()
    assert refused(locate, dist) == (f"{dist}: no manifest.json here (expected a .tflite with its manifest, or a "
                                     "folder from kws-convert)")


def test_a_runs_model_keras_given_to_the_converted_model_tools_names_what_to_give(tmp_path):
    """kws-listen, kws-eval and kws ensemble run converted models: given a run's model.keras they said
    it was "not UTF-8 text" or "too large for a manifest" (and kws-eval told to convert a run that
    was converted); now they name the run's dist/, or the kws-convert command where it has none, as
    they say it of the run folder."""
    from click.testing import CliRunner

    from kws.edge.errors import ManifestError
    from kws.edge.recognizer import Recognizer
    from kws.evaluation.ensemble_cli import member_source
    from kws.evaluation.eval_cli import main as eval_main

    run = tmp_path / "run"
    run.mkdir()
    keras = run / "model.keras"
    keras.write_bytes(b"PK\x03\x04\xff" * 8)  # a zip, as Keras writes one
    convert = f"{run}: a training run without converted models; run: kws-convert -m {run}"
    for call in (Recognizer.from_manifest, lambda path: member_source(path, None)):  # kws-listen, kws ensemble
        with pytest.raises(ManifestError) as err:
            call(str(keras))
        assert str(err.value) == convert
    (run / "dist").mkdir()
    (run / "dist" / "manifest.json").write_text("{}")
    res = CliRunner().invoke(eval_main, ["-m", str(keras), "--keywords", str(tmp_path)])
    assert res.exit_code == 1
    assert res.output == f"Error: {keras}: a Keras model, not a converted one; give {run / 'dist'}, its run's converted model\n"
