"""Output that cannot be written (a full disk, a read-only or missing folder) is a one-line error
naming the path, found before the work where the work is long, never a traceback. A path under a
regular file is unwritable for every user, root included, so it stands in for a read-only folder."""
from __future__ import annotations

import errno
import json
import re
import subprocess
import sys
from pathlib import Path

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


def _disk_full_for(monkeypatch, name: str) -> None:
    """A disk that fills while ``name`` is written: its fsync says ENOSPC (as it does where the
    filesystem allocates late), naming no file, as a failing write() does; other files are written."""
    import os

    real_fsync = os.fsync

    def fsync(fd):
        if name in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_an_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    from kws.edge.manifest import atomic_write_text

    target = tmp_path / "eval.json"
    target.write_text("the earlier report\n")
    _disk_full_for(monkeypatch, "eval.json")
    with pytest.raises(OSError) as caught:
        atomic_write_text(target, "the new report\n")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "the earlier report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]  # no temporary file left


def test_a_rename_that_fails_names_the_file_not_its_temporary_name(tmp_path, monkeypatch):
    import os

    from kws.edge.errors import os_error_line
    from kws.edge.manifest import atomic_write_bytes

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError) as caught:
        atomic_write_bytes(tmp_path / "curve.png", b"png")
    assert os_error_line(caught.value) == f"{tmp_path / 'curve.png'}: Permission denied"
    assert list(tmp_path.iterdir()) == []


def test_eval_report_on_a_full_disk_is_one_line_naming_it(converted_run, tiny_dataset, tmp_path, monkeypatch):
    """After the scoring, a full disk gave 'Error: ... (No space left on device)' with no file named."""
    from kws.evaluation.eval_cli import main as eval_main

    report = tmp_path / "report"
    _disk_full_for(monkeypatch, "eval.json")
    res = CliRunner().invoke(eval_main, ["-m", str(converted_run), "--keywords", str(tiny_dataset),
                                         "--hours", "0.01", "--report", str(report)])
    assert res.exit_code == 1 and "stream:" not in res.output
    _one_line_error(res.output, report / "eval.json")
    assert f"{report / 'eval.json'}: No space left on device" in res.output
    assert sorted(p.name for p in report.iterdir()) == ["stream_labels.csv"]  # written before; no half eval.json


def test_eval_labels_on_a_full_disk_leave_no_half_file(converted_run, tiny_dataset, tmp_path, monkeypatch):
    from kws.evaluation.eval_cli import main as eval_main

    report = tmp_path / "report"
    _disk_full_for(monkeypatch, "stream_labels.csv")
    res = CliRunner().invoke(eval_main, ["-m", str(converted_run), "--keywords", str(tiny_dataset),
                                         "--hours", "0.01", "--report", str(report)])
    assert res.exit_code == 1
    _one_line_error(res.output, report / "stream_labels.csv")
    assert f"{report / 'stream_labels.csv'}: No space left on device" in res.output
    assert list(report.iterdir()) == []


@pytest.mark.skipif(not __import__("shutil").which("espeak-ng"), reason="espeak-ng not installed")
def test_synth_on_a_full_disk_names_the_clip_and_leaves_no_half_clip(tmp_path, monkeypatch):
    """The disk fills while the workers render: one line naming the clip, and every .wav left is whole."""
    import os

    from scipy.io import wavfile

    from kws.synth.cli import main as synth_main

    parent = os.getpid()
    real_write = wavfile.write

    def fills_in_workers(f, rate, data):
        if os.getpid() == parent:  # the background noise, written by kws-synth itself
            return real_write(f, rate, data)
        f.write(b"RIFF")  # a clip's first bytes, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wavfile, "write", fills_in_workers)
    out = tmp_path / "data"
    res = CliRunner().invoke(synth_main, ["--words", "yes", "--per-word", "3", "--negatives", "0", "--engines",
                                          "espeak", "--jobs", "1", "-q", "--out", str(out)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {out / 'yes'}/") and \
        lines[0].endswith(".wav: No space left on device"), res.output
    assert not list(out.glob("yes/*.wav"))
    assert list((out / ".synth_state" / "tmp").iterdir()) == []  # the half-written clip is gone
    for wav in out.rglob("*.wav"):  # what is there (the background noise) is whole
        wavfile.read(wav)


def test_a_checkpoint_on_a_full_disk_names_the_checkpoint(tmp_path):
    from kws.trainer.run import save_keras_atomic

    class FillsTheDisk:
        def save(self, path):
            Path(path).write_bytes(b"PK\x03\x04")
            raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "ckpts" / "last.keras"
    with pytest.raises(OSError) as caught:
        save_keras_atomic(FillsTheDisk(), target)
    assert caught.value.filename == str(target) and caught.value.errno == errno.ENOSPC
    assert list(target.parent.iterdir()) == []


def test_convert_on_a_full_disk_names_the_file_in_the_output_folder(trained_run, tmp_path, monkeypatch):
    """Not the staging folder's copy (gone with it) and not a bare 'No space left on device'."""
    from kws.converters.cli import main as convert_main

    out = tmp_path / "dist"
    _disk_full_for(monkeypatch, "model_float.tflite")
    res = CliRunner().invoke(convert_main, ["-m", str(trained_run), "--out", str(out), "--formats", "float",
                                            "--no-edge-check", "-q"])
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("kws-convert: error:")]
    assert errors == [f"kws-convert: error: {out / 'model_float.tflite'}: No space left on device; "
                      "nothing was written"], res.output
    assert list(tmp_path.iterdir()) == []  # no dist, no staging folder


def _fills_while_saving(name: str):
    """An np.save whose file ``name`` gets its first bytes and then finds the disk full."""
    import numpy as np

    real_save = np.save

    def save(file, arr, *args, **kwargs):
        if Path(file).name != name:
            return real_save(file, arr, *args, **kwargs)
        Path(file).write_bytes(b"\x93NUMPY")
        raise OSError(errno.ENOSPC, "No space left on device")

    return save


def test_convert_edge_check_on_a_full_temp_folder_names_the_file(trained_run, tmp_path, monkeypatch):
    """The tflite-runtime check writes the test features to the system's temporary folder; a full one
    said only 'No space left on device'. Now: one line naming the file and the check, exit 1, and no
    output, staging or check folder left."""
    import tempfile

    import numpy as np

    from kws.converters.cli import main as convert_main

    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    edge_python = tmp_path / "edge-python"  # never run: the features are written first
    edge_python.write_text("#!/bin/sh\nexit 1\n")
    edge_python.chmod(0o755)
    monkeypatch.setenv("KWS_EDGE_PYTHON", str(edge_python))
    monkeypatch.setattr(np, "save", _fills_while_saving("features.npy"))
    out = tmp_path / "out" / "dist"
    res = CliRunner().invoke(convert_main, ["-m", str(trained_run), "--out", str(out), "--formats", "float", "-q"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    errors = [line for line in res.output.splitlines() if line.startswith("kws-convert: error:")]
    assert len(errors) == 1, res.output
    assert re.fullmatch(rf"kws-convert: error: {re.escape(str(private_tmp))}/kws-edge-check-[^/]+/features\.npy: "
                        r"cannot write the test features of the tflite-runtime check \(No space left on device\); "
                        r"set TMPDIR to a folder with space, or skip the check with --no-edge-check", errors[0])
    assert list(private_tmp.iterdir()) == [] and list(out.parent.iterdir()) == []


# The edge environment's tflite_runtime, faked: an interpreter giving the same two scores for any
# input; numpy.save finds the disk full once the scores are saved (as a full /tmp would).
FAKE_TFLITE_RUNTIME = '''
import errno, numpy as np
__version__ = "2.14.0"
def _full(file, arr, *args, **kwargs):
    open(file, "wb").write(b"\\x93NUMPY")
    raise OSError(errno.ENOSPC, "No space left on device")
np.save = _full
'''
FAKE_INTERPRETER = '''
import numpy as np
class Interpreter:
    def __init__(self, model_path, num_threads=1): pass
    def allocate_tensors(self): pass
    def get_input_details(self):
        return [{"index": 0, "shape": np.array([1, 4]), "dtype": np.float32, "quantization": (0.0, 0)}]
    def get_output_details(self):
        return [{"index": 1, "shape": np.array([1, 2]), "dtype": np.float32, "quantization": (0.0, 0)}]
    def set_tensor(self, index, value): pass
    def invoke(self): pass
    def get_tensor(self, index): return np.array([[0.25, 0.75]], np.float32)
'''


def test_edge_check_scores_on_a_full_temp_folder_name_the_file(tmp_path, monkeypatch):
    """The edge environment could not save its scores: one line naming that file (its partial
    bytes are never read back as scores), and the check's folder is gone."""
    import tempfile

    import numpy as np

    from kws.converters.errors import ConvertError
    from kws.converters.evaluate import run_tflite_runtime

    fake = tmp_path / "fake_site"
    (fake / "tflite_runtime").mkdir(parents=True)
    (fake / "tflite_runtime" / "__init__.py").write_text(FAKE_TFLITE_RUNTIME)
    (fake / "tflite_runtime" / "interpreter.py").write_text(FAKE_INTERPRETER)
    edge_python = tmp_path / "edge-python"
    edge_python.write_text(f"#!/bin/sh\nPYTHONPATH='{fake}' exec '{sys.executable}' \"$@\"\n")
    edge_python.chmod(0o755)
    monkeypatch.setenv("KWS_EDGE_PYTHON", str(edge_python))
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    with pytest.raises(ConvertError) as caught:
        run_tflite_runtime(tmp_path / "model.tflite", np.zeros((3, 4), np.float32), np.array([1, 1, 0]))
    assert re.fullmatch(rf"{re.escape(str(private_tmp))}/kws-edge-check-[^/]+/probs\.npy: cannot write the scores "
                        r"of the tflite-runtime check \(No space left on device\); set TMPDIR to a folder with "
                        r"space, or skip the check with --no-edge-check", str(caught.value))
    assert list(private_tmp.iterdir()) == []


LOG_ERROR = r": cannot write the TFLite converter's log to a temporary file there \(No space left on device\); " \
            r"set TMPDIR to a folder with space"


def _same_file(fd: int, stat) -> bool:
    import os

    now = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (stat.st_dev, stat.st_ino)


def test_converter_log_in_a_full_temp_folder_is_one_line_naming_it(tmp_path, monkeypatch):
    """kws-convert keeps the TFLite converter's output in a temporary file to quote a failure; a
    temporary folder with no room for it said only 'No space left on device'."""
    import os
    import tempfile

    from kws.converters.errors import ConvertError
    from kws.converters.tflite import captured_output

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    before = {fd: os.fstat(fd) for fd in (1, 2)}
    with pytest.raises(ConvertError) as caught:
        with captured_output():
            pass
    assert re.fullmatch(re.escape(str(tmp_path)) + LOG_ERROR, str(caught.value))
    assert all(_same_file(fd, stat) for fd, stat in before.items())


def test_converter_log_that_fills_the_temp_folder_gives_the_terminal_back(tmp_path, monkeypatch):
    """Output Python had buffered during the conversion could not be flushed into the log's
    temporary file (the folder filled meanwhile): the OSError skipped putting stdout and stderr
    back, so every later line, kws-convert's error too, went into the deleted file."""
    import os
    import tempfile

    from kws.converters.errors import ConvertError
    from kws.converters.tflite import captured_output

    class FillsUp:
        """A stdout whose buffered text cannot be written once the block has begun."""

        def __init__(self):
            self.flushes = 0

        def write(self, text):
            return len(text)

        def flush(self):
            self.flushes += 1
            if self.flushes > 1:
                raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(sys, "stdout", FillsUp())
    before = {fd: os.fstat(fd) for fd in (1, 2)}
    with pytest.raises(ConvertError) as caught:
        with captured_output() as log:
            os.write(2, b"converter chatter\n")
    assert all(_same_file(fd, stat) for fd, stat in before.items())
    assert re.fullmatch(re.escape(str(tmp_path)) + LOG_ERROR, str(caught.value))
    assert "converter chatter" in log.getvalue()
