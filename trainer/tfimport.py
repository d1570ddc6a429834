"""Import TensorFlow without the C++ start-up notices it prints straight to stderr."""
from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType

from kws.edge.errors import KwsError

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
MISSING = ("TensorFlow is not installed here, and this needs it (training, conversion, Keras run folders): "
           "pip install '.[train-cpu]' (or '.[train]'); an edge install runs converted models only")


class TensorFlowMissingError(KwsError):
    """TensorFlow is needed and not installed (an edge-only install)."""


TRAINING_MODULES = ("tensorflow", "tqdm")  # what kws-train needs beyond the edge install


def require_training_packages() -> None:
    """TensorFlowMissingError (one line) where the train extra is not installed, checked without
    importing anything, so an edge install says so before reading any data."""
    if any(importlib.util.find_spec(name) is None for name in TRAINING_MODULES):
        raise TensorFlowMissingError(MISSING)


def import_tensorflow() -> ModuleType:
    """``import tensorflow`` with fd 2 silenced for the import only; errors still surface."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault(LOG_LEVEL_ENV, "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf
    except ModuleNotFoundError as exc:
        if exc.name != "tensorflow":
            raise
        raise TensorFlowMissingError(MISSING) from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
