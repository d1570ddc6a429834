"""Output that cannot be written (a full disk, a read-only or missing folder) is a one-line error
naming the path, found before the work where the work is long, never a traceback. A path under a
regular file is unwritable for every user, root included, so it stands in for a read-only folder."""
from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import FIXTURE_WORDS

KWS_TRAIN = [sys.executable, "-m", "kws.trainer.cli"]
KWS_LISTEN = [sys.executable, "-m", "kws.edge.listen_cli"]


@pytest.fixture()
def blocked(tmp_path):
    """A path no one can create: its parent is a regular file."""
    wall = tmp_path / "a_file"
    wall.write_text("not a folder\n")
    return wall / "out"


def _clip(tiny_dataset):
    return next((tiny_dataset / FIXTURE_WORDS[0]).glob("*.wav"))


def _one_line_error(text: str, path) -> None:
    assert "Traceback" not in text, text[-2000:]
    lines = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and str(path.parent) in lines[0], text[-2000:]


def test_train_into_an_unwritable_folder(tiny_dataset, blocked):
    res = subprocess.run(KWS_TRAIN + ["--data", str(tiny_dataset), "--out", str(blocked), "-q"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1
    _one_line_error(res.stderr, blocked)
    assert "Not a directory" in res.stderr


def test_a_write_failing_mid_training_leaves_a_resumable_run(tiny_dataset, tmp_path, monkeypatch):
    """A disk that fills after epoch 1: one line saying what the run keeps and how to resume."""
    import kws.trainer.train as train_module
    from kws.trainer.config import load_config, with_data

    real_save = train_module.save_keras_atomic
    saves = []

    def fills_up(model, path):
        saves.append(path)
        if len(saves) > 2:  # epoch 1's best and last checkpoints were written
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(model, path)

    monkeypatch.setattr(train_module, "save_keras_atomic", fills_up)
    out = tmp_path / "run"
    cfg = with_data(load_config(None, ["train.epochs=3", "model.architecture=tiny_conv", "train.batch_size=16"]),
                    str(tiny_dataset), list(FIXTURE_WORDS), [])
    with pytest.raises(train_module.KwsError) as caught:
        train_module.train(cfg, out=out, quiet=True)
    message = str(caught.value)
    assert "No space left on device" in message and "checkpoint of epoch 1" in message
    assert f"kws-train --resume {out}" in message and "\n" not in message
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 1


def test_eval_refuses_an_unwritable_report_folder_before_scoring(converted_run, tiny_dataset, blocked):
    from kws.evaluation.eval_cli import main as eval_main

    res = CliRunner().invoke(eval_main, ["-m", str(converted_run), "--keywords", str(tiny_dataset),
                                         "--hours", "0.01", "--report", str(blocked)])
    assert res.exit_code == 1 and "cannot write the report there" in res.output
    _one_line_error(res.output, blocked)
    assert "stream:" not in res.output  # nothing was scored


def test_inspect_plot_into_an_unwritable_folder(tiny_dataset, blocked):
    from kws.evaluation.inspect_cli import inspect_cmd

    res = CliRunner().invoke(inspect_cmd, [str(_clip(tiny_dataset)), "--plot", str(blocked / "x.png")])
    assert res.exit_code == 1 and "cannot write the figure there" in res.output
    assert "Traceback" not in res.output


def test_listen_summary_json_into_an_unwritable_folder(converted_run, tiny_dataset, blocked):
    res = subprocess.run(KWS_LISTEN + ["-m", str(converted_run), "--wav", str(_clip(tiny_dataset)), "-q",
                                       "--summary-json", str(blocked / "s.json")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "cannot write --summary-json there" in res.stderr
    assert "Traceback" not in res.stderr


def test_files_written_atomically_get_the_usual_mode_not_the_temp_files(tmp_path):
    """manifest.json (after kws-eval --calibrate), config.yaml, metrics.json and split.json were left
    0600, the temporary file's mode: a service running as another user could not read them."""
    import os

    from kws.edge.manifest import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.json", "{}")
        assert os.stat(tmp_path / "new.json").st_mode & 0o777 == 0o644
        (tmp_path / "kept.json").write_text("{}")
        os.chmod(tmp_path / "kept.json", 0o640)
        atomic_write_text(tmp_path / "kept.json", "{\"a\": 1}")
        assert os.stat(tmp_path / "kept.json").st_mode & 0o777 == 0o640  # a rewrite keeps the file's mode
    finally:
        os.umask(old)
