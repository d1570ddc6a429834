"""How the evaluation tools end on Ctrl-C, SIGTERM or SIGHUP: like kws-train and kws-convert, one line
saying what was kept and exit status 130 (click's own answer is "Aborted!" and 1), and the signal
unwinds like Ctrl-C so temporary files and staging folders are removed (kws.edge.stopping)."""
from __future__ import annotations

import functools
from typing import Any, Callable

from kws.edge.stopping import StopRequest, exit_interrupted


def stop_cleanly(prog: str, kept: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command: a stop signal raises KeyboardInterrupt in it, and an interrupt prints
    ``"<prog>: interrupted; <kept>"`` and exits 130."""
    def wrap(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            stop = StopRequest(immediate=True).install()
            try:
                return command(*args, **kwargs)
            except KeyboardInterrupt:
                exit_interrupted(f"{prog}: interrupted; {kept}")
            finally:
                stop.restore()
        return run
    return wrap
