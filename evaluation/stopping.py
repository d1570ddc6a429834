"""How the evaluation tools end on Ctrl-C or SIGTERM: like kws-train and kws-convert, one line saying
what was kept and exit status 130 (click's own answer is "Aborted!" and 1), and SIGTERM (kill, systemd,
a CI timeout) unwinds like Ctrl-C so temporary files and staging folders are removed."""
from __future__ import annotations

import functools
import signal
import sys
import threading
from typing import Any, Callable

import click

EXIT_INTERRUPTED = 130


def terminate_as_interrupt(signum, frame):
    """A SIGTERM handler: end like Ctrl-C."""
    raise KeyboardInterrupt


def stop_cleanly(prog: str, kept: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command: SIGTERM raises KeyboardInterrupt in it, and an interrupt prints
    ``"<prog>: interrupted; <kept>"`` and exits 130."""
    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, terminate_as_interrupt)
            try:
                return command(*args, **kwargs)
            except KeyboardInterrupt:
                click.echo(f"{prog}: interrupted; {kept}", err=True)
                sys.exit(EXIT_INTERRUPTED)
        return run
    return wrap
