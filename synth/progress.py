"""A progress bar for kws-synth: on a terminal, tqdm when it is installed (the train/dev extras bring
it), else a plain one-line counter; into a redirected log (make demo > log, CI) one summary line at
the end, never bar updates."""
from __future__ import annotations

import sys
import time

PLAIN_UPDATE_S = 0.5  # the plain counter redraws at most this often


class PlainBar:
    """'desc: done/total clips (rate/s)' redrawn in place on a terminal, printed once at the end otherwise."""

    def __init__(self, total: int, initial: int, desc: str, disable: bool, stream=None):
        self.total, self.n, self.desc, self.disable = total, initial, desc, disable
        self.stream = stream or sys.stderr
        self._start, self._start_n, self._last = time.time(), initial, 0.0

    def _line(self) -> str:
        elapsed = max(time.time() - self._start, 1e-9)
        return f"{self.desc}: {self.n}/{self.total} clips ({(self.n - self._start_n) / elapsed:.0f}/s)"

    def update(self, k: int) -> None:
        """Count k more finished clips."""
        self.n += k
        now = time.time()
        if not self.disable and self.stream.isatty() and now - self._last >= PLAIN_UPDATE_S:
            self._last = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if not self.disable:
            self.stream.write(("\r" if self.stream.isatty() else "") + self._line() + "\n")
            self.stream.flush()


def progress_bar(total: int, initial: int, desc: str, disable: bool):
    """An object with update(n) and close(): tqdm's bar on a terminal, else PlainBar (one final line
    when stderr is not a terminal)."""
    if disable or not sys.stderr.isatty():
        return PlainBar(total, initial, desc, disable)
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainBar(total, initial, desc, disable)
    return tqdm(total=total, initial=initial, desc=desc, unit="clip", disable=disable, file=sys.stderr,
                dynamic_ncols=True)
