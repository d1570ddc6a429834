"""The one way every tool (kws-listen, kws-predict, kws-eval, kws serve, DEEPaaS) opens a converted
model: find its manifest, validate it, and refuse a model file that does not match it (name outside
the folder, sha256, tensor shapes and types, quantization, label count, frontend shape)."""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ManifestError
from .locate import DIST_DIR, KERAS_SUFFIX, convert_first, keras_given
from .manifest import MANIFEST_NAME, Manifest, ModelEntry, StreamEntry, load_manifest, not_a_manifest_file
from .manifest_schema import model_file_name
from .runtime import TFLiteModel, pick_runtime
from .stepmodel import StepModel

HASH_BLOCK = 1 << 20


def _sha256():
    """A new SHA-256 hash: CPython's own implementation (``_sha2`` from 3.12, ``_sha256`` before; the
    same digest), so that checking a model does not load OpenSSL's libcrypto through hashlib (3.4 MiB
    of kws-listen's peak RSS, measured); hashlib where neither module exists."""
    for name in ("_sha2", "_sha256"):
        try:
            return importlib.import_module(name).sha256()
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = _sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(HASH_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def locate(path: str | os.PathLike) -> tuple[Path, str | None]:
    """(manifest.json, model file name or None) for a .tflite, a manifest, or a folder holding one
    (a folder of converted artifacts, or a training run with ``dist/`` inside)."""
    p = Path(path)
    if p.is_file() and p.suffix == ".tflite":
        manifest = p.parent / MANIFEST_NAME
        if not manifest.is_file():
            raise not_a_manifest_file(manifest) or ManifestError(
                f"{p}: no {MANIFEST_NAME} beside the model (kws-convert writes one)")
        return manifest, p.name
    if p.is_file() and p.suffix == KERAS_SUFFIX:  # not a manifest to parse: say what it is
        raise ManifestError(keras_given(p))
    if p.is_file():
        return p, None
    candidates = (p / MANIFEST_NAME, p / DIST_DIR / MANIFEST_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return candidate, None
    # a manifest.json that is there but no file (a folder, a broken link) is named as what it is
    for candidate in ((p,) if p.name == MANIFEST_NAME else ()) + candidates:
        odd = not_a_manifest_file(candidate)
        if odd:
            raise odd
    if p.is_dir() and (p / "model.keras").exists():
        raise ManifestError(convert_first(p))
    raise ManifestError(f"{p}: no {MANIFEST_NAME} here (expected a .tflite with its manifest, or a folder "
                        f"from kws-convert)")


class DeferredModel:
    """A window model whose interpreter opens on first use (``open()``, ``predict``): the recognizer
    that runs the streaming form never needs it, and a second interpreter costs ~1 MiB of peak RSS and
    a few ms of start-up. The file's sha256 is checked before this is made; its tensors are checked
    against the manifest when it opens. Shapes and quantization until then are the manifest's."""

    def __init__(self, path: Path, entry: ModelEntry, manifest: Manifest, manifest_path: Path,
                 num_threads: int = 1, runtime: str | None = None):
        self.path = Path(path)
        self.runtime = pick_runtime(runtime)
        self._runtime_asked = runtime
        self.input_spec, self.output_spec = entry.input, entry.output
        self.size_bytes = self.path.stat().st_size
        self.num_threads = num_threads
        self._entry, self._manifest, self._manifest_path = entry, manifest, manifest_path
        self._model: TFLiteModel | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.input_spec.shape)

    @property
    def num_labels(self) -> int:
        return int(self.output_spec.shape[-1])

    @property
    def is_open(self) -> bool:
        return self._model is not None

    def open(self) -> TFLiteModel:
        """The opened and checked model (opened once)."""
        if self._model is None:
            model = TFLiteModel(self.path, num_threads=self.num_threads, runtime=self._runtime_asked)
            check_model_matches(self._manifest, self._entry, model, self._manifest_path)
            self._model = model
            self.runtime = model.runtime  # the Python interpreter where the C binding does not run it
        return self._model

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.open().predict(features)

    def predict_batch(self, features: np.ndarray) -> np.ndarray:
        return self.open().predict_batch(features)

    def check_entry(self, entry: ModelEntry, manifest_path: str | os.PathLike = "manifest") -> None:
        self.open().check_entry(entry, manifest_path)


@dataclass
class LoadedModel:
    """A validated manifest, the key and entry of the chosen model, and the opened interpreter."""

    manifest: Manifest
    manifest_path: Path
    key: str
    entry: ModelEntry
    model: TFLiteModel | DeferredModel

    @property
    def path(self) -> Path:
        return self.model.path


def pick_model(manifest: Manifest, manifest_path: Path, model: str | None) -> tuple[str, ModelEntry]:
    """The key and entry of the model that runs for ``model``: a key ("int8", "float"), a file the
    manifest lists (a window model; a streaming form or an embedding model stands for the model it
    belongs to), or None for the manifest's default; ManifestError naming ``manifest_path`` otherwise."""
    if model is None:
        key = manifest.default_model(str(manifest_path))
        return key, manifest.models[key]
    if model in manifest.models:
        return model, manifest.models[model]
    model_file_name(str(manifest_path), "model", model)
    if manifest.streaming is not None:  # a step model's file: its window model (the recognizer streams)
        for key, stream_entry in manifest.streaming.models.items():
            if stream_entry.file == model and key in manifest.models:
                return key, manifest.models[key]
    if manifest.embedding is not None:  # an embedding model's file: the head that runs on it
        for key, embedding_entry in manifest.embedding.models.items():
            if embedding_entry.file == model and key in manifest.models:
                return key, manifest.models[key]
    return manifest.entry_for_file(model, str(manifest_path))


def check_model_matches(manifest: Manifest, entry: ModelEntry, model: TFLiteModel, manifest_path: Path) -> None:
    """ManifestError unless the opened model is the one the manifest describes."""
    model.check_entry(entry, manifest_path)
    if model.num_labels != len(manifest.labels):
        raise ManifestError(f"{model.path}: the model has {model.num_labels} outputs, the manifest lists "
                            f"{len(manifest.labels)} labels")
    fe = manifest.frontend
    if manifest.embedding is None and int(np.prod(model.input_shape)) != fe.num_frames * fe.num_features:
        raise ManifestError(f"{manifest_path}: {model.path.name} takes input {list(model.input_shape)}, the "
                            f"frontend makes {fe.num_frames} frames x {fe.num_features} features")


def checked_file(manifest_path: Path, file: str, sha256: str, size_bytes: int = 0) -> Path:
    """The path of a file the manifest lists, after checking it is there, has the size the manifest
    records (``size_bytes``, 0 for none) and matches its sha256 (none checked where it records none);
    the size tells a file cut short (a copy interrupted) from one replaced."""
    path = manifest_path.parent / file
    if not path.is_file():
        raise ManifestError(f"{manifest_path}: lists {file}, which is not in {manifest_path.parent}")
    if not sha256 and not size_bytes:
        return path
    size = path.stat().st_size
    if size < size_bytes:  # no need to hash it: it cannot match
        raise ManifestError(f"{path}: cut short ({size} of the {size_bytes} bytes {manifest_path} records: "
                            "copy it again, or re-run kws-convert)")
    if not sha256:  # the size is all the manifest records of the file
        if size != size_bytes:
            raise ManifestError(f"{path}: does not match {manifest_path} ({size} bytes, it records {size_bytes}: "
                                "the file was replaced after conversion; re-run kws-convert)")
        return path
    if sha256_of(path) != sha256:
        how = ("replaced after conversion" if size_bytes else
               "changed after conversion (replaced, or cut short; the manifest records no size)")
        raise ManifestError(f"{path}: does not match {manifest_path} (sha256 differs: the file was {how}; "
                            "re-run kws-convert)")
    return path


def open_step_model(manifest: Manifest, manifest_path: Path, key: str, num_threads: int = 1,
                    runtime: str | None = None) -> StepModel | None:
    """The streaming form of model ``key`` if the manifest lists one (None otherwise), checked against
    the manifest: file, sha256, tensors, labels, frames per step and features."""
    if manifest.streaming is None or key not in manifest.streaming.models:
        return None
    entry: StreamEntry = manifest.streaming.models[key]
    step = StepModel(checked_file(manifest_path, entry.file, entry.sha256, entry.size_bytes), num_threads=num_threads,
                     runtime=runtime)
    step.check_entry(entry, manifest_path)
    fe = manifest.frontend
    if step.num_labels != len(manifest.labels):
        raise ManifestError(f"{step.path}: the step model has {step.num_labels} outputs, the manifest lists "
                            f"{len(manifest.labels)} labels")
    if step.step_frames != manifest.streaming.step_frames or step.num_features != fe.num_features:
        raise ManifestError(f"{manifest_path}: {step.path.name} takes {step.step_frames} frames x "
                            f"{step.num_features} features, the manifest says {manifest.streaming.step_frames} x "
                            f"{fe.num_features}")
    return step


def open_model(path: str | os.PathLike, model: str | None = None, num_threads: int = 1,
               runtime: str | None = None, defer: bool = False) -> LoadedModel:
    """Open the model at ``path`` (a .tflite beside its manifest, a manifest, or a folder holding
    one); ``model`` picks an entry by key ("int8", "float") or file name (default: int8).
    ``defer``: a DeferredModel, whose interpreter opens on first use (its sha256 is checked now)."""
    manifest_path, model_file = locate(path)
    manifest = load_manifest(manifest_path)
    if manifest.ensemble is not None:
        folders = ", ".join(str(manifest_path.parent / m.path) for m in manifest.ensemble.members)
        raise ManifestError(f"{manifest_path}: an ensemble of {len(manifest.ensemble.members)} models, which "
                            f"kws-listen and kws-eval run; here give one of its members ({folders})")
    key, entry = pick_model(manifest, manifest_path, model_file or model)
    model_path = checked_file(manifest_path, entry.file, entry.sha256, entry.size_bytes)
    if defer:
        return LoadedModel(manifest, manifest_path, key, entry,
                           DeferredModel(model_path, entry, manifest, manifest_path, num_threads, runtime))
    tfl = TFLiteModel(model_path, num_threads=num_threads, runtime=runtime)
    check_model_matches(manifest, entry, tfl, manifest_path)
    return LoadedModel(manifest, manifest_path, key, entry, tfl)
