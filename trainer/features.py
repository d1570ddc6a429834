"""Feature arrays for training and evaluation, computed with the edge frontend
(``kws.edge.frontend``) so training sees exactly what the device computes."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kws.edge.frontend import Frontend
from kws.edge.manifest import SILENCE_LABEL, UNKNOWN_LABEL

from .augment import augment_audio, spec_augment
from .config import Config
from .dataset import Item

FEATURE_BATCH = 256  # clips per frontend call: bounds peak memory of the batched FFT


def clip_of(item: Item, clips: dict[str, np.ndarray], clip_samples: int) -> np.ndarray:
    """The float32 audio of an item (zeros for silence)."""
    if item.path is None:
        return np.zeros(clip_samples, dtype=np.float32)
    return clips[item.path].astype(np.float32) / 32768.0


def eval_features(items: Sequence[Item], clips: dict[str, np.ndarray], cfg: Config,
                  backgrounds: Sequence[np.ndarray], seed: int) -> np.ndarray:
    """Features without augmentation, except silence: background at a fixed seeded volume, so
    validation and test silence is realistic and the same every time."""
    fe = Frontend(cfg.features)
    n = cfg.features.clip_samples
    rng = np.random.default_rng(seed)
    out = np.empty((len(items), *cfg.features.input_shape), dtype=np.float32)
    for start in range(0, len(items), FEATURE_BATCH):
        batch = items[start:start + FEATURE_BATCH]
        audio = np.stack([
            augment_audio(clip_of(it, clips, n), True, cfg.augment, cfg.features.sample_rate, backgrounds, rng)
            if it.label == SILENCE_LABEL else clip_of(it, clips, n)
            for it in batch
        ]) if batch else np.zeros((0, n), np.float32)
        out[start:start + len(batch)] = fe.features(audio)
    return out


def training_features(items: Sequence[Item], clips: dict[str, np.ndarray], cfg: Config,
                      backgrounds: Sequence[np.ndarray], unknown_pool: Sequence[str],
                      rng: np.random.Generator) -> np.ndarray:
    """One epoch of augmented features; _unknown_ items are redrawn from the whole pool so
    every epoch sees different negatives."""
    fe = Frontend(cfg.features)
    n = cfg.features.clip_samples
    sr = cfg.features.sample_rate
    out = np.empty((len(items), *cfg.features.input_shape), dtype=np.float32)
    for start in range(0, len(items), FEATURE_BATCH):
        batch = items[start:start + FEATURE_BATCH]
        audio = np.empty((len(batch), n), dtype=np.float32)
        for j, it in enumerate(batch):
            if it.label == UNKNOWN_LABEL and unknown_pool:
                it = Item(unknown_pool[int(rng.integers(len(unknown_pool)))], UNKNOWN_LABEL)
            audio[j] = augment_audio(clip_of(it, clips, n), it.label == SILENCE_LABEL, cfg.augment, sr,
                                     backgrounds, rng)
        feats = fe.features(audio)
        for j in range(len(batch)):
            feats[j] = spec_augment(feats[j], cfg.augment, rng)
        out[start:start + len(batch)] = feats
    return out
