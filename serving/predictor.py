"""Loads a model once and classifies audio bytes (WAV, FLAC, OGG, MP3): the core shared by the web
page and DEEPaaS.

Models are Keras run folders (model.keras, else the newest checkpoint) read by a small private
adapter; other paths (.tflite + manifest) go to ``kws.evaluation.models.load_classifier`` when
that module is installed.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kws.edge.audio import read_audio, resample
from kws.edge.errors import AudioError, AudioTooLongError, KwsError, ModelNotFoundError
from kws.edge.frontend import Frontend, FrontendConfig

DEFAULT_TOP_K = 3
# longest recording one request may decode: the upload limit bounds the bytes, not the samples (10 MB
# of FLAC silence decodes to hours); 59 s of FLAC (2.7 KB) took 1.8 s and 32 MiB of peak memory to
# scan here, one request on 2 busy cores
MAX_AUDIO_SECONDS = 60.0
LABELS_FILE = "labels.txt"
CONFIG_FILE = "config.yaml"
KERAS_MODEL = "model.keras"
CKPT_CANDIDATES = ("ckpts/best.keras", "ckpts/last.keras")
FRONTEND_ATTRS = ("frontend_config", "frontend_cfg", "features", "frontend")
FETCHED_NOT_WAV = "the URL's content is not an audio file this server can read (WAV, FLAC, OGG or MP3)"


def read_labels(folder: Path) -> list[str]:
    """The labels of a run folder (labels.txt), without loading the model."""
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelNotFoundError(f"{path}: unreadable labels ({exc})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def keras_file(folder: Path) -> Path | None:
    """model.keras of a run, else its best/last checkpoint (the seed's 'latest checkpoint')."""
    for name in (KERAS_MODEL, *CKPT_CANDIDATES):
        if (folder / name).is_file():
            return folder / name
    return None


EMBEDDING_REFUSED = ("{path}: a model of the embedding family, which the server does not run (it classifies "
                     "one clip's features); use kws-listen or kws-predict")


class _KerasClassifier:
    """A Keras run folder: labels.txt, config.yaml's features section, model.keras."""

    def __init__(self, folder: Path):
        from kws.trainer.config import load_config

        path = keras_file(folder)
        if path is None:
            raise ModelNotFoundError(f"{folder}: no {KERAS_MODEL} or checkpoint in this run folder")
        self.labels = read_labels(folder)
        if len(self.labels) < 2:
            raise ModelNotFoundError(f"{folder / LABELS_FILE}: needs at least two labels, found {len(self.labels)}")
        cfg_path = folder / CONFIG_FILE
        cfg = load_config(cfg_path) if cfg_path.is_file() else None
        from kws.trainer.models import EMBEDDING_ARCHITECTURE

        if cfg is not None and cfg.model.architecture == EMBEDDING_ARCHITECTURE:
            raise ModelNotFoundError(EMBEDDING_REFUSED.format(path=folder))
        self.frontend_config = cfg.features if cfg is not None else FrontendConfig()
        from kws.converters.errors import SourceError
        from kws.converters.source import load_checked_keras

        try:  # kws-convert's and kws-predict's checks: a corrupt file, or shapes the run does not say
            self._model = load_checked_keras(path, self.frontend_config.input_shape, len(self.labels))
        except SourceError as exc:
            raise ModelNotFoundError(str(exc)) from None

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self._model(features.astype(np.float32), training=False))


class _ExternalClassifier:
    """Adapts kws.evaluation.models.load_classifier's object to labels/frontend_config/predict."""

    def __init__(self, path: Path):
        try:
            from kws.evaluation.models import load_classifier
        except ImportError:
            raise ModelNotFoundError(f"{path}: not a Keras run folder (only those are served "
                                     "without kws.evaluation)") from None
        self._clf = load_classifier(path)
        self.labels = list(self._clf.labels)
        cfg = next((getattr(self._clf, a) for a in FRONTEND_ATTRS if hasattr(self._clf, a)), None)
        if isinstance(cfg, dict):
            cfg = FrontendConfig.from_dict(cfg)
        if not isinstance(cfg, FrontendConfig):
            raise ModelNotFoundError(f"{path}: cannot find the model's frontend configuration")
        self.frontend_config = cfg

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self._clf.predict(features))


def load_classifier(path: Path):
    """A classifier for a run folder (Keras, when installed) or anything kws.evaluation can load
    (.tflite + manifest, a converted folder)."""
    path = Path(path)
    if path.is_dir() and keras_file(path) is not None and importlib.util.find_spec("keras") is not None:
        return _KerasClassifier(path)
    return _ExternalClassifier(path)


class _ScannedClassifier:
    """The served classifier as kws-predict's window scanner sees it (frontend, labels, predict),
    each call under the predictor's lock."""

    def __init__(self, predictor: "Predictor"):
        self.frontend = predictor.classifier.frontend_config
        self.labels = predictor.labels
        self._predictor = predictor

    def predict(self, features: np.ndarray) -> np.ndarray:
        with self._predictor._lock:
            return self._predictor.classifier.predict(features)


@dataclass
class Prediction:
    """Top-k labels of one input, with the model features it was computed from."""

    labels: list[dict[str, Any]]
    features: np.ndarray
    duration_s: float
    sample_rate: int

    def to_dict(self, with_features: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"labels": self.labels, "duration_s": round(self.duration_s, 3),
                               "sample_rate": self.sample_rate}
        if with_features:
            out["features"] = np.round(self.features, 3).tolist()
        return out


class Predictor:
    """One loaded model; ``predict_bytes`` is thread-safe."""

    def __init__(self, model_path: str | os.PathLike, max_seconds: float = MAX_AUDIO_SECONDS):
        self.path = Path(model_path)
        self.max_seconds = float(max_seconds)
        self.classifier = load_classifier(self.path)
        if getattr(getattr(self.classifier, "_clf", None), "feature_frontend", None) is not None:
            raise ModelNotFoundError(EMBEDDING_REFUSED.format(path=self.path))
        self.labels = self.classifier.labels
        self.frontend = Frontend(self.classifier.frontend_config)
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        cfg = self.classifier.frontend_config
        return {"model": str(self.path), "labels": self.labels, "frontend": cfg.to_dict()}

    def predict_samples(self, samples: np.ndarray, sample_rate: int, top_k: int = DEFAULT_TOP_K) -> Prediction:
        """Classify float mono audio at any rate. A recording longer than the model's clip is
        answered for the window kws-predict reports: the most confident one whose top label is a
        keyword, else the most confident one."""
        cfg = self.classifier.frontend_config
        audio = resample(samples, sample_rate, cfg.sample_rate)
        if len(audio) > cfg.clip_samples:
            from kws.evaluation.predict import classify_audio

            start = int(round(classify_audio(_ScannedClassifier(self), audio, 1)["window_s"] * cfg.sample_rate))
            audio = audio[start:start + cfg.clip_samples]
        feats = self.frontend.clip_features(audio)
        with self._lock:
            probs = self.classifier.predict(feats[None])[0]
        k = max(1, min(int(top_k), len(self.labels)))
        order = np.argsort(-probs)[:k]
        labels = [{"label": self.labels[i], "probability": float(probs[i])} for i in order]
        return Prediction(labels, feats, len(samples) / sample_rate, sample_rate)

    def predict_file(self, path: str | os.PathLike, top_k: int = DEFAULT_TOP_K) -> Prediction:
        """Classify an audio file (any format kws.edge.audio reads)."""
        samples, info = read_audio(path, max_seconds=self.max_seconds)
        return self.predict_samples(samples, info.sample_rate, top_k)

    def predict_fetched(self, data: bytes, top_k: int = DEFAULT_TOP_K) -> Prediction:
        """Classify bytes fetched from a URL; a reading error says so without quoting any of them."""
        try:
            return self.predict_bytes(data, top_k, name="url")
        except AudioTooLongError:
            raise AudioTooLongError(f"the URL's audio is longer than the {self.max_seconds:g} s allowed here") from None
        except AudioError:
            raise AudioError(FETCHED_NOT_WAV) from None

    def predict_bytes(self, data: bytes, top_k: int = DEFAULT_TOP_K, name: str = "upload") -> Prediction:
        """Classify the bytes of an audio file, read in memory; AudioError naming ``name`` if they are not one."""
        if not data:
            raise KwsError("empty upload: no audio data received")
        samples, info = read_audio(data, name=name, max_seconds=self.max_seconds)
        return self.predict_samples(samples, info.sample_rate, top_k)
