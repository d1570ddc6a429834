"""Ctrl-C during training: a stop request is a flag, so it is never lost inside a finalizer."""
import gc
import os
import signal
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
