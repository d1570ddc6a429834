"""Variety beyond the voices: synthetic room reverb, generated white/pink/brown noise and mixing
noise at a speech-to-noise ratio."""
from __future__ import annotations

import numpy as np

from .clips import active_rms

NOISE_KINDS = ("white", "pink", "brown")
RT60_DECAY_DB = 60.0
REVERB_DIRECT_GAIN = 1.0  # the direct path's amplitude relative to the first reflection
PREDELAY_MS = 3.0  # sound travel before the first reflections


def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White (flat), pink (1/f power) or brown (1/f^2 power) noise of n samples with unit RMS."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    white = rng.standard_normal(n)
    if kind == "white":
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)  # no infinite gain at DC
        spectrum /= np.sqrt(f) if kind == "pink" else f
        noise = np.fft.irfft(spectrum, n)
    noise = noise - noise.mean()
    return (noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)).astype(np.float32)


def room_impulse_response(rt60_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: a direct path, then exponentially decaying noise reaching -60 dB at rt60_s."""
    n = max(2, int(rt60_s * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-np.log(10 ** (RT60_DECAY_DB / 20)) * t / rt60_s)
    tail[: int(PREDELAY_MS * sample_rate / 1000)] = 0.0
    tail /= np.sqrt(np.sum(tail ** 2)) + 1e-12
    ir = tail
    ir[0] = REVERB_DIRECT_GAIN
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def reverb(clip: np.ndarray, rt60_s: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """The clip as heard in a room of the given RT60; same length (the tail past the clip's end
    is cut, as a recording window would)."""
    from scipy.signal import fftconvolve

    return fftconvolve(clip, room_impulse_response(rt60_s, sample_rate, rng))[:len(clip)].astype(np.float32)


def noise_segment(source: np.ndarray, n: int, position: float) -> np.ndarray:
    """n samples of ``source`` starting at ``position`` (0..1) of it, looped if it is shorter."""
    if len(source) == 0:
        return np.zeros(n, dtype=np.float32)
    start = int(position * max(1, len(source) - n))
    seg = source[start:start + n]
    if len(seg) < n:
        seg = np.resize(source, n) if len(source) < n else np.concatenate([seg, source[:n - len(seg)]])
    return seg.astype(np.float32, copy=False)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Speech plus noise scaled so that active speech RMS / noise RMS is ``snr_db``."""
    speech_rms = active_rms(speech)
    noise_rms = float(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    if speech_rms <= 0 or noise_rms <= 0:
        return speech
    return (speech + noise * (speech_rms / noise_rms) * 10 ** (-snr_db / 20)).astype(np.float32)
