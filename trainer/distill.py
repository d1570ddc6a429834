"""Distillation: a model learns from trained models as well as from the labels (``train.teachers``).

Every epoch the teachers (earlier runs' ``model.keras``) score the same augmented training inputs
the student sees; their mean probabilities make up ``train.teacher_weight`` of the target, the
label (with ``train.label_smoothing``) the rest. Several models trained with different recipes or
seeds, averaged, err less on speakers never heard than any one of them; a student trained on their
average carries part of that into one model of the student's size and cost.

A teacher must be a finished run of the same labels and features (frontend and clip) as the
student; anything else is refused, naming the teacher, before training starts.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from kws.edge.errors import OneLineError

from .run import CONFIG_FILE, LABELS_FILE, MODEL_FILE

# teachers score the epoch's inputs in batches of this many clips
TEACHER_BATCH = 256


class TeacherError(OneLineError):
    """A teacher run that cannot teach this model; one line even where it quotes Keras' or YAML's
    own (multi-line) error."""


def resolve(paths: Sequence[str]) -> tuple[str, ...]:
    """Absolute teacher run folders (a resumed run finds them from any working directory)."""
    return tuple(str(Path(p).expanduser().resolve()) for p in paths)


@dataclasses.dataclass
class Teachers:
    """Loaded teacher models; ``targets`` mixes their mean scores into one-hot labels."""

    paths: tuple[str, ...]
    models: list
    weight: float

    def mean_scores(self, x: np.ndarray) -> np.ndarray:
        """(N, labels): the teachers' mean probabilities for the inputs ``x``."""
        total = None
        for model in self.models:
            p = np.concatenate([np.asarray(model(x[i:i + TEACHER_BATCH], training=False), np.float64)
                                for i in range(0, len(x), TEACHER_BATCH)])
            total = p if total is None else total + p
        return (total / len(self.models)).astype(np.float32)

    def targets(self, x: np.ndarray, onehot: np.ndarray) -> np.ndarray:
        """The training targets: ``weight`` x the teachers' mean + (1 - weight) x ``onehot``."""
        return soft_targets(onehot, self.mean_scores(x), self.weight)


def soft_targets(onehot: np.ndarray, teacher_scores: np.ndarray, weight: float) -> np.ndarray:
    """``weight * teacher_scores + (1 - weight) * onehot``, rows renormalised to sum to 1."""
    if onehot.shape != teacher_scores.shape:
        raise ValueError(f"teacher scores {teacher_scores.shape} do not match the labels {onehot.shape}")
    mixed = weight * teacher_scores.astype(np.float32) + (1.0 - weight) * onehot.astype(np.float32)
    return mixed / mixed.sum(axis=1, keepdims=True)


def check_teacher(path: str, labels: Sequence[str], features) -> Path:
    """The teacher's model file, after checking the run is finished and fits ``labels`` and
    ``features`` (a FeatureConfig); TeacherError naming the run otherwise."""
    run = Path(path)
    model = run / MODEL_FILE
    if not model.is_file():
        raise TeacherError(f"{run}: teacher has no {MODEL_FILE} (a finished kws-train run folder is needed)")
    try:
        their_labels = (run / LABELS_FILE).read_text().split()
        their_cfg = yaml.safe_load((run / CONFIG_FILE).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TeacherError(f"{run}: teacher's {LABELS_FILE}/{CONFIG_FILE} unreadable: {exc}") from None
    if their_labels != list(labels):
        raise TeacherError(f"{run}: teacher labels {','.join(their_labels)} differ from this run's "
                           f"{','.join(labels)}")
    arch = (their_cfg.get("model") or {}).get("architecture")
    if arch == "embedding":
        raise TeacherError(f"{run}: an embedding-family run cannot teach (its inputs are embeddings)")
    ours = dataclasses.asdict(features)
    theirs = their_cfg.get("features") or {}
    differ = sorted(k for k, v in ours.items() if k in theirs and _norm(theirs[k]) != _norm(v))
    if differ:
        raise TeacherError(f"{run}: teacher features differ from this run's in "
                           + ", ".join(f"{k} ({theirs[k]} vs {ours[k]})" for k in differ))
    return model


def _norm(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def load_teachers(paths: Sequence[str], labels: Sequence[str], features, weight: float) -> Teachers | None:
    """The teachers of ``train.teachers`` (None when there are none), each checked first."""
    if not paths:
        return None
    files = [check_teacher(p, labels, features) for p in paths]
    import keras

    models = []
    for f in files:
        try:
            models.append(keras.models.load_model(f, compile=False))
        except Exception as exc:  # noqa: BLE001 - any unreadable model is the same user error
            raise TeacherError(f"{f}: teacher model unreadable: {exc}") from None
    shape = tuple(features.input_shape)
    for f, m in zip(files, models):
        if tuple(m.input_shape[1:]) != shape:
            raise TeacherError(f"{f}: teacher input {tuple(m.input_shape[1:])} differs from this run's {shape}")
    return Teachers(tuple(paths), models, weight)
