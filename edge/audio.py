"""Reading and writing WAV files, converting any rate, bit depth and channel count to
float32 mono at the model's rate."""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import AudioError

INT16_SCALE = 32768.0


@dataclass(frozen=True)
class WavInfo:
    """What a WAV file held before conversion."""

    sample_rate: int
    channels: int
    sample_format: str  # e.g. "int16", "int24", "uint8", "float32"
    num_samples: int

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate if self.sample_rate else 0.0


def _to_float(data: np.ndarray) -> tuple[np.ndarray, str]:
    """Scale integer or float samples to float32 in [-1, 1]."""
    kind = data.dtype
    if kind == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0, "uint8"
    if kind == np.int16:
        return data.astype(np.float32) / INT16_SCALE, "int16"
    if kind == np.int32:
        # scipy returns 24-bit PCM left-justified in int32, so one scale serves 24 and 32 bit
        return (data.astype(np.float64) / 2147483648.0).astype(np.float32), "int32"
    if kind == np.int64:
        return (data.astype(np.float64) / 9223372036854775808.0).astype(np.float32), "int64"
    if kind in (np.float32, np.float64):
        return data.astype(np.float32), str(kind)
    raise AudioError(f"unsupported sample type {kind}")


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, WavInfo]:
    """Read a WAV file as float32 mono in [-1, 1] at its own rate, with what it held."""
    from scipy.io import wavfile

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(str(path), mmap=False)
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError, IndexError, TypeError) as exc:
        raise AudioError(f"{path}: not a readable WAV file ({exc})") from None
    if data.size == 0:
        raise AudioError(f"{path}: WAV file holds no samples")
    channels = 1 if data.ndim == 1 else data.shape[1]
    samples, fmt = _to_float(data)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if fmt == "int32":
        fmt = _int32_width(path)
    info = WavInfo(sample_rate=int(rate), channels=channels, sample_format=fmt, num_samples=len(samples))
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: WAV holds NaN or infinite samples")
    return np.ascontiguousarray(samples, dtype=np.float32), info


def _int32_width(path: Path) -> str:
    """Tell 24-bit from 32-bit PCM by reading the fmt chunk's bits-per-sample."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        pos = head.find(b"fmt ")
        bits = int.from_bytes(head[pos + 22:pos + 24], "little") if pos >= 0 else 32
    except OSError:
        bits = 32
    return f"int{bits}"


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling between integer rates (44.1k/48k/8k -> 16k and back)."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(int(from_rate), int(to_rate))
    out = resample_poly(samples.astype(np.float64), to_rate // g, from_rate // g)
    return out.astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int) -> tuple[np.ndarray, WavInfo]:
    """Read any WAV and return float32 mono at ``sample_rate``, plus the original format."""
    samples, info = read_wav(path)
    return resample(samples, info.sample_rate, sample_rate), info


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float [-1, 1] to int16 PCM, rounding and clipping."""
    return np.clip(np.round(np.asarray(samples, dtype=np.float64) * INT16_SCALE), -32768, 32767).astype(np.int16)


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 PCM or float to float32 in [-1, 1]."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / INT16_SCALE
    if samples.dtype.kind in "iu":
        raise AudioError(f"unsupported PCM sample type {samples.dtype}; give int16 or float")
    return samples.astype(np.float32, copy=False)


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit mono PCM atomically (temp file in the same folder, then rename)."""
    from scipy.io import wavfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = samples if samples.dtype == np.int16 else to_int16(samples)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".wav", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            wavfile.write(f, int(sample_rate), pcm)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
