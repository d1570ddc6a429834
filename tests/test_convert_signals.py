"""kws-convert stopped by SIGTERM (issue 14 item 19) ends like Ctrl-C: exit 130, one line, and no
staging folder (.kws-convert-*) or edge-check folder (kws-edge-check-*) left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

KWS_CONVERT = Path(sys.executable).parent / "kws-convert"
WAIT_FOR_EDGE_CHECK_S = 300  # TensorFlow import, conversion and evaluation come first
POLL_S = 0.1


@pytest.mark.slow
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
    proc = subprocess.Popen([str(KWS_CONVERT), "-m", str(trained_run), "--formats", "float", "--out", str(out)],
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
