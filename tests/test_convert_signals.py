"""kws-convert stopped by SIGTERM (issue 14 item 19) ends like Ctrl-C: exit 130, one line, and no
staging folder (.kws-convert-*) or edge-check folder (kws-edge-check-*) left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from signal_helpers import first_stop, stopped_again_in

WAIT_FOR_EDGE_CHECK_S = 60  # the command's start-up comes first
POLL_S = 0.1
# kws-convert with its pipeline cut to the last step, the edge check of a model staged in its staging
# folder: the signal meets the real command, staging folder and check folder, without the TensorFlow
# import, conversion and evaluation (half a minute) that lead there
_CONVERT_TO_THE_EDGE_CHECK = """
import sys
import numpy as np
from kws.converters import cli, convert, evaluate
def to_the_edge_check(src, formats, out, staging, *args):
    model = staging / convert.FLOAT_FILE
    model.write_bytes(b"a float model")
    evaluate.run_tflite_runtime(model, np.zeros((2, 4), np.float32))
convert._convert_into = to_the_edge_check
cli.main(sys.argv[1:])
"""


def test_sigterm_during_the_edge_check_cleans_every_temporary_folder(trained_run, tmp_path):
    """The edge environment's python is replaced by one that says it started and then hangs, so the
    signal arrives while kws-convert waits in its edge check (staging and check folders both exist)."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    started = tmp_path / "edge-check-started"
    hanging_python = tmp_path / "edge-python"
    hanging_python.write_text(f"#!/bin/bash\ntouch '{started}'\nexec sleep 600\n")
    hanging_python.chmod(0o755)
    out = tmp_path / "out" / "dist"
    env = {**os.environ, "TMPDIR": str(private_tmp), "KWS_EDGE_PYTHON": str(hanging_python)}
    proc = subprocess.Popen([sys.executable, "-c", _CONVERT_TO_THE_EDGE_CHECK, "-m", str(trained_run),
                             "--formats", "float", "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_FOR_EDGE_CHECK_S
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
        assert started.exists(), "kws-convert never reached its edge check"
        assert [p.name for p in private_tmp.iterdir() if p.name.startswith("kws-edge-check-")]
        assert [p.name for p in out.parent.iterdir() if p.name.startswith(".kws-convert-")]
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "kws-convert: error: interrupted; nothing was written"
    assert "Traceback" not in stderr
    assert list(out.parent.iterdir()) == []  # no staging folder, no half-written dist/
    assert [p.name for p in private_tmp.iterdir() if p.name.startswith("kws-edge-check-")] == []


def test_a_stop_while_the_files_are_moved_in_waits_until_all_of_them_are(tmp_path, monkeypatch):
    """Ctrl-C between two renames left new models beside the old manifest (every tool then refused
    the folder: sha256 differs) and said "nothing was written"."""
    import os
    import signal

    from kws.converters import convert as conv

    staging, out = tmp_path / "staging", tmp_path / "dist"
    staging.mkdir()
    out.mkdir()
    names = ["model_int8.tflite", "model_float.tflite", "manifest.json"]
    for name in names:
        (staging / name).write_text("new " + name)
        (out / name).write_text("old " + name)
    real_replace = os.replace
    moved = []

    def replace_then_stop(src, dst):
        real_replace(src, dst)
        moved.append(dst)
        if len(moved) == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(conv.os, "replace", replace_then_stop)
    stopped_again_in(monkeypatch, conv.shutil, "rmtree")  # and again while the emptied staging folder goes
    with pytest.raises(conv.CommittedInterrupt):
        conv._commit(staging, out, names, names)
    assert [(out / n).read_text() for n in names] == ["new " + n for n in names]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist"]  # the staging folder went too
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_a_second_stop_cannot_leave_the_staging_folder(tmp_path, monkeypatch):
    """Ctrl-C, then SIGTERM while the staging folder was removed: half of it (up to the size of every
    model) stayed beside the dist, and this kws-convert's own pid kept the next run from removing it."""
    from kws.converters import convert as conv
    from kws.converters.source import RunSource
    from kws.edge.stopping import StopRequest
    from kws.trainer.config import load_config
    from kws.trainer.run import RunDir

    run = RunSource(run=RunDir(tmp_path / "run"), cfg=load_config(None), labels=("_silence_", "_unknown_", "up"))
    monkeypatch.setattr(conv, "open_run", lambda model: run)

    def stopped_while_converting(src, formats, out, staging, *args):
        (staging / conv.INT8_FILE).write_bytes(b"half a model")
        first_stop()

    monkeypatch.setattr(conv, "_convert_into", stopped_while_converting)
    stopped_again_in(monkeypatch, conv.shutil, "rmtree")
    with StopRequest(immediate=True), pytest.raises(KeyboardInterrupt):
        conv.convert(conv.ConvertOptions(out=str(tmp_path / "out" / "dist")))
    assert list((tmp_path / "out").iterdir()) == []


def test_a_second_stop_cannot_leave_the_edge_checks_folder(tmp_path, monkeypatch):
    """Stopped twice while tflite-runtime checked the models: kws-edge-check-* stayed in TMPDIR."""
    import shutil
    import tempfile

    from kws.converters import evaluate
    from kws.edge.stopping import StopRequest

    edge_python = tmp_path / "python"
    edge_python.write_text("")
    monkeypatch.setenv(evaluate.EDGE_PYTHON_ENV, str(edge_python))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(evaluate.subprocess, "run", first_stop)  # stopped while the edge python runs
    stopped_again_in(monkeypatch, shutil, "rmtree")  # TemporaryDirectory.cleanup removes with it
    with StopRequest(immediate=True), pytest.raises(KeyboardInterrupt):
        evaluate.run_tflite_runtime(tmp_path / "model.tflite", np.zeros((2, 4), np.float32))
    assert list(tmp_path.iterdir()) == [edge_python]


def test_staging_folders_a_killed_conversion_left_are_removed_by_the_next(tmp_path):
    """After a SIGKILL, .kws-convert-dist-* folders stayed beside the dist for good (and travelled
    with copies of the run); a live conversion's folder beside it must survive."""
    import os
    import subprocess
    import sys
    import time

    from kws.converters import convert as conv

    out = tmp_path / "dist"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f"{conv.STAGING_PREFIX}dist-dead"
    dead.mkdir()
    (dead / conv.STAGING_OWNER).write_text(gone.stdout)
    (dead / "model_int8.tflite").write_bytes(b"half")
    live = tmp_path / f"{conv.STAGING_PREFIX}dist-live"
    live.mkdir()
    (live / conv.STAGING_OWNER).write_text(f"{os.getpid()}\n")
    old_unowned = tmp_path / f"{conv.STAGING_PREFIX}dist-old"
    old_unowned.mkdir()
    os.utime(old_unowned, (time.time() - 2 * conv.ABANDONED_STAGING_S,) * 2)
    other = tmp_path / f"{conv.STAGING_PREFIX}other-dead"  # beside another output: not this one's
    other.mkdir()
    (other / conv.STAGING_OWNER).write_text(gone.stdout)

    staging = conv._make_staging(out)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, other.name, staging.name])
    (staging / "manifest.json").write_text("{}")
    conv._commit(staging, out, ["manifest.json"], ["manifest.json"])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]  # no owner file in the dist
