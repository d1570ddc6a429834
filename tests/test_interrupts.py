"""Ctrl-C during training: a stop request is a flag, so it is never lost inside a finalizer."""
import gc
import os
import signal
import subprocess
import sys

import pytest

from kws.trainer.interrupts import StopRequest


class _SignalsInFinalizer:
    """Sends Ctrl-C to this process from __del__, as when Keras frees tensors between batches."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # bytecode to run the Python-level handler on, still inside __del__
            pass


def _interrupt_inside_finalizer():
    obj = _SignalsInFinalizer()
    del obj
    gc.collect()


def test_plain_ctrl_c_inside_a_finalizer_is_lost(monkeypatch):
    """Why StopRequest exists: a KeyboardInterrupt raised in __del__ is printed and dropped."""
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: dropped.append(info.exc_type))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _interrupt_inside_finalizer()  # returns normally: the interrupt went nowhere
    assert dropped == [KeyboardInterrupt]


def test_stop_request_keeps_a_ctrl_c_that_arrives_inside_a_finalizer():
    with StopRequest() as stop:
        _interrupt_inside_finalizer()
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            stop.check()


def test_second_signal_interrupts_at_once_and_handlers_are_restored():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopRequest() as stop:
        stop.check()  # nothing requested yet
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_immediate_mode_interrupts_at_the_first_signal():
    """Before a job's checked loop starts (start-up, data reading), SIGTERM stops it at once too,
    as a KeyboardInterrupt, instead of killing the process without a word."""
    with StopRequest(immediate=True) as stop:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):
                pass
        assert stop.requested


@pytest.mark.parametrize("tool, kept", [("ensemble_cli", "nothing was written"),
                                        ("eval_cli", "the manifest was not changed")])
def test_sigterm_to_kws_ensemble_and_kws_eval_ends_like_ctrl_c(tool, kept, tmp_path):
    """SIGTERM left kws-ensemble's staging folder (3.5 MB each) for good, and Ctrl-C was click's
    'Aborted!' with exit 1 where kws-train and kws-convert say what was kept and exit 130."""
    import signal as signals

    code = (f"import time, sys\nfrom kws.evaluation import {tool}\n"
            "from kws.evaluation.stopping import stop_cleanly\n"
            f"cmd = stop_cleanly('kws-x', {kept!r})(lambda: (print('ready', flush=True), time.sleep(60)))\n"
            "cmd()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signals.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip() == f"kws-x: interrupted; {kept}"
    from kws.evaluation import ensemble_cli, eval_cli
    assert getattr(ensemble_cli.main.callback, "__wrapped__", None) is not None
    assert getattr(eval_cli.main.callback, "__wrapped__", None) is not None
