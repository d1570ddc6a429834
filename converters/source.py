"""The model to convert: a training run folder (model.keras, config.yaml, labels.txt, split.json),
its Keras model, and the features conversion needs: calibration clips from the training split and
the test split, computed with the run's own config and the edge frontend."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kws.edge.locate import TRAINING_RUN, resolve_model
from kws.edge.manifest import MANIFEST_NAME
from kws.trainer import dataset as ds
from kws.trainer.augment import AugmentSources, load_rirs
from kws.trainer.config import Config, load_config
from kws.trainer.features import eval_features, training_features
from kws.trainer.run import MODEL_FILE, RunDir, run_to_give

from .errors import SourceError

REQUIRED_FILES = ("config.yaml", "labels.txt", "split.json", MODEL_FILE)
TEST_SPLIT = "testing"
FALLBACK_SPLIT = "validation"
TRAIN_SPLIT = "training"
# seeds matching kws.trainer.train.finish, so Keras accuracy here equals metrics.json's
TEST_SEED_OFFSET = 4
VALIDATION_SEED_OFFSET = 1
CALIBRATION_SEED_OFFSET = 11
# share of calibration clips drawn through the run's own training augmentation (noise, levels, and
# rooms/channels/voices where the config turns them on), so the int8 ranges cover what training
# covered. Measured on make demo's model (176 test clips): 0 (all clean) lost 1.14 points, 0.5 lost
# 2.27, 1.0 gained 1.70 (docs/BENCHMARKS.md, make demo).
AUGMENTED_CALIBRATION_SHARE = 1.0


@dataclass(frozen=True)
class RunSource:
    """A validated training run folder and its resolved config."""

    run: RunDir
    cfg: Config
    labels: tuple[str, ...]

    @property
    def path(self) -> Path:
        return self.run.path


@dataclass(frozen=True)
class FeatureSet:
    """Features with integer labels; ``split`` says where they come from."""

    x: np.ndarray
    y: np.ndarray
    split: str
    by_label: dict[str, int]
    groups: tuple[str | None, ...] = ()


def open_run(model_arg: str | os.PathLike | None) -> RunSource:
    """The run folder named by -m (or the default model); one-line SourceError if unusable."""
    try:
        path = resolve_model(model_arg, TRAINING_RUN)
    except Exception as exc:  # ModelNotFoundError and friends: already one line
        raise SourceError(str(exc)) from None
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    # -m models/r2/dist (or a file in it) means models/r2; a kws-convert --out elsewhere, its source run
    if not path.is_dir():
        raise SourceError(f"{path}: not a training run folder ("
                          + (run_to_give(path, "kws-convert -m") or "kws-convert takes the folder kws-train wrote")
                          + ")")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing and (path / MANIFEST_NAME).is_file():
        raise SourceError(f"{path}: holds converted models, not a training run ("
                          + (run_to_give(path, "kws-convert -m")
                             or "give the run folder that kws-train wrote, with model.keras and config.yaml") + ")")
    if missing:
        hint = (" (training still running, interrupted or failed? resume with kws-train --resume)"
                if (path / "state.json").is_file() or (path / "ckpts").is_dir() else "")
        raise SourceError(f"{path}: incomplete training run, missing {', '.join(missing)}{hint}")
    run = RunDir(path)
    try:
        cfg = load_config(run.config)
    except Exception as exc:  # noqa: BLE001 - ConfigError or a YAML problem
        raise SourceError(f"{run.config}: unreadable config ({exc})") from None
    return RunSource(run=run, cfg=cfg, labels=read_run_labels(run))


def read_run_labels(run: RunDir) -> tuple[str, ...]:
    """The run's labels.txt; one-line SourceError if it is unreadable or holds fewer than two."""
    try:
        labels = tuple(run.read_labels())
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{run.labels}: unreadable ({exc})") from None
    if len(labels) < 2:
        raise SourceError(f"{run.labels}: needs at least two labels, found {len(labels)}")
    return labels


def load_keras_model(src: RunSource) -> Any:
    """The run's model.keras (inference only); SourceError naming the file if it is corrupt."""
    return load_checked_keras(src.run.model, tuple(src.cfg.features.input_shape), len(src.labels))


def load_checked_keras(path: Path, input_shape: tuple, num_labels: int) -> Any:
    """A Keras model file (inference only) that takes ``input_shape`` and gives ``num_labels`` scores;
    SourceError naming the file where it is corrupt or maps other shapes."""
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - zip, h5 and deserialization errors all mean "corrupt"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SourceError(f"{path}: cannot load the Keras model (corrupt or half-written?): {first}") from None
    expected_in = tuple(input_shape)
    if tuple(model.input_shape[1:]) != expected_in or int(model.output_shape[-1]) != num_labels:
        raise SourceError(f"{path}: model maps {tuple(model.input_shape[1:])} -> {model.output_shape[-1]} "
                          f"labels, but the run's config and labels.txt say {expected_in} -> {num_labels}")
    return model


class RunData:
    """The run's saved split with its clips and background noise, loaded once."""

    def __init__(self, src: RunSource, say: Callable[[str], None] = lambda _: None):
        self.src = src
        try:
            self.index = ds.load_index(src.run.split)
        except Exception as exc:  # noqa: BLE001 - JSON or key errors: a damaged split.json
            raise SourceError(f"{src.run.split}: unreadable split ({type(exc).__name__}: {exc})") from None
        if list(self.index.labels) != list(src.labels):
            raise SourceError(f"{src.run.split}: labels differ from {src.run.labels}; the run folder is inconsistent")
        if not self.index.root.is_dir():
            raise SourceError(f"{self.index.root}: the data folder of this run is gone; conversion needs its "
                              "training clips (calibration) and test split (verification)")
        self.calibration_items = self._calibration_items()
        self.eval_split = TEST_SPLIT if self.index.splits.get(TEST_SPLIT) else FALLBACK_SPLIT
        self.eval_items = list(self.index.splits.get(self.eval_split, []))
        cfg = src.cfg
        paths = [i.path for i in self.calibration_items + self.eval_items if i.path]
        self.clips, report = ds.load_clips(paths, cfg.features.sample_rate, cfg.features.clip_samples)
        self.backgrounds, _ = ds.load_background(self.index.background_files, cfg.features.sample_rate)
        if report.skipped:
            say(f"warning: {len(report.skipped)} clip(s) of the split are unreadable now and left out")
        self.calibration_items = [i for i in self.calibration_items if i.path is None or i.path in self.clips]
        self.eval_items = [i for i in self.eval_items if i.path is None or i.path in self.clips]
        if not self.eval_items:
            raise SourceError(f"{src.run.split}: no readable test or validation clips to verify the conversion on")

    def _calibration_items(self) -> list[ds.Item]:
        """Up to calibration_clips training items, a seeded random pick over every label."""
        items = list(self.index.splits.get(TRAIN_SPLIT, []))
        n = self.src.cfg.convert.calibration_clips
        if not items:
            raise SourceError(f"{self.src.run.split}: the training split is empty; nothing to calibrate int8 on")
        if len(items) > n:
            rng = np.random.default_rng(self.src.cfg.train.seed + CALIBRATION_SEED_OFFSET)
            items = [items[i] for i in sorted(rng.choice(len(items), n, replace=False))]
        return items

    def _labels_of(self, items: list[ds.Item]) -> np.ndarray:
        index = {lab: i for i, lab in enumerate(self.src.labels)}
        return np.array([index[i.label] for i in items], dtype=np.int64)

    def calibration(self) -> FeatureSet:
        """Real training features through the run's training augmentation (AUGMENTED_CALIBRATION_SHARE
        of them; the rest as evaluated), without SpecAugment masks."""
        cfg = self.src.cfg
        items = self.calibration_items
        n_aug = int(round(len(items) * AUGMENTED_CALIBRATION_SHARE))
        clean, augmented = items[n_aug:], items[:n_aug]
        no_masks = cfg.replace(augment=dataclasses.replace(cfg.augment, time_masks=0, freq_masks=0))
        parts = [eval_features(clean, self.clips, cfg, self.backgrounds, seed=cfg.train.seed + CALIBRATION_SEED_OFFSET)]
        if augmented:
            rirs = load_rirs(cfg.augment.rir_dir, cfg.features.sample_rate)[0] if cfg.augment.rir_dir and \
                Path(cfg.augment.rir_dir).is_dir() else []
            sources = AugmentSources(backgrounds=tuple(self.backgrounds), rirs=tuple(rirs))
            parts.append(training_features(augmented, self.clips, no_masks, sources, [],
                                           seed=[cfg.train.seed, CALIBRATION_SEED_OFFSET]))
        x = np.concatenate(parts).astype(np.float32)
        ordered = clean + augmented
        return FeatureSet(x, self._labels_of(ordered), TRAIN_SPLIT, _count(ordered))

    def evaluation(self) -> FeatureSet:
        """Test-split features exactly as kws-train evaluated them (validation if no test split)."""
        cfg = self.src.cfg
        offset = TEST_SEED_OFFSET if self.eval_split == TEST_SPLIT else VALIDATION_SEED_OFFSET
        x = eval_features(self.eval_items, self.clips, cfg, self.backgrounds, seed=cfg.train.seed + offset)
        return FeatureSet(x, self._labels_of(self.eval_items), self.eval_split, _count(self.eval_items),
                          tuple(i.group for i in self.eval_items))


def _count(items: list[ds.Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i.label] = out.get(i.label, 0) + 1
    return out

