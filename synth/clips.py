"""Turning a synthesized utterance into a training clip: trim silence, augment (speed, gain,
room reverb, noise at an SNR), place at a random offset in a fixed-length clip, normalise."""
from __future__ import annotations

import numpy as np

from kws.edge.audio import resample

TRIM_DB = -40.0  # samples quieter than this, relative to the peak, count as silence
TRIM_FRAME_MS = 10
TARGET_RMS_DBFS = (-28.0, -16.0)
PEAK_LIMIT = 0.89  # -1 dBFS


def trim_silence(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading and trailing frames whose RMS is TRIM_DB below the loudest frame."""
    frame = max(1, sample_rate * TRIM_FRAME_MS // 1000)
    n = len(audio) // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[:n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > TRIM_DB)
    return audio[loud[0] * frame:(loud[-1] + 1) * frame]


def speed(audio: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Play faster (factor > 1) or slower, changing pitch with it (speed perturbation)."""
    if abs(factor - 1.0) < 1e-3:
        return audio
    return resample(audio, int(round(sample_rate * factor / 100)) * 100, sample_rate)


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise with unit RMS."""
    white = rng.standard_normal(n)
    if kind == "white":
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
        spectrum /= np.sqrt(f) if kind == "pink" else f
        noise = np.fft.irfft(spectrum, n)
    noise = noise - noise.mean()
    return (noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)).astype(np.float32)


def reverb(audio: np.ndarray, rt60_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room impulse response: exponentially decaying noise of the given RT60."""
    n = max(1, int(rt60_s * sample_rate))
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)  # -60 dB at rt60
    ir[0] = 1.0
    ir /= np.sqrt(np.sum(ir ** 2))
    from scipy.signal import fftconvolve
    return fftconvolve(audio, ir)[:len(audio) + n // 4].astype(np.float32)


def place(audio: np.ndarray, clip_samples: int, rng: np.random.Generator) -> np.ndarray | None:
    """Put the utterance at a random offset in a silent clip; None if it does not fit."""
    if len(audio) > clip_samples:
        return None
    out = np.zeros(clip_samples, dtype=np.float32)
    start = int(rng.integers(0, clip_samples - len(audio) + 1))
    out[start:start + len(audio)] = audio
    return out


def normalise(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale the speech to a random RMS level in TARGET_RMS_DBFS, never past PEAK_LIMIT."""
    active = clip[np.abs(clip) > 1e-4]
    rms = np.sqrt(np.mean(active ** 2)) if active.size else 0.0
    if rms <= 0:
        return clip
    gain = 10 ** (rng.uniform(*TARGET_RMS_DBFS) / 20) / rms
    peak = np.max(np.abs(clip)) * gain
    if peak > PEAK_LIMIT:
        gain *= PEAK_LIMIT / peak
    return (clip * gain).astype(np.float32)


def add_noise(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Mix noise (same length) at the given speech-to-noise ratio; clip to [-1, 1]."""
    active = clip[np.abs(clip) > 1e-4]
    speech_rms = np.sqrt(np.mean(active ** 2)) if active.size else 0.0
    noise_rms = np.sqrt(np.mean(noise ** 2)) + 1e-12
    mixed = clip + noise * (speech_rms / noise_rms) * 10 ** (-snr_db / 20)
    return np.clip(mixed, -1.0, 1.0).astype(np.float32)
