"""Import TensorFlow without the C++ start-up notices it prints straight to stderr."""
from __future__ import annotations

import os
import sys
from types import ModuleType

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"


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
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
