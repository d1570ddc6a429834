"""Feature arrays for training and evaluation, computed with the edge frontend
(``kws.edge.frontend``) so training sees exactly what the device computes; training alone adds
the augmentation of ``augment.py`` and a vocal-tract-length warp of the mel filterbank (VTLP).

Training features come in chunks of CHUNK clips, each with its own generator seeded by
``(seed, epoch, chunk)``: the same epoch gives the same clips whatever the number of workers.
"""
from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from kws.edge.frontend import Frontend, mel_matrix, project
from kws.edge.manifest import SILENCE_LABEL, UNKNOWN_LABEL

from .augment import AugmentSources, augment_audio, spec_augment
from .config import Config
from .dataset import Item
from .negatives import is_negative_key

FEATURE_BATCH = 256  # clips per frontend call: bounds peak memory of the batched FFT
CHUNK = 128  # training clips per seeded chunk (the unit of parallel work)
VTLP_STEP = 0.01  # warp factors are drawn on this grid, so the warped filterbanks can be cached
WORKERS_ENV = "KWS_AUGMENT_WORKERS"  # threads computing training features (default: 2)
DEFAULT_WORKERS = 2
PARTIAL_KEY = "<partial>/"  # item paths of partial-word windows (augment.partial_word_percentage)


def partial_items(n: int) -> list[Item]:
    """``n`` placeholder items of partial-word windows, labelled _unknown_: each epoch every one
    becomes a fresh cut of a random training keyword clip (``augment.partial_word``)."""
    return [Item(f"{PARTIAL_KEY}{k}", UNKNOWN_LABEL) for k in range(n)]


def is_partial_key(key: str | None) -> bool:
    return key is not None and key.startswith(PARTIAL_KEY)


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
    silence_cfg = dataclasses.replace(cfg.augment, gain_db=0.0)  # silence at its drawn volume, no level change
    out = np.empty((len(items), *cfg.features.input_shape), dtype=np.float32)
    for start in range(0, len(items), FEATURE_BATCH):
        batch = items[start:start + FEATURE_BATCH]
        audio = np.stack([
            augment_audio(clip_of(it, clips, n), True, silence_cfg, cfg.features.sample_rate, backgrounds, rng)
            if it.label == SILENCE_LABEL else clip_of(it, clips, n)
            for it in batch
        ]) if batch else np.zeros((0, n), np.float32)
        out[start:start + len(batch)] = fe.features(audio)
    return out


class WarpedFrontend:
    """The edge frontend with a per-clip VTLP warp of its mel filterbank (training side only)."""

    def __init__(self, cfg: Config):
        self.fe = Frontend(cfg.features)
        self.features_cfg = cfg.features
        lo, hi = cfg.augment.vtlp_range
        self.grid = np.round(np.arange(lo, hi + VTLP_STEP / 2, VTLP_STEP), 4) if hi > lo else np.array([lo])
        self._mels = np.stack([mel_matrix(cfg.features, float(w)) for w in self.grid])

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Warp indices (into ``grid``) for n clips."""
        return rng.integers(len(self.grid), size=n)

    def features(self, audio: np.ndarray, warps: np.ndarray) -> np.ndarray:
        """Features of a batch (B, samples), clip b with filterbank ``grid[warps[b]]``."""
        power = self.fe.power_spectrum(self.fe.frame(audio))
        mel = np.empty(power.shape[:-1] + (self._mels.shape[-1],), np.float32)
        for w in np.unique(warps):  # one flat product per filterbank (a stacked matmul is far slower)
            at = warps == w
            mel[at] = project(power[at], self._mels[w])
        return self.fe.mel_to_features(mel)


def _chunk_features(items: Sequence[Item], clips: dict[str, np.ndarray], cfg: Config,
                    sources: AugmentSources, unknown_pool: Sequence[str], rng: np.random.Generator,
                    fe: WarpedFrontend, keyword_pool: Sequence[str] = ()) -> np.ndarray:
    n = cfg.features.clip_samples
    sr = cfg.features.sample_rate
    audio = np.empty((len(items), n), dtype=np.float32)
    for j, it in enumerate(items):
        kind = "word"
        if is_partial_key(it.path):
            it = Item(keyword_pool[int(rng.integers(len(keyword_pool)))], UNKNOWN_LABEL)
            kind = "partial"
        elif is_negative_key(it.path):
            kind = "window"
        elif it.label == UNKNOWN_LABEL and unknown_pool:
            it = Item(unknown_pool[int(rng.integers(len(unknown_pool)))], UNKNOWN_LABEL)
        # a _silence_ item without audio is made of background; a negative window trained as
        # _silence_ keeps its own audio
        is_silence = it.label == SILENCE_LABEL and it.path is None
        audio[j] = augment_audio(clip_of(it, clips, n), is_silence, cfg.augment, sr, sources, rng, kind)
    feats = fe.features(audio, fe.draw(len(items), rng))
    for j in range(len(items)):
        feats[j] = spec_augment(feats[j], cfg.augment, rng)
    return feats


def augment_workers() -> int:
    """Threads for training features: $KWS_AUGMENT_WORKERS, else DEFAULT_WORKERS."""
    try:
        return max(1, int(os.environ.get(WORKERS_ENV, DEFAULT_WORKERS)))
    except ValueError:
        return DEFAULT_WORKERS


def training_features(items: Sequence[Item], clips: dict[str, np.ndarray], cfg: Config,
                      sources: AugmentSources | Sequence[np.ndarray], unknown_pool: Sequence[str],
                      seed: Sequence[int], workers: int | None = None,
                      keyword_pool: Sequence[str] = ()) -> np.ndarray:
    """One epoch of augmented features; ``seed`` (e.g. ``[train.seed, epoch]``) fixes every random
    choice. _unknown_ items from the data folder are redrawn from the whole pool so every epoch sees
    different negatives; windows of real negatives (``negatives.is_negative_key``) keep their audio;
    partial-word items (``partial_items``) are cut from a random clip of ``keyword_pool``."""
    if any(is_partial_key(i.path) for i in items) and not keyword_pool:
        raise ValueError("partial-word items need a keyword_pool to cut them from")
    if not isinstance(sources, AugmentSources):
        sources = AugmentSources(backgrounds=tuple(sources))
    fe = WarpedFrontend(cfg)
    out = np.empty((len(items), *cfg.features.input_shape), dtype=np.float32)
    starts = list(range(0, len(items), CHUNK))

    def one(k: int) -> None:
        start = starts[k]
        rng = np.random.default_rng([*seed, k])
        out[start:start + CHUNK] = _chunk_features(items[start:start + CHUNK], clips, cfg, sources,
                                                   unknown_pool, rng, fe, keyword_pool)

    workers = augment_workers() if workers is None else workers
    if workers <= 1 or len(starts) <= 1:
        for k in range(len(starts)):
            one(k)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, range(len(starts))))
    return out
