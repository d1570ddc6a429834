"""A file-backed ALSA microphone for tests (no sound card needed): the real PortAudio/ALSA capture
path reads audio that a test writes, paced in real time, into a named pipe.

ALSA's ``file`` plugin reads its ``infile`` (here a FIFO named by $KWS_TEST_PCM) as raw S16_LE mono,
16 kHz through ``kws_test_mic`` and 48 kHz through ``kws_test_mic48``; the config is scoped to one
process through $ALSA_CONFIG_PATH.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

DEVICE = "kws_test_mic"
DEVICE_48K = "kws_test_mic48"  # the same pipe read as 48 kHz audio
ALSA_BASE_CONFIG = Path("/usr/share/alsa/alsa.conf")
SAMPLE_RATE = 16000
BLOCK = 320  # samples written every BLOCK / SAMPLE_RATE seconds (20 ms)
ASOUND_CONF = """
pcm.kws_test_mic_raw { type file  slave.pcm "null"  file "/dev/null"  format "raw"
    infile { @func getenv vars [ KWS_TEST_PCM ] default "/dev/zero" } }
pcm.kws_test_mic { type plug  slave { pcm "kws_test_mic_raw" format S16_LE rate 16000 channels 1 } }
pcm.kws_test_mic48 { type plug  slave { pcm "kws_test_mic_raw" format S16_LE rate 48000 channels 1 } }
"""


def available() -> bool:
    return ALSA_BASE_CONFIG.is_file()


class VirtualMic:
    """Plays int16 audio into the virtual microphone, then silence (``tail="silence"``) or nothing
    at all (``tail="stall"``: the device stops delivering, as a vanished USB mic does).

    By default the writer blocks on the full pipe, so the capture side gets every sample exactly
    (faster than real time: the file plugin's "null" slave has no clock, and it does not wait for
    a pipe that is short of data — with real-time pacing its reads come back padded with junk)."""

    def __init__(self, folder: Path, audio: np.ndarray, tail: str = "silence", realtime: bool = False):
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "asound_test.conf"
        self.conf.write_text(ASOUND_CONF)
        self.fifo = folder / "mic.pcm"
        if not self.fifo.exists():
            os.mkfifo(self.fifo)
        self.audio = np.asarray(audio, dtype="<i2")
        self.tail = tail
        self.realtime = realtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.played = threading.Event()  # set when the audio (not the tail) has been written

    def env(self) -> dict[str, str]:
        return {**os.environ, "ALSA_CONFIG_PATH": f"{ALSA_BASE_CONFIG}:{self.conf}", "KWS_TEST_PCM": str(self.fifo)}

    def __enter__(self) -> "VirtualMic":
        # O_RDWR: opening never blocks and the reader never sees end-of-file while we hold it
        self._fd = os.open(self.fifo, os.O_RDWR)
        self._thread = threading.Thread(target=self._play, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        os.close(self._fd)

    def _play(self) -> None:
        silence = np.zeros(BLOCK, "<i2").tobytes()
        start = time.monotonic()
        i = 0
        while not self._stop.is_set():
            pos = i * BLOCK
            if pos < len(self.audio):
                block = self.audio[pos:pos + BLOCK].tobytes()
            else:
                self.played.set()
                if self.tail == "stall":
                    self._stop.wait(0.05)
                    continue
                block = silence
            try:
                os.write(self._fd, block)
            except (BlockingIOError, BrokenPipeError, OSError):
                pass  # the reader is slow or gone: keep the clock
            i += 1
            if self.realtime:
                delay = start + i * BLOCK / SAMPLE_RATE - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
