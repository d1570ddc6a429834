"""Stop signals a test sends to its own process, as a user's Ctrl-C or a second SIGTERM would arrive."""
from __future__ import annotations

import os
import signal

HANDLER_BYTECODES = 1000  # a loop this long gives Python the bytecode boundaries to run a handler on


def signal_self(sig: int) -> None:
    """Send ``sig`` to this process and let its Python-level handler run before returning."""
    os.kill(os.getpid(), sig)
    for _ in range(HANDLER_BYTECODES):
        pass


def first_stop(*args, **kwargs) -> None:
    """A Ctrl-C (SIGINT) from inside whatever this replaces (any arguments are ignored)."""
    signal_self(signal.SIGINT)


def stopped_again_in(monkeypatch, module, name: str) -> None:
    """``module.name`` (a removal: unlink, rmtree) gets a SIGTERM as it starts, as when a second stop
    arrives in the cleanup that the first one began."""
    real = getattr(module, name)

    def stopped_again(*args, **kwargs):
        signal_self(signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, stopped_again)
