"""The feature frontend: audio -> log-mel or MFCC frames, in numpy.

The same code computes training features and the device's streaming features, so they are
identical by construction. The exact math is written out in firmware_notes/frontend_spec.md:

1. frame: ``window_samples`` long, every ``stride_samples``, no padding (frame k starts at k*stride);
2. multiply by a periodic Hann window; real FFT of ``fft_size`` points (zero-padded);
3. power spectrum |X|^2; 4. triangular mel filters (HTK mel scale, lower..upper Hz, DC excluded);
5. natural log of (mel energy + LOG_OFFSET); 6. for MFCC, an orthonormal DCT-II keeping the first
``num_features`` coefficients.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .manifest_schema import FRONTEND_RANGES

# numpy's FFT everywhere, not scipy's: it is as fast for the few frames of a streaming hop, gives
# bit-identical spectra whatever the batch (training, a clip, a hop), and keeps scipy.fft (about
# 30 MB of RSS) out of the device process. The mel and DCT products after it (``project``, BLAS) may
# round differently with the number of frames given at once, so features of one frame computed in a
# hop and in a whole clip can differ in their last bits (float32 rounding).
from numpy.fft import rfft as _rfft

FEATURE_TYPES = ("mfcc", "log_mel")
LOG_OFFSET = 1e-6
MEL_BREAK_HZ = 700.0
MEL_HIGH_Q = 1127.0
VTLP_KNEE = 0.85  # share of the Nyquist frequency up to which a VTLP warp is a plain scaling


@dataclass(frozen=True)
class FrontendConfig:
    """Parameters of the feature frontend; saved in every manifest."""

    sample_rate: int = 16000
    clip_ms: int = 1000
    window_ms: float = 30.0
    stride_ms: float = 10.0
    feature_type: str = "mfcc"
    num_features: int = 40
    num_mel_bins: int = 40
    lower_hz: float = 20.0
    upper_hz: float = 7600.0

    def __post_init__(self) -> None:
        problems = []
        for name, (lo, hi, integer) in FRONTEND_RANGES.items():  # what a manifest can hold, so what any
            value = getattr(self, name, None)                    # tool can load once it is trained
            if isinstance(value, (int, float)) and not (lo <= value <= hi and (not integer or value == int(value))):
                problems.append(f"{name} must be {'a whole number ' if integer else ''}in {lo:g}..{hi:g}, got {value}")
        if problems:  # the relations below assume numbers in range
            raise ValueError("; ".join(problems))
        if self.feature_type not in FEATURE_TYPES:
            problems.append(f"feature_type must be one of {', '.join(FEATURE_TYPES)}, got {self.feature_type!r}")
        if not 0 < self.window_ms <= self.clip_ms:
            problems.append(f"window_ms must be in (0, clip_ms], got {self.window_ms}")
        if not 0 < self.stride_ms <= self.window_ms:
            problems.append(f"stride_ms must be in (0, window_ms], got {self.stride_ms}")
        # each problem starts with the key it is about (kws-train names it as features.KEY)
        if self.upper_hz > self.sample_rate / 2:
            problems.append(f"upper_hz must be at most sample_rate/2 ({self.sample_rate / 2:g} Hz), got {self.upper_hz:g}")
        if not self.lower_hz < self.upper_hz:
            problems.append(f"lower_hz must be below upper_hz ({self.upper_hz:g} Hz), got {self.lower_hz:g}")
        if self.feature_type == "log_mel" and self.num_features != self.num_mel_bins:
            problems.append(f"num_features must equal num_mel_bins ({self.num_mel_bins}) for log_mel, "
                            f"got {self.num_features}")
        if self.feature_type == "mfcc" and not 1 <= self.num_features <= self.num_mel_bins:
            problems.append(f"num_features must be in 1..num_mel_bins ({self.num_mel_bins}) for mfcc, "
                            f"got {self.num_features}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def window_samples(self) -> int:
        return int(round(self.sample_rate * self.window_ms / 1000))

    @property
    def stride_samples(self) -> int:
        return int(round(self.sample_rate * self.stride_ms / 1000))

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_ms / 1000))

    @property
    def fft_size(self) -> int:
        return 1 << (self.window_samples - 1).bit_length()

    @property
    def num_frames(self) -> int:
        """Frames in one clip: the model's time dimension."""
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.num_frames, self.num_features)

    def missing_band(self, input_rate: int) -> str | None:
        """What audio recorded at ``input_rate`` lacks for this frontend, in one phrase: it holds nothing
        above input_rate / 2, so where that is below ``upper_hz`` the top mel bands are empty, which
        a model trained at ``sample_rate`` never saw (missed words, false detections); None where
        the rate covers every band."""
        nyquist = input_rate / 2
        if nyquist >= self.upper_hz:
            return None
        return (f"{input_rate} Hz audio holds nothing above {nyquist:g} Hz, and the model hears up to "
                f"{self.upper_hz:g} Hz: expect missed words and false detections (record at {self.sample_rate} Hz)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FrontendConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown frontend parameter(s): {', '.join(unknown)}")
        return cls(**data)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 * ln(1 + f / 700)."""
    return MEL_HIGH_Q * np.log1p(np.asarray(hz, dtype=np.float64) / MEL_BREAK_HZ)


def warp_frequencies(hz: np.ndarray, factor: float, nyquist: float) -> np.ndarray:
    """Vocal-tract length warp of a frequency axis (training-side augmentation, never on a device):
    f -> factor * f up to a knee, then a straight line that keeps the Nyquist frequency in place."""
    knee = VTLP_KNEE * nyquist * min(1.0, 1.0 / factor)
    upper = factor * knee + (nyquist - factor * knee) * (hz - knee) / (nyquist - knee)
    return np.where(hz <= knee, factor * hz, upper)


def mel_matrix(cfg: FrontendConfig, warp: float = 1.0) -> np.ndarray:
    """Triangular mel filterbank, shape (fft_size // 2 + 1, num_mel_bins); the DC bin gets 0.
    ``warp`` != 1 moves the spectrum's frequencies (VTLP, training only; see warp_frequencies)."""
    num_bins = cfg.fft_size // 2 + 1
    bin_hz = np.linspace(0.0, cfg.sample_rate / 2, num_bins)
    if warp != 1.0:
        bin_hz = warp_frequencies(bin_hz, warp, cfg.sample_rate / 2)
    bin_mel = hz_to_mel(bin_hz)
    edges = np.linspace(hz_to_mel(cfg.lower_hz), hz_to_mel(cfg.upper_hz), cfg.num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel[:, None] - lower[None, :]) / (center - lower)[None, :]
    falling = (upper[None, :] - bin_mel[:, None]) / (upper - center)[None, :]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights.astype(np.float32)


def dct_matrix(num_in: int, num_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a (num_in, num_out) matrix: features = log_mel @ dct."""
    n = np.arange(num_in)[:, None]
    k = np.arange(num_out)[None, :]
    mat = np.cos(math.pi / num_in * (n + 0.5) * k) * math.sqrt(2.0 / num_in)
    mat[:, 0] *= 1.0 / math.sqrt(2.0)
    return mat.astype(np.float32)


def periodic_hann(length: int) -> np.ndarray:
    """Periodic Hann window: 0.5 - 0.5 cos(2 pi n / length)."""
    n = np.arange(length)
    return (0.5 - 0.5 * np.cos(2.0 * math.pi * n / length)).astype(np.float32)


def project(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``x @ matrix`` over the last axis of an (..., n) array, as one 2-D product: numpy's stacked
    matmul over a (clips, frames, bins) batch runs ~40x slower than the same product flattened."""
    flat = x.reshape(-1, x.shape[-1])
    return (flat @ matrix).reshape(x.shape[:-1] + (matrix.shape[1],))


class Frontend:
    """Computes features from float32 audio in [-1, 1]; stateless and thread-safe."""

    def __init__(self, cfg: FrontendConfig):
        self.cfg = cfg
        self.window = periodic_hann(cfg.window_samples)
        mel = mel_matrix(cfg)
        if cfg.feature_type == "mfcc":
            self._dct = dct_matrix(cfg.num_mel_bins, cfg.num_features)
        else:
            self._dct = None
        self._mel = mel

    def power_spectrum(self, frames: np.ndarray) -> np.ndarray:
        """|FFT|^2 of windowed frames, shape (..., window_samples) -> (..., fft_size // 2 + 1)."""
        spectrum = _rfft(frames * self.window, n=self.cfg.fft_size, axis=-1)
        power = np.square(spectrum.real)
        power += np.square(spectrum.imag)
        return power.astype(np.float32, copy=False)

    def mel_to_features(self, mel_energy: np.ndarray) -> np.ndarray:
        """Log of mel energies, then the DCT for MFCC."""
        feats = mel_energy + LOG_OFFSET
        np.log(feats, out=feats)
        if self._dct is not None:
            feats = project(feats, self._dct)
        return feats.astype(np.float32, copy=False)

    def power_to_features(self, power: np.ndarray) -> np.ndarray:
        """Features of power spectra, shape (..., fft_size // 2 + 1) -> (..., num_features)."""
        return self.mel_to_features(project(power, self._mel))

    def frames_to_features(self, frames: np.ndarray) -> np.ndarray:
        """Features of already-cut frames, shape (..., window_samples) -> (..., num_features)."""
        return self.power_to_features(self.power_spectrum(frames))

    def num_frames_for(self, num_samples: int) -> int:
        if num_samples < self.cfg.window_samples:
            return 0
        return 1 + (num_samples - self.cfg.window_samples) // self.cfg.stride_samples

    def frame(self, audio: np.ndarray) -> np.ndarray:
        """Cut audio (..., samples) into frames (..., n_frames, window_samples) without copying."""
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        n = self.num_frames_for(audio.shape[-1])
        win, hop = self.cfg.window_samples, self.cfg.stride_samples
        shape = audio.shape[:-1] + (n, win)
        strides = audio.strides[:-1] + (audio.strides[-1] * hop, audio.strides[-1])
        return np.lib.stride_tricks.as_strided(audio, shape=shape, strides=strides, writeable=False)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """Features of a clip (samples,) -> (frames, num_features), or a batch (B, samples)."""
        return self.frames_to_features(self.frame(audio))

    def clip_features(self, audio: np.ndarray) -> np.ndarray:
        """Features of exactly one model clip: pads with zeros or keeps the last clip_samples."""
        n = self.cfg.clip_samples
        audio = np.asarray(audio, dtype=np.float32)
        if audio.shape[-1] < n:
            pad = [(0, 0)] * (audio.ndim - 1) + [(0, n - audio.shape[-1])]
            audio = np.pad(audio, pad)
        return self.features(audio[..., -n:])


class StreamingFrontend:
    """Incremental features over an endless stream: push samples, get only the new frames.

    Frame k covers stream samples [k*stride, k*stride + window), exactly as ``Frontend.features``
    would cut the whole stream, whatever the chunk sizes. Samples wait in one preallocated buffer
    (grown only for a chunk larger than any before), so a push does not copy the pending audio around;
    the frames are cut from a strided view of that buffer made once (the frame sizes are plain ints,
    not recomputed per push), so the per-push Python work is a few numpy calls.
    """

    def __init__(self, cfg: FrontendConfig):
        self.cfg = cfg
        self._frontend = Frontend(cfg)
        self._win = cfg.window_samples
        self._hop = cfg.stride_samples
        self._empty = np.zeros((0, cfg.num_features), dtype=np.float32)
        self._use(np.zeros(cfg.window_samples + cfg.clip_samples, dtype=np.float32))
        self._len = 0  # samples waiting in _buf[:_len]
        self.frames_emitted = 0

    def _use(self, buf: np.ndarray) -> None:
        """Make ``buf`` the sample buffer, with a view of every frame it can hold."""
        self._buf = buf
        self._frames = self._frontend.frame(buf)

    def reset(self) -> None:
        self._len = 0
        self.frames_emitted = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add float32 samples; return the features of every frame completed, (n, num_features)."""
        if type(samples) is not np.ndarray or samples.dtype != np.float32 or samples.ndim != 1:
            samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        start = self._len
        end = start + len(samples)
        if end > len(self._buf):
            grown = np.zeros(max(end, 2 * len(self._buf)), dtype=np.float32)
            grown[:start] = self._buf[:start]
            self._use(grown)
        self._buf[start:end] = samples
        if end < self._win:
            self._len = end
            return self._empty
        n = 1 + (end - self._win) // self._hop
        feats = self._frontend.frames_to_features(self._frames[:n])
        used = n * self._hop
        self._buf[:end - used] = self._buf[used:end]  # the overlap of the next frame moves to the front
        self._len = end - used
        self.frames_emitted += n
        return feats
