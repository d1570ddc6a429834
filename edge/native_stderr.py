"""Keeping a native library's own stderr lines away from the user while it decodes.

libsndfile decodes MP3 with libmpg123, which prints what it finds in a damaged or cut-short file
("Note: Illegal Audio-MPEG-Header ...", "Warning: Xing stream size off ...") with C's
``fprintf(stderr, ...)``; kws already says in its own one line which file failed and why.

:func:`native_stderr_silenced` points C's ``stderr`` stream at /dev/null for the length of a block.
File descriptor 2 itself is left alone, so Python's own writes to ``sys.stderr`` (other threads'
progress bars and messages) and the commands kws starts (``--on-detect``) keep their stderr; only
C code writing through the ``stderr`` stream meanwhile is quiet. glibc documents ``stderr`` as a
variable a program may assign; elsewhere (musl declares it const, macOS names it differently) the
block runs unchanged and the library's lines still show.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterator

NULL_DEVICE = b"/dev/null"

_lock = threading.Lock()
_state: dict = {"depth": 0}  # blocks running now (threads decode at once), C's stderr and /dev/null


def _streams():
    """(C's ``stderr`` variable, its own stream, a /dev/null stream), found once; None off glibc."""
    if "streams" not in _state:
        _state["streams"] = None
        try:
            if not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
                return None
            import ctypes

            libc = ctypes.CDLL(None)
            variable = ctypes.c_void_p.in_dll(libc, "stderr")
            libc.fopen.restype = ctypes.c_void_p
            libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
            null = libc.fopen(NULL_DEVICE, b"w")
        except (AttributeError, OSError, ValueError):  # no confstr name, no libc symbol
            return None
        if null and variable.value:
            _state["streams"] = (variable, variable.value, null)
    return _state["streams"]


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """C code's writes to ``stderr`` go to /dev/null in the block (in every thread: the stream is
    the process's); C's stderr is back once the last such block in any thread has ended, even
    when the block raises."""
    with _lock:
        streams = _streams()
    if streams is None:
        yield
        return
    variable, own, null = streams
    counted = False
    try:
        with _lock:
            _state["depth"] += 1
            counted = True
            variable.value = null
        yield
    finally:
        if counted:
            with _lock:
                _state["depth"] -= 1
                if _state["depth"] == 0:
                    variable.value = own
