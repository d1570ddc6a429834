"""Helpers shared by the predict/eval/inspect tests: convert the fixture run to .tflite + manifest.

Uses the real ``kws-convert`` when kws.converters has its CLI; otherwise a float .tflite made
with tf.lite and a manifest written with kws.edge.manifest (a stand-in until converters land).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from kws.edge.manifest import MANIFEST_NAME, Manifest, ModelEntry, TensorSpec, save_manifest


def converters_available() -> bool:
    return importlib.util.find_spec("kws.converters.cli") is not None


def convert_run(run: Path, out: Path) -> Path:
    """A folder with model .tflite file(s) and manifest.json for the training run ``run``."""
    if (out / MANIFEST_NAME).is_file():
        return out
    if converters_available():
        res = subprocess.run([sys.executable, "-m", "kws.converters.cli", "-m", str(run), "--out", str(out)],
                             capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if res.returncode == 0 and (out / MANIFEST_NAME).is_file():
            return out
        raise RuntimeError(f"kws-convert failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return _float_tflite(run, out)


def _float_tflite(run: Path, out: Path) -> Path:
    from kws.trainer.config import load_config
    from kws.trainer.tfimport import import_tensorflow

    tf = import_tensorflow()
    import keras

    cfg = load_config(run / "config.yaml")
    labels = [s for s in (run / "labels.txt").read_text().split() if s]
    model = keras.models.load_model(run / "model.keras", compile=False)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    data = conv.convert()
    out.mkdir(parents=True, exist_ok=True)
    (out / "model_float.tflite").write_bytes(data)
    shape_in = (1, *cfg.features.input_shape)
    entry = ModelEntry(file="model_float.tflite", input=TensorSpec(shape_in, "float32"),
                       output=TensorSpec((1, len(labels)), "float32"),
                       sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    save_manifest(Manifest(labels=tuple(labels), frontend=cfg.features, models={"float": entry},
                           smoothing=cfg.smoothing), out / MANIFEST_NAME)
    return out
