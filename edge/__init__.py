"""kws.edge: the TensorFlow-free part of kws that runs on the device (frontend, runtime, recognizer).

``from kws.edge import Recognizer`` etc. are imported lazily, so importing one submodule stays cheap.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Recognizer": "recognizer", "Detection": "recognizer",
    "PosteriorSmoother": "smoothing", "SmoothedResult": "smoothing",
    "TFLiteModel": "runtime", "load_runtime": "runtime",
    "Frontend": "frontend", "FrontendConfig": "frontend", "StreamingFrontend": "frontend",
    "Manifest": "manifest", "load_manifest": "manifest", "SmoothingConfig": "manifest",
    "KwsError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kws.edge' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
