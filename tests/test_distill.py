"""Distillation (train.teachers / kws-train --teacher): targets, checks, and a student run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import FIXTURE_OVERRIDES, FIXTURE_WORDS

KWS_TRAIN = [sys.executable, "-m", "kws.trainer.cli"]


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def _sets(*extra):
    return [a for o in (*FIXTURE_OVERRIDES, *extra) for a in ("--set", o)]


def test_soft_targets_mix_the_teachers_mean_with_the_label():
    from kws.trainer.distill import soft_targets

    onehot = np.array([[0, 1, 0], [1, 0, 0]], np.float32)
    teacher = np.array([[0.2, 0.6, 0.2], [0.1, 0.1, 0.8]], np.float32)
    np.testing.assert_allclose(soft_targets(onehot, teacher, 0.5), [[0.1, 0.8, 0.1], [0.55, 0.05, 0.4]], atol=1e-6)
    np.testing.assert_allclose(soft_targets(onehot, teacher, 1.0), teacher, atol=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        soft_targets(onehot, teacher[:, :2], 0.5)


def test_teachers_targets_are_the_mean_of_the_teacher_models_scores(trained_run):
    import keras

    from kws.trainer.config import load_config
    from kws.trainer.distill import load_teachers

    cfg = load_config(trained_run / "config.yaml")
    labels = (trained_run / "labels.txt").read_text().split()
    teachers = load_teachers([str(trained_run), str(trained_run)], labels, cfg.features, 0.25)
    x = np.random.default_rng(0).normal(size=(5, *cfg.features.input_shape)).astype(np.float32)
    own = np.asarray(keras.models.load_model(trained_run / "model.keras", compile=False)(x, training=False))
    onehot = np.eye(len(labels), dtype=np.float32)[[0, 1, 2, 3, 4]]
    np.testing.assert_allclose(teachers.mean_scores(x), own, atol=1e-5)
    np.testing.assert_allclose(teachers.targets(x, onehot), 0.25 * own + 0.75 * onehot, atol=1e-5)


def test_a_student_learns_from_a_teacher_run(tiny_dataset, trained_run, tmp_path):
    out = tmp_path / "student"
    res = subprocess.run(KWS_TRAIN + ["--data", str(tiny_dataset), "--words", ",".join(FIXTURE_WORDS), "--out",
                                      str(out), "--teacher", os.path.relpath(trained_run), "-q",
                                      *_sets("train.teacher_weight=0.7")],
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    # recorded absolute, so --resume finds the teacher from any working directory
    assert cfg["train"]["teachers"] == [str(trained_run.resolve())] and cfg["train"]["teacher_weight"] == 0.7
    assert json.loads((out / "metrics.json").read_text())["validation"]["accuracy"] >= 0.85


def test_a_teacher_that_does_not_fit_is_refused_before_training(tiny_dataset, trained_run, tmp_path):
    def run(*args):
        return subprocess.run(KWS_TRAIN + ["--data", str(tiny_dataset), "-q", *args], env=_env(),
                              capture_output=True, text=True, timeout=120)
    out = tmp_path / "refused"
    res = run("--words", FIXTURE_WORDS[0], "--out", str(out), "--teacher", str(trained_run), *_sets())
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert f"{trained_run}: teacher labels" in res.stderr and not out.exists()
    res = run("--words", ",".join(FIXTURE_WORDS), "--out", str(out), "--teacher", str(trained_run),
              *_sets("features.num_features=20", "features.num_mel_bins=20"))
    assert res.returncode == 1 and "teacher features differ" in res.stderr and "num_features" in res.stderr
    res = run("--words", ",".join(FIXTURE_WORDS), "--out", str(out), "--teacher", str(tmp_path), *_sets())
    assert res.returncode == 1 and f"{tmp_path}: teacher has no model.keras" in res.stderr and not out.exists()


def test_a_broken_teacher_is_named_in_one_line(tmp_path):
    from kws.trainer.distill import TeacherError, check_teacher

    (tmp_path / "model.keras").write_bytes(b"not a model")
    (tmp_path / "labels.txt").write_text("yes\nno\n")
    (tmp_path / "config.yaml").write_text("features: [\n  unclosed")
    with pytest.raises(TeacherError) as err:
        check_teacher(str(tmp_path), ["yes", "no"], None)
    assert str(err.value).startswith(f"{tmp_path}: teacher's labels.txt/config.yaml unreadable")
    assert "\n" not in str(err.value)
