"""Where models live: ``./models`` (or ``$KWS_MODELS_DIR``), ``models/api`` if present, else the
newest model folder (the seed's rule)."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelNotFoundError

MODELS_DIR_ENV = "KWS_MODELS_DIR"
DEFAULT_MODELS_DIR = "models"
API_MODEL = "api"
# a folder is a model if it holds one of these
MODEL_MARKERS = ("config.yaml", "manifest.json", "model.keras")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def models_dir() -> Path:
    """The models folder: $KWS_MODELS_DIR, else ./models."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def is_model_dir(path: Path) -> bool:
    return path.is_dir() and any((path / m).exists() for m in MODEL_MARKERS)


def default_model(root: Path | None = None) -> Path:
    """``models/api`` if present, else the most recently trained model folder in ``root``."""
    root = models_dir() if root is None else Path(root)
    api = root / API_MODEL
    if is_model_dir(api):
        return api
    candidates = [p for p in root.iterdir() if is_model_dir(p)] if root.is_dir() else []
    if not candidates:
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
