"""Training-time augmentation on audio (time shift, gain, background mixing) and on features
(SpecAugment time/frequency masks). Pure numpy, driven by an explicit Generator."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .config import AugmentConfig


def time_shift(clip: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift by a uniform offset in [-max_shift, max_shift], filling with zeros."""
    if max_shift <= 0:
        return clip
    shift = int(rng.integers(-max_shift, max_shift + 1))
    if shift == 0:
        return clip
    out = np.zeros_like(clip)
    if shift > 0:
        out[shift:] = clip[:-shift]
    else:
        out[:shift] = clip[-shift:]
    return out


def background_segment(backgrounds: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample stretch of a random background file (tiled if shorter)."""
    noise = backgrounds[int(rng.integers(len(backgrounds)))]
    if len(noise) < length:
        noise = np.tile(noise, int(np.ceil(length / len(noise))))
    start = int(rng.integers(0, len(noise) - length + 1))
    return noise[start:start + length]


def augment_audio(clip: np.ndarray, is_silence: bool, cfg: AugmentConfig, sample_rate: int,
                  backgrounds: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One augmented float32 clip: shift, gain, then background at a random volume.

    Silence clips are background alone at a volume uniform in [0, silence_volume]; keyword clips
    get background with probability background_frequency at a volume in [0, background_volume].
    """
    length = len(clip)
    if is_silence:
        out = np.zeros(length, dtype=np.float32)
        if backgrounds:
            out += background_segment(backgrounds, length, rng) * rng.uniform(0, cfg.silence_volume)
        return out
    out = time_shift(clip, int(round(cfg.time_shift_ms * sample_rate / 1000)), rng)
    if cfg.gain_db > 0:
        out = out * np.float32(10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20))
    if backgrounds and rng.random() < cfg.background_frequency:
        out = out + background_segment(backgrounds, length, rng) * rng.uniform(0, cfg.background_volume)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def spec_augment(features: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """SpecAugment masks on (frames, bins): masked cells take the clip's mean value."""
    if not (cfg.time_masks and cfg.time_mask_frames) and not (cfg.freq_masks and cfg.freq_mask_bins):
        return features
    out = features.copy()
    fill = out.mean()
    frames, bins = out.shape
    for _ in range(cfg.time_masks):
        width = int(rng.integers(0, cfg.time_mask_frames + 1))
        if width:
            start = int(rng.integers(0, max(1, frames - width)))
            out[start:start + width, :] = fill
    for _ in range(cfg.freq_masks):
        width = int(rng.integers(0, cfg.freq_mask_bins + 1))
        if width:
            start = int(rng.integers(0, max(1, bins - width)))
            out[:, start:start + width] = fill
    return out
