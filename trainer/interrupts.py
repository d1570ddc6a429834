"""Stop requests for long jobs: Ctrl-C and SIGTERM ask a run to stop at its next safe point.

Python delivers Ctrl-C as a ``KeyboardInterrupt`` raised wherever the main thread happens to be.
Inside TensorFlow/Keras that can be a weakref or ``__del__`` callback, where Python prints
"Exception ignored in ..." and the interrupt is lost: the run then trains on to the end. A stop
request is a flag instead; the job checks it between batches and epochs and raises
``KeyboardInterrupt`` itself, from ordinary code, where it always propagates. A second signal while
a stop is pending interrupts at once, for a job stuck outside any check.
"""
from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Turns Ctrl-C and SIGTERM into a flag checked with :meth:`check`; also a context manager."""

    def __init__(self, immediate: bool = False) -> None:
        self.requested = False
        # True: a signal raises KeyboardInterrupt at once (for stretches without checks, where
        # Python's own Ctrl-C is safe); a job sets it False while it checks the flag itself
        self.immediate = immediate
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested or self.immediate:
            self.requested = True
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested."""
        if self.requested:
            raise KeyboardInterrupt

    def install(self) -> "StopRequest":
        """Handle Ctrl-C and SIGTERM from now on (only the main thread can; elsewhere this does nothing).
        A signal the process was started ignoring (a job run with ``nohup`` or ``&``) stays ignored."""
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> "StopRequest":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()
