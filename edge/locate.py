"""Where models live: ``./models`` (or ``$KWS_MODELS_DIR``), ``models/api`` if present, else the
newest *complete* model folder (the seed's rule, minus unfinished training runs)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ModelNotFoundError

MODELS_DIR_ENV = "KWS_MODELS_DIR"
DEFAULT_MODELS_DIR = "models"
API_MODEL = "api"
DIST_DIR = "dist"  # where kws-convert writes a run's converted model by default
KERAS_SUFFIX = ".keras"
# a folder is a model (finished or not) if it holds one of these
MODEL_MARKERS = ("config.yaml", "manifest.json", "model.keras")
# ... and a complete one, usable as the default, if it holds one of these: a training run writes
# model.keras only when it ends; kws-convert writes manifest.json last
COMPLETE_MARKERS = ("model.keras", "manifest.json", "dist/manifest.json")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# <out>.rejected: where kws-convert puts a conversion that failed its checks rather than replace the
# earlier one in <out>; complete, but never the default model
REJECTED_SUFFIX = ".rejected"
# what a tool can take as its default model: any complete one (kws-listen, kws-eval run ensembles),
# one model (kws-predict, kws inspect, the servers classify clips with one), or a training run
# (kws-convert, which needs model.keras)
ANY_MODEL, SINGLE_MODEL, TRAINING_RUN = "any", "single", "run"
NEEDS = {ANY_MODEL: "model", SINGLE_MODEL: "single model (not an ensemble)",
         TRAINING_RUN: "finished training run (model.keras)"}
# how a tool that took the default model (no -m) says which rule chose it, after the model's path
DEFAULT_MODEL_RULE = "no -m: models/api, else the newest model"


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


def is_ensemble(path: Path) -> bool:
    """Whether the folder's converted model (manifest.json here, else in dist/) is a kws ensemble."""
    for manifest in (path / "manifest.json", path / DIST_DIR / "manifest.json"):
        if manifest.is_file():
            try:
                return bool(json.loads(manifest.read_text(encoding="utf-8")).get("ensemble"))
            except (OSError, ValueError, AttributeError):  # a damaged one: the loader says why, later
                return False
    return False


def is_usable(path: Path, need: str = ANY_MODEL) -> bool:
    """Whether a complete model folder is what a tool that needs ``need`` can take."""
    if not is_complete_model(path):
        return False
    if need == TRAINING_RUN:
        return (path / "model.keras").is_file()
    if need == SINGLE_MODEL:
        return not is_ensemble(path)
    return True


def default_model(root: Path | None = None, need: str = ANY_MODEL) -> Path:
    """``models/api`` if complete, else the most recently trained complete model folder in ``root``;
    of those, only what a tool needing ``need`` can use (an ensemble in models/ is no default for
    kws-predict, a converted folder none for kws-convert)."""
    root = models_dir() if root is None else Path(root)
    api = root / API_MODEL
    if is_usable(api, need):
        return api
    complete = sorted((p for p in root.iterdir() if is_complete_model(p) and not p.name.endswith(REJECTED_SUFFIX)),
                      key=_trained_at, reverse=True) if root.is_dir() else []
    # newest first, stopping at the first usable one: the ensemble check reads a manifest, and
    # DEEPaaS asks for the default model on every request
    chosen = next((p for p in complete if is_usable(p, need)), None)
    if complete and chosen is None:
        raise ModelNotFoundError(
            f"no {NEEDS[need]} in {root}/ (its {len(complete)} complete model(s), e.g. "
            f"{complete[0]}, are not one); pass -m/--model")
    if chosen is None:
        unfinished = incomplete_runs(root)
        if unfinished:
            raise ModelNotFoundError(
                f"no complete model in {root}/: {len(unfinished)} unfinished training run(s) without "
                f"model.keras (newest: {unfinished[0]}); finish it with kws-train --resume {unfinished[0]}, "
                f"or pass -m/--model")
        raise ModelNotFoundError(
            f"no model in {root}/ (train one with kws-train, or pass -m/--model, or set ${MODELS_DIR_ENV})")
    return chosen


def chosen_model_line(prog: str, path: str | os.PathLike) -> str:
    """What a tool says on stderr of the model it took without -m: the newest of several runs may
    not be the one the user means."""
    return f"{prog}: model {path} ({DEFAULT_MODEL_RULE}; -m picks another)"


def convert_first(run: str | os.PathLike) -> str:
    """The message for a training run given where a converted model is needed, with its command."""
    return f"{run}: a training run without converted models; run: kws-convert -m {run}"


def keras_given(path: str | os.PathLike) -> str:
    """The message for a run's Keras model file given where a converted model is needed (kws-listen,
    kws-eval, an ensemble's member): its run's converted folder where there is one, else (as of the run
    folder) the command that converts it."""
    path = Path(path)
    dist = path.parent / DIST_DIR / "manifest.json"
    if dist.is_file():
        return f"{path}: a Keras model, not a converted one; give {dist.parent}, its run's converted model"
    return convert_first(path.parent)


def _trained_at(path: Path) -> float:
    """When a model was trained: its UTC timestamp name (20261123T101500Z), else config mtime."""
    import calendar
    import time

    try:
        return float(calendar.timegm(time.strptime(path.name, TIMESTAMP_FORMAT)))
    except ValueError:
        marker = next((path / m for m in MODEL_MARKERS if (path / m).exists()), path)
        return marker.stat().st_mtime


def resolve_model(arg: str | os.PathLike | None, need: str = ANY_MODEL) -> Path:
    """The path given by -m/--model, or the default model (of the kind ``need``); errors name the
    missing path."""
    if arg is None or str(arg) == "":
        return default_model(need=need)
    path = Path(arg)
    if not path.exists():
        raise ModelNotFoundError(f"{path}: no such model file or folder")
    return path
