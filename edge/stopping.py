"""How kws's commands stop on a signal: Ctrl-C (SIGINT), SIGTERM (kill, systemd, a CI timeout) and
SIGHUP (the terminal or ssh session that started the command went away) all end it like Ctrl-C, so
its temporary files and staging folders are removed and it says in one line what was kept (exit
status EXIT_INTERRUPTED; kws-listen, for which a stop is the normal end, prints its summary). Where
the terminal has gone away that line goes nowhere, and the exit status stays the same (:func:`tell`).
A further signal while that cleanup runs waits for it (:func:`cleanup_held`), so a second Ctrl-C
leaves no temporary file or staging folder half removed.

A signal the process was started ignoring stays ignored: ``nohup`` ignores SIGHUP so that a job
outlives its terminal, and a shell's ``&`` ignores SIGINT. Only the main thread can handle signals;
elsewhere these helpers do nothing.

Python delivers Ctrl-C as a ``KeyboardInterrupt`` raised wherever the main thread happens to be.
Inside TensorFlow/Keras that can be a weakref or ``__del__`` callback, where Python prints
"Exception ignored in ..." and the interrupt is lost: a training run would go on to the end. So a
:class:`StopRequest` can be a flag instead, which a job checks at its safe points (between batches)
and turns into ``KeyboardInterrupt`` itself, from ordinary code, where it always propagates.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator, NoReturn

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a job ended by Ctrl-C
# SIGHUP is POSIX only
STOP_SIGNALS = tuple(sig for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None))
                     if sig is not None)


def _install(handler: Callable) -> dict:
    """Put ``handler`` on every stop signal that is not ignored; the handlers it replaced."""
    previous: dict = {}
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                previous[sig] = signal.signal(sig, handler)
    return previous


def _put_back(previous: dict) -> None:
    for sig, handler in previous.items():
        # None: a handler set outside Python, which Python cannot set again
        signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    previous.clear()


class StopRequest:
    """What a stop signal does while installed (:meth:`install`, or as a context manager).

    By default the first signal only sets ``requested``, which the job checks with :meth:`check` at
    its safe points; a second one interrupts at once, for a job stuck outside any check.
    ``immediate``: every signal raises KeyboardInterrupt at once, as Ctrl-C does (for stretches
    without checks). ``holding`` (set by the job): signals only set ``requested``, while a cleanup
    or a final report runs to its end. ``once``: raising a KeyboardInterrupt sets ``holding``, so
    a second signal cannot cut short the cleanup the first one started; only for a process without
    TensorFlow, where an interrupt is never lost in a finalizer (a lost one could not be repeated).
    """

    def __init__(self, immediate: bool = False, once: bool = False) -> None:
        self.requested = False
        self.immediate = immediate
        self.once = once
        self.holding = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        second = self.requested
        self.requested = True
        if self.holding:
            return
        if second or self.immediate:
            self.holding = self.once
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a stop was requested."""
        if self.requested:
            raise KeyboardInterrupt

    def install(self) -> "StopRequest":
        """Handle the stop signals from now on."""
        self._previous.update(_install(self._handle))
        return self

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        _put_back(self._previous)

    def __enter__(self) -> "StopRequest":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.restore()


@contextlib.contextmanager
def signals_held(then: type[BaseException] | None = KeyboardInterrupt) -> Iterator[None]:
    """Stop signals that arrive in the block wait until it has run (several files moved into place
    are never half moved), then ``then`` is raised (None: they are dropped, for a block that ends
    the job); the block's own exception goes first."""
    received: list[int] = []
    previous = _install(lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        _put_back(previous)
    if received and then is not None:
        raise then()


@contextlib.contextmanager
def cleanup_held(unwinding: BaseException | None = None) -> Iterator[None]:
    """A cleanup (a staging folder or a temporary file removed) that a further stop signal cannot cut
    short, leaving the folder or file behind: signals that arrive in the block wait until it has run.
    ``unwinding`` is the exception the cleanup runs for: where it is a stop (KeyboardInterrupt), the
    stop asked for is under way and the held signals are dropped; otherwise (an error, or no exception)
    KeyboardInterrupt is raised after the block. Only for removals: a hold never covers work that can
    hang (a TensorFlow call), which a second Ctrl-C must still be able to cut."""
    with signals_held(None if isinstance(unwinding, KeyboardInterrupt) else KeyboardInterrupt):
        yield


@contextlib.contextmanager
def removed_after(remove: Callable[[], object]) -> Iterator[None]:
    """Run the block, then ``remove()`` (its temporary file or folder) however the block ended, under
    :func:`cleanup_held`."""
    try:
        yield
    except BaseException as exc:
        with cleanup_held(exc):
            remove()
        raise
    with cleanup_held():
        remove()


def tell(line: str) -> None:
    """Write ``line`` to stderr, or nothing where stderr is gone: the terminal of a session that
    hung up answers EIO and a closed pipe EPIPE, and the command still ends with its own status."""
    import click  # here: kws.edge.manifest's atomic writes use this module in lean edge programs too

    try:
        click.echo(line, err=True)
    except OSError:
        pass


def exit_interrupted(line: str) -> NoReturn:
    """End a stopped command: ``line`` (what was kept) on stderr where it can still be read, then
    exit status EXIT_INTERRUPTED."""
    tell(line)
    sys.exit(EXIT_INTERRUPTED)
