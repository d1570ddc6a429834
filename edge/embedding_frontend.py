"""The mel frontend of the ``embedding`` model family, in numpy: audio -> the 32-bin log-mel frames
Google's speech_embedding was trained on, computed the way openWakeWord streams them.

Audio is 16 kHz at int16 scale. Every call takes one chunk: ``CHUNK_SAMPLES`` (80 ms) of new audio
with ``LOOKBACK_SAMPLES`` (30 ms) of the previous audio in front, and gives ``MEL_FRAMES_PER_CHUNK``
frames: ``FFT_SIZE``-sample frames every ``MEL_HOP_SAMPLES``, each multiplied by the window, a real
FFT, the power spectrum, the mel matrix, ``10 * log10`` (floored at ``LOG_FLOOR``), clipped to
``DYNAMIC_RANGE_DB`` below the chunk's own peak, then ``x / MEL_DIVISOR + MEL_OFFSET``. The window
and the mel matrix are constants the converter extracts from ``melspectrogram.onnx`` into the
``mel_constants.npz`` of a converted model (``MelConstants``); nothing here needs onnx.

The embedding model takes the newest ``MEL_WINDOW`` frames and gives one ``EMBEDDING_DIM`` vector;
it runs once per chunk, and the head scores the newest ``HEAD_EMBEDDINGS`` vectors. One head window
is therefore ``WINDOW_SAMPLES`` of audio (the lookback plus ``WINDOW_CHUNKS`` chunks).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.fft import rfft as _rfft

from .errors import ManifestError
from .frontend import project

SAMPLE_RATE = 16000
INT16_SCALE = 32768.0  # float audio in [-1, 1) -> the int16 scale the mel model expects
CHUNK_SAMPLES = 1280  # 80 ms of new audio per mel call, and one embedding per chunk
LOOKBACK_SAMPLES = 480  # 30 ms of the previous chunk each mel call sees again
FFT_SIZE = 512
MEL_HOP_SAMPLES = 160
MEL_BINS = 32
MEL_FRAMES_PER_CHUNK = (LOOKBACK_SAMPLES + CHUNK_SAMPLES - FFT_SIZE) // MEL_HOP_SAMPLES + 1  # 8
LOG_FLOOR = 1e-10
DYNAMIC_RANGE_DB = 80.0
MEL_DIVISOR = 10.0
MEL_OFFSET = 2.0
MEL_WINDOW = 76  # mel frames per embedding (0.775 s)
EMBEDDING_DIM = 96
HEAD_EMBEDDINGS = 16  # embeddings the head sees (1.95 s)
# chunks until the first embedding (its MEL_WINDOW frames), then one more per further embedding
FIRST_EMBEDDING_CHUNKS = -(-MEL_WINDOW // MEL_FRAMES_PER_CHUNK)  # 10
WINDOW_CHUNKS = FIRST_EMBEDDING_CHUNKS + HEAD_EMBEDDINGS - 1  # 25
WINDOW_SAMPLES = LOOKBACK_SAMPLES + WINDOW_CHUNKS * CHUNK_SAMPLES  # 32480: one head window
# the newest embedding's frames end this many samples before a window's end (the rest is the next
# chunk's lookback): a word must end before it for the head to hear all of it
UNSEEN_TAIL_SAMPLES = LOOKBACK_SAMPLES + CHUNK_SAMPLES - ((MEL_FRAMES_PER_CHUNK - 1) * MEL_HOP_SAMPLES + FFT_SIZE)
MEL_CONSTANTS_FILE = "mel_constants.npz"
WINDOW_KEY = "window"
MEL_MATRIX_KEY = "mel_matrix"


@dataclass(frozen=True)
class MelConstants:
    """The STFT window (``FFT_SIZE``,) and the mel matrix (``FFT_SIZE // 2 + 1``, ``MEL_BINS``)."""

    window: np.ndarray
    mel_matrix: np.ndarray

    def __post_init__(self) -> None:
        bins = FFT_SIZE // 2 + 1
        if self.window.shape != (FFT_SIZE,) or self.mel_matrix.shape != (bins, MEL_BINS):
            raise ValueError(f"expected a window of {FFT_SIZE} and a {bins} x {MEL_BINS} mel matrix, got "
                             f"{self.window.shape} and {self.mel_matrix.shape}")
        if not (np.all(np.isfinite(self.window)) and np.all(np.isfinite(self.mel_matrix))):
            raise ValueError("the window and the mel matrix must be finite")


def save_mel_constants(consts: MelConstants, path: str | os.PathLike) -> None:
    """Write the constants as an .npz (two float32 arrays, no pickles), atomically."""
    import io

    from .manifest import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **{WINDOW_KEY: consts.window.astype(np.float32),
                     MEL_MATRIX_KEY: consts.mel_matrix.astype(np.float32)})
    atomic_write_bytes(path, buf.getvalue())


def load_mel_constants(path: str | os.PathLike) -> MelConstants:
    """The constants of a ``mel_constants.npz``; ManifestError (one line naming the file) when it is
    not such a file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            window, matrix = data[WINDOW_KEY], data[MEL_MATRIX_KEY]
        return MelConstants(np.asarray(window, np.float32), np.asarray(matrix, np.float32))
    except (OSError, KeyError, ValueError) as exc:
        raise ManifestError(f"{path}: not a usable mel constants file ({type(exc).__name__}: {exc})") from None


class MelFrontend:
    """Log-mel frames of chunks of audio (int16 scale), one ``DYNAMIC_RANGE_DB`` clip per chunk."""

    def __init__(self, consts: MelConstants):
        self.consts = consts
        starts = np.arange(MEL_FRAMES_PER_CHUNK) * MEL_HOP_SAMPLES
        self._frame_index = starts[:, None] + np.arange(FFT_SIZE)[None, :]  # (8, 512)

    def chunks(self, calls: np.ndarray) -> np.ndarray:
        """(n, MEL_FRAMES_PER_CHUNK, MEL_BINS) frames of n calls, each (LOOKBACK + CHUNK) samples."""
        calls = np.asarray(calls, np.float32).reshape(-1, LOOKBACK_SAMPLES + CHUNK_SAMPLES)
        frames = calls[:, self._frame_index] * self.consts.window  # (n, 8, 512)
        spectrum = _rfft(frames, axis=-1)
        power = (spectrum.real ** 2 + spectrum.imag ** 2).astype(np.float32)
        mel = project(power, self.consts.mel_matrix)
        db = 10.0 * np.log10(np.maximum(mel, LOG_FLOOR))
        floor = db.max(axis=(1, 2), keepdims=True) - DYNAMIC_RANGE_DB
        return (np.maximum(db, floor) / MEL_DIVISOR + MEL_OFFSET).astype(np.float32)

    def stream(self, audio: np.ndarray) -> np.ndarray:
        """(chunks * MEL_FRAMES_PER_CHUNK, MEL_BINS) frames of float audio in [-1, 1], as a stream that
        starts on silence computes them chunk by chunk (a trailing partial chunk is left out)."""
        x = np.concatenate([np.zeros(LOOKBACK_SAMPLES, np.float32),
                            np.asarray(audio, np.float32) * np.float32(INT16_SCALE)])
        return self.window_frames(x)

    def embedding_inputs(self, window: np.ndarray) -> np.ndarray:
        """(HEAD_EMBEDDINGS, MEL_WINDOW, MEL_BINS, 1) embedding-model inputs of one head window of float
        audio (WINDOW_SAMPLES, the first LOOKBACK_SAMPLES only as the first chunk's lookback)."""
        return embedding_windows(self.window_frames(np.asarray(window, np.float32) * np.float32(INT16_SCALE)))

    def window_frames(self, x: np.ndarray) -> np.ndarray:
        """Frames of int16-scale audio that starts with LOOKBACK_SAMPLES of lookback."""
        n = (len(x) - LOOKBACK_SAMPLES) // CHUNK_SAMPLES
        if n <= 0:
            return np.zeros((0, MEL_BINS), np.float32)
        index = np.arange(n)[:, None] * CHUNK_SAMPLES + np.arange(LOOKBACK_SAMPLES + CHUNK_SAMPLES)[None, :]
        return self.chunks(x[index]).reshape(-1, MEL_BINS)


def embedding_windows(mel: np.ndarray) -> np.ndarray:
    """(m, MEL_WINDOW, MEL_BINS, 1) inputs of the embedding model: the newest MEL_WINDOW frames after
    every chunk from the FIRST_EMBEDDING_CHUNKS-th on (a view where possible)."""
    from numpy.lib.stride_tricks import sliding_window_view

    chunks = len(mel) // MEL_FRAMES_PER_CHUNK
    if chunks < FIRST_EMBEDDING_CHUNKS:
        return np.zeros((0, MEL_WINDOW, MEL_BINS, 1), np.float32)
    ends = np.arange(FIRST_EMBEDDING_CHUNKS, chunks + 1) * MEL_FRAMES_PER_CHUNK
    views = sliding_window_view(mel, (MEL_WINDOW, MEL_BINS))[:, 0]  # (frames - 75, 76, 32)
    return views[ends - MEL_WINDOW][..., None]
