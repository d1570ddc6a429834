"""Fixed-size ring buffers for a stream: the last clip of audio and the last clip of feature frames."""
from __future__ import annotations

import numpy as np


class RingBuffer:
    """The newest ``capacity`` rows of a stream of fixed-width rows (samples, or feature frames).

    Writes never allocate; ``latest()`` returns them oldest first (a copy), zero-filled before the
    stream has produced ``capacity`` rows."""

    def __init__(self, capacity: int, width: int | None = None, dtype=np.float32):
        if capacity <= 0:
            raise ValueError(f"capacity must be > 0, got {capacity}")
        shape = (capacity,) if width is None else (capacity, width)
        self._buf = np.zeros(shape, dtype=dtype)
        self.capacity = capacity
        self._pos = 0  # where the next row goes
        self.total = 0  # rows written since the last reset

    def reset(self) -> None:
        self._buf[:] = 0
        self._pos = 0
        self.total = 0

    def write(self, rows: np.ndarray) -> None:
        """Append rows (1-D samples or 2-D frames matching the buffer's width)."""
        rows = np.asarray(rows, dtype=self._buf.dtype)
        n = len(rows)
        if n == 0:
            return
        self.total += n
        if n >= self.capacity:
            self._buf[:] = rows[-self.capacity:]
            self._pos = 0
            return
        first = min(n, self.capacity - self._pos)
        self._buf[self._pos:self._pos + first] = rows[:first]
        if first < n:
            self._buf[:n - first] = rows[first:]
        self._pos = (self._pos + n) % self.capacity

    def latest(self, out: np.ndarray | None = None) -> np.ndarray:
        """All ``capacity`` rows, oldest first (into ``out`` if given)."""
        if out is None:
            out = np.empty_like(self._buf)
        tail = self.capacity - self._pos
        out[:tail] = self._buf[self._pos:]
        out[tail:] = self._buf[:self._pos]
        return out
