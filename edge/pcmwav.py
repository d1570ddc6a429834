"""A reader for the plainest WAV files (16-bit PCM, a 44-byte canonical header, the data chunk as
long as the header says) without libsndfile: what microphones, ``arecord`` and ``kws-synth`` write.

It offers the part of ``soundfile.SoundFile`` that ``kws.edge.audio.AudioReader`` uses, and gives the
same samples; ``open_canonical_wav`` returns None for anything else, which soundfile then reads (and
explains when it cannot). It saves ``kws-listen --wav`` loading soundfile, cffi and libsndfile.
"""
from __future__ import annotations

import os
import stat
import struct

import numpy as np

HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # RIFF size WAVE "fmt " 16 tag ch rate bytes/s align bits data size
HEADER_BYTES = HEADER.size  # 44
FORMAT_PCM = 1
PCM16_BYTES = 2
PCM16_SCALE = 32768.0
MAX_CHANNELS = 64
RIFF_CHUNK = struct.Struct("<4sI")
UNKNOWN_SIZE = 0xFFFFFFFF  # what a recorder writes as the data size while it does not know it yet
MAX_CHUNKS = 64


class CanonicalWav:
    """An open canonical 16-bit PCM WAV file (see the module docstring)."""

    subtype = "PCM_16"
    format = "WAV"

    def __init__(self, handle, samplerate: int, channels: int, frames: int):
        self._f = handle
        self.samplerate, self.channels, self.frames = samplerate, channels, frames
        self._left = frames

    def seekable(self) -> bool:
        return True

    def read(self, frames: int, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        """Up to ``frames`` frames as float32 in [-1, 1], shape (frames, channels)."""
        n = min(int(frames), self._left)
        raw = self._f.read(n * self.channels * PCM16_BYTES)
        n = len(raw) // (self.channels * PCM16_BYTES)
        self._left -= n
        pcm = np.frombuffer(raw, "<i2", count=n * self.channels).reshape(n, self.channels)
        return pcm.astype(np.float32) / np.float32(PCM16_SCALE)

    def seek(self, frame: int) -> int:
        """Read from ``frame`` (0 .. frames) on, as ``soundfile.SoundFile.seek``; returns it."""
        frame = max(0, min(int(frame), self.frames))
        self._f.seek(HEADER_BYTES + frame * self.channels * PCM16_BYTES)
        self._left = self.frames - frame
        return frame

    def close(self) -> None:
        self._f.close()


def open_canonical_wav(path: str | os.PathLike) -> CanonicalWav | None:
    """The file as a CanonicalWav if it is a regular file in exactly that format, else None."""
    try:
        handle = open(path, "rb")
    except OSError:
        return None
    try:
        st = os.fstat(handle.fileno())
        head = handle.read(HEADER_BYTES)
        if not stat.S_ISREG(st.st_mode) or len(head) != HEADER_BYTES:
            handle.close()
            return None
        (riff, _, wave, fmt, fmt_size, tag, channels, rate, byte_rate, align, bits, data,
         data_size) = HEADER.unpack(head)
        block = channels * PCM16_BYTES
        if (riff, wave, fmt, data) != (b"RIFF", b"WAVE", b"fmt ", b"data") or fmt_size != 16 \
                or tag != FORMAT_PCM or bits != 16 or not 1 <= channels <= MAX_CHANNELS or align != block \
                or byte_rate != rate * block or data_size % block or data_size == 0 \
                or HEADER_BYTES + data_size > st.st_size:
            handle.close()
            return None
        return CanonicalWav(handle, int(rate), int(channels), data_size // block)
    except BaseException:
        handle.close()
        raise


def wav_shortfall(path: str | os.PathLike) -> tuple[float, float] | None:
    """(seconds the WAV header declares, seconds the file holds) when its data chunk is cut short
    (a copy or a recording interrupted: libsndfile reads what is there without a word), else None."""
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            if f.read(12)[8:12] != b"WAVE":
                return None
            rate = block = 0
            for _ in range(MAX_CHUNKS):
                head = f.read(RIFF_CHUNK.size)
                if len(head) < RIFF_CHUNK.size:
                    return None
                tag, length = RIFF_CHUNK.unpack(head)
                if tag == b"fmt ":
                    fmt = f.read(length + (length & 1))
                    if len(fmt) < 14:
                        return None
                    rate, block = struct.unpack_from("<I", fmt, 4)[0], struct.unpack_from("<H", fmt, 12)[0]
                elif tag == b"data":
                    held = size - f.tell()
                    if not rate or not block or length == UNKNOWN_SIZE or held >= length:
                        return None
                    return length / block / rate, max(0, held) / block / rate
                else:
                    f.seek(length + (length & 1), 1)
    except (OSError, struct.error):
        return None
    return None

