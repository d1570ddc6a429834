"""One interface over the model kinds kws produces, for prediction and evaluation:

* a training run folder (``model.keras`` + ``config.yaml`` + ``labels.txt``): Keras via TensorFlow,
  imported only on this path;
* a ``.tflite`` file with its ``manifest.json`` beside it, or a folder of converted artifacts
  (``manifest.json`` + model files): the edge runtime, no TensorFlow.

``load_classifier(path)`` returns an object with ``labels``, ``frontend`` (FrontendConfig),
``manifest`` (or None for Keras), ``path`` and ``predict(features_batch) -> probabilities``.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from kws.edge.calibration_fit import ENSEMBLE_SCORED
from kws.edge.errors import KwsError, ModelNotFoundError
from kws.edge.frontend import FrontendConfig
from kws.edge.locate import DIST_DIR, KERAS_SUFFIX, SINGLE_MODEL, convert_first, keras_given, resolve_model
from kws.edge.manifest import EMBEDDING_FAMILY, MANIFEST_NAME, Manifest

KERAS_FILE = "model.keras"
RUN_CONFIG = "config.yaml"
RUN_LABELS = "labels.txt"
TFLITE_SUFFIX = ".tflite"
KERAS_BATCH = 256


class KerasClassifier:
    """A trained run's model.keras, with the run's labels and frontend config."""

    kind = "keras"

    def __init__(self, run_dir: Path):
        from kws.trainer.config import load_config  # yaml only, no TF

        self.path = run_dir
        for name in (KERAS_FILE, RUN_CONFIG, RUN_LABELS):
            if not (run_dir / name).is_file():
                raise ModelNotFoundError(f"{run_dir}: not a complete training run (no {name})")
        cfg = load_config(run_dir / RUN_CONFIG)
        if cfg.model.architecture == EMBEDDING_FAMILY:  # its inputs come from the frozen embedding
            raise KwsError(f"{run_dir}: an embedding-family run is scored through its converted pipeline: "
                           f"kws-convert -m {run_dir}, then give -m {run_dir / 'dist'}")
        self.frontend: FrontendConfig = cfg.features
        self.smoothing = cfg.smoothing
        from kws.converters.source import RunSource, load_keras_model, read_run_labels
        from kws.trainer.run import RunDir

        run = RunDir(run_dir)
        self.labels = list(read_run_labels(run))
        self.manifest = None
        from kws.trainer.tfimport import import_tensorflow

        import_tensorflow()  # TensorFlow only on this path, without its start-up notices
        # a corrupt model.keras, or one whose shapes disagree with config.yaml / labels.txt: one line
        self._model = load_keras_model(RunSource(run=run, cfg=cfg, labels=tuple(self.labels)))

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities (B, labels) for a batch of features (B, frames, bins)."""
        features = np.asarray(features, dtype=np.float32)
        if len(features) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        out = [np.asarray(self._model(features[i:i + KERAS_BATCH], training=False))
               for i in range(0, len(features), KERAS_BATCH)]
        return np.concatenate(out).astype(np.float32)


class TFLiteClassifier:
    """A .tflite model described by a manifest, run by the edge runtime."""

    kind = "tflite"

    def __init__(self, manifest_path: Path, model_file: str | None = None):
        from kws.edge.model_loader import open_model

        loaded = open_model(manifest_path, model_file)  # the same checks as kws-listen
        self.manifest: Manifest = loaded.manifest
        self.manifest_path = loaded.manifest_path
        self.model_key = loaded.key
        self.path = loaded.path
        self.labels = list(self.manifest.labels)
        self.frontend: FrontendConfig = self.manifest.frontend
        self.smoothing = self.manifest.smoothing
        self._model = loaded.model
        self.feature_frontend = None  # the embedding family: mel + embedding give the head's inputs
        if self.manifest.embedding is not None:
            from kws.edge.embedding_pipeline import open_pipeline

            self.feature_frontend = open_pipeline(self.manifest, self.manifest_path, self.model_key, self._model)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities (B, labels) for a batch of features (B, frames, bins), one clip at a time."""
        return self._model.predict_batch(features)


def load_classifier(path: str | os.PathLike | None = None):
    """A Keras or TFLite classifier for ``path`` (None: the default model, kws.edge.locate, that is
    one model: clip tools give an ensemble by name only, and are told it has members). A run folder is
    its Keras model, or without TensorFlow its dist/ model where it has one."""
    path = resolve_model(path, SINGLE_MODEL)
    if path.is_file():
        if path.suffix == ".tflite":
            manifest = path.parent / MANIFEST_NAME
            if not manifest.is_file():
                raise ModelNotFoundError(f"{path}: no {MANIFEST_NAME} beside it (convert with kws-convert)")
            return TFLiteClassifier(manifest, path.name)
        if path.suffix == ".keras":
            return KerasClassifier(path.parent)
        if path.name == MANIFEST_NAME:
            return TFLiteClassifier(path)
        raise ModelNotFoundError(f"{path}: not a model (give a .tflite, a run folder or a converted folder)")
    if (path / MANIFEST_NAME).is_file():
        return TFLiteClassifier(path / MANIFEST_NAME)
    converted = path / DIST_DIR / MANIFEST_NAME
    if (path / KERAS_FILE).is_file() and not (converted.is_file() and not tensorflow_installed()):
        return KerasClassifier(path)
    if converted.is_file():
        return TFLiteClassifier(converted)
    raise ModelNotFoundError(f"{path}: no {MANIFEST_NAME} or {KERAS_FILE} in this folder")


def tensorflow_installed() -> bool:
    """Whether Keras run folders can be loaded here (an edge install has no TensorFlow: a run folder
    with a converted model in dist/ is then served by that model, as kws-listen does)."""
    return importlib.util.find_spec("tensorflow") is not None


def named_model_file(path: str | os.PathLike | None) -> Path | None:
    """The .tflite file ``path`` names (a model beside its manifest: model_float.tflite, a streaming
    form's file), which is the model to run; None for a folder or a manifest, which run the
    manifest's default model."""
    if path is None or str(path) == "":
        return None
    path = Path(path)
    return path if path.is_file() and path.suffix == TFLITE_SUFFIX else None


def scored_model_name(manifest: Manifest, named: Path | None, source: str = "manifest") -> str:
    """The model file whose scores kws-eval measures: the .tflite named (model_float.tflite), else the
    manifest's default model's file; "ensemble" for an ensemble, whose members have files of their own.
    A manifest listing no model is a ManifestError naming ``source``, its path."""
    if named is not None:
        return named.name
    if manifest.ensemble is not None:
        return ENSEMBLE_SCORED
    return manifest.models[manifest.default_model(source)].file


def manifest_path_for(path: str | os.PathLike | None) -> Path:
    """The manifest.json a .tflite / converted folder / run folder uses (for the recognizer)."""
    path = resolve_model(path)
    if path.is_file() and path.suffix == KERAS_SUFFIX:  # streaming evaluation runs converted models only
        raise ModelNotFoundError(keras_given(path))
    if path.is_file():
        cand = path if path.name == MANIFEST_NAME else path.parent / MANIFEST_NAME
    elif (path / MANIFEST_NAME).is_file():
        cand = path / MANIFEST_NAME
    else:
        cand = path / DIST_DIR / MANIFEST_NAME
    if not cand.is_file():
        if (path / KERAS_FILE).is_file():  # as kws-listen says it: the command that converts it
            raise ModelNotFoundError(convert_first(path))
        raise ModelNotFoundError(f"{path}: no {MANIFEST_NAME} (streaming evaluation needs a converted model: "
                                 f"run kws-convert first)")
    return cand
