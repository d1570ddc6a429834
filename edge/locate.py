"""Where models live: ``./models`` (or ``$KWS_MODELS_DIR``), ``models/api`` if present, else the
newest *complete* model folder (the seed's rule, minus unfinished training runs)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelNotFoundError

MODELS_DIR_ENV = "KWS_MODELS_DIR"
DEFAULT_MODELS_DIR = "models"
API_MODEL = "api"
# a folder is a model (finished or not) if it holds one of these
MODEL_MARKERS = ("config.yaml", "manifest.json", "model.keras")
# ... and a complete one, usable as the default, if it holds one of these: a training run writes
# model.keras only when it ends; kws-convert writes manifest.json last
COMPLETE_MARKERS = ("model.keras", "manifest.json", "dist/manifest.json")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def models_dir() -> Path:
    """The models folder: $KWS_MODELS_DIR, else ./models."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in MODEL_MARKERS)


def is_complete_model(path: Path) -> bool:
    """A finished training run (model.keras) or a converted model (manifest.json, here or in dist/)."""
    return path.is_dir() and any((path / m).is_file() for m in COMPLETE_MARKERS)


def incomplete_runs(root: Path | None = None) -> list[Path]:
    """Model folders in ``root`` that are not complete (a training run stopped before it ended),
    newest first: candidates for ``kws-train --resume``, never the default model."""
    root = models_dir() if root is None else Path(root)
    found = [p for p in root.iterdir() if is_model_dir(p) and not is_complete_model(p)] if root.is_dir() else []
    return sorted(found, key=_trained_at, reverse=True)


def default_model(root: Path | None = None) -> Path:
    """``models/api`` if complete, else the most recently trained complete model folder in ``root``."""
    root = models_dir() if root is None else Path(root)
    api = root / API_MODEL
    if is_complete_model(api):
        return api
    candidates = [p for p in root.iterdir() if is_complete_model(p)] if root.is_dir() else []
    if not candidates:
        unfinished = incomplete_runs(root)
        if unfinished:
            raise ModelNotFoundError(
                f"no complete model in {root}/: {len(unfinished)} unfinished training run(s) without "
                f"model.keras (newest: {unfinished[0]}); finish it with kws-train --resume {unfinished[0]}, "
                f"or pass -m/--model")
        raise ModelNotFoundError(
            f"no model in {root}/ (train one with kws-train, or pass -m/--model, or set ${MODELS_DIR_ENV})")
    return max(candidates, key=_trained_at)


def _trained_at(path: Path) -> float:
    """When a model was trained: its UTC timestamp name (20261123T101500Z), else config mtime."""
    import calendar
    import time

    try:
        return float(calendar.timegm(time.strptime(path.name, TIMESTAMP_FORMAT)))
    except ValueError:
        marker = next((path / m for m in MODEL_MARKERS if (path / m).exists()), path)
        return marker.stat().st_mtime


def resolve_model(arg: str | os.PathLike | None) -> Path:
    """The path given by -m/--model, or the default model; errors name the missing path."""
    if arg is None or str(arg) == "":
        return default_model()
    path = Path(arg)
    if not path.exists():
        raise ModelNotFoundError(f"{path}: no such model file or folder")
    return path
