"""The manifest: everything an app needs beside a .tflite (labels, frontend, quantization,
smoothing, thresholds), stored as ``manifest.json`` next to the exported models."""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .errors import KwsError, ManifestError, naming
from .frontend import FrontendConfig
from .manifest_schema import SMOOTHING_RANGES, check_manifest_data
from .stopping import cleanup_held

MANIFEST_FORMAT = "kws-manifest"
# 2: smoothing in time (minimum_span_ms for minimum_count) and the release rule; 1 still loads
# 3: the model family (``family``: "embedding" adds the ``embedding`` section); only manifests of the
# embedding family are written as 3, so older kws versions refuse them instead of misreading them
# 4: the ensemble (``family``: "ensemble" and its ``ensemble`` section of member folders); only
# ensembles are written as 4
WINDOW_FAMILY_VERSION = 2
EMBEDDING_FAMILY_VERSION = 3
ENSEMBLE_VERSION = 4
MANIFEST_VERSION = ENSEMBLE_VERSION  # the newest this kws reads
WINDOW_FAMILY = "window"  # a model over the frontend's frames of one clip (every architecture but one)
EMBEDDING_FAMILY = "embedding"  # mel -> frozen speech embedding -> head (kws.edge.embedding_pipeline)
ENSEMBLE_FAMILY = "ensemble"  # converted models side by side, their scores averaged (kws.edge.ensemble)
FAMILIES = (WINDOW_FAMILY, EMBEDDING_FAMILY, ENSEMBLE_FAMILY)
# how an ensemble combines its members' per-hop scores (the only rule so far; see kws.edge.ensemble)
MEAN_HOLD_LATEST = "mean_hold_latest"
ENSEMBLE_MERGES = (MEAN_HOLD_LATEST,)
MANIFEST_NAME = "manifest.json"
SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
BACKGROUND_LABELS = (SILENCE_LABEL, UNKNOWN_LABEL)
MAX_MANIFEST_BYTES = 1 << 20
SHOWN_LABELS = 8  # an error listing labels names at most this many (a manifest may hold 1000)


# the smoothing key of version-1 manifests and configs that counted model results instead of time
LEGACY_MINIMUM_COUNT = "minimum_count"


@dataclass(frozen=True)
class SmoothingConfig:
    """Posterior smoothing and how often the model runs. Every duration is in ms of stream time, so a
    setting means the same at any hop (see firmware_notes/smoothing.md)."""

    average_window_ms: float = 500.0
    detection_threshold: float = 0.7
    # refractory time: the same label is never reported twice within this many ms
    suppression_ms: float = 1000.0
    # no decision until the queued results span this long (newest minus oldest time) ...
    minimum_span_ms: float = 80.0
    # after a detection of L nothing is reported until L's average has stayed below
    # release_fraction * threshold(L) for release_ms
    release_fraction: float = 1.0
    release_ms: float = 100.0
    hop_ms: float = 40.0

    def __post_init__(self) -> None:
        if self.average_window_ms <= 0:
            raise ValueError(f"average_window_ms must be > 0, got {self.average_window_ms}")
        if not 0.0 <= self.detection_threshold <= 1.0:
            raise ValueError(f"detection_threshold must be in [0, 1], got {self.detection_threshold}")
        for name in ("suppression_ms", "minimum_span_ms", "release_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.minimum_span_ms > self.average_window_ms:
            raise ValueError(f"minimum_span_ms ({self.minimum_span_ms:g}) must not exceed average_window_ms "
                             f"({self.average_window_ms:g}): the window never spans that long")
        if not 0.0 < self.release_fraction <= 1.0:
            raise ValueError(f"release_fraction must be in (0, 1], got {self.release_fraction}")
        if self.hop_ms <= 0:
            raise ValueError(f"hop_ms must be > 0, got {self.hop_ms}")
        for name in (f.name for f in fields(self)):  # what a manifest can hold: a run trained with
            lo, hi, _ = SMOOTHING_RANGES[name]       # more would convert to a model nothing loads
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be in {lo:g}..{hi:g}, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SmoothingConfig":
        """A config from a manifest's or YAML's smoothing section (legacy keys upgraded); ValueError
        for an unknown key or a bad value."""
        values = upgrade_smoothing_keys(values)
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown smoothing key(s) {', '.join(unknown)}")
        return cls(**values)


def upgrade_smoothing_keys(values: dict[str, Any]) -> dict[str, Any]:
    """A smoothing section with the version-1 ``minimum_count`` (results in the window) replaced by
    ``minimum_span_ms``: ``count`` results one hop apart span ``(count - 1) * hop_ms``, so an old
    manifest decides exactly as before at its own hop."""
    if LEGACY_MINIMUM_COUNT not in values:
        return dict(values)
    if "minimum_span_ms" in values:
        raise ValueError("give minimum_span_ms or the older minimum_count, not both")
    out = dict(values)
    count = out.pop(LEGACY_MINIMUM_COUNT)
    hop = out.get("hop_ms", _smoothing_default("hop_ms"))
    if isinstance(count, bool) or not isinstance(count, (int, float)) or count != int(count) or count < 1:
        raise ValueError(f"minimum_count must be a whole number >= 1, got {count!r}")
    if isinstance(hop, bool) or not isinstance(hop, (int, float)):
        raise ValueError(f"hop_ms must be a number, got {hop!r}")
    out["minimum_span_ms"] = float((int(count) - 1) * hop)
    return out


def _smoothing_default(name: str) -> Any:
    """The default of one SmoothingConfig field."""
    return next(f.default for f in fields(SmoothingConfig) if f.name == name)


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: shape, dtype and (for int8) its affine quantization."""

    shape: tuple[int, ...]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.dtype in ("int8", "uint8") and self.scale > 0


@dataclass(frozen=True)
class ModelEntry:
    """One exported model file described by the manifest."""

    file: str
    input: TensorSpec
    output: TensorSpec
    sha256: str = ""
    size_bytes: int = 0


@dataclass(frozen=True)
class StreamEntry:
    """One step model file: input 0 the new frames and 1..n the states, output 0 the scores and
    1..n the new states (state i goes in as input i and comes out as output i)."""

    file: str
    inputs: tuple[tuple[str, TensorSpec], ...]
    outputs: tuple[tuple[str, TensorSpec], ...]
    sha256: str = ""
    size_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        def tensors(items: tuple[tuple[str, TensorSpec], ...]) -> list[dict[str, Any]]:
            return [{"name": name, **asdict(spec), "shape": list(spec.shape)} for name, spec in items]

        return {"file": self.file, "sha256": self.sha256, "size_bytes": self.size_bytes,
                "inputs": tensors(self.inputs), "outputs": tensors(self.outputs)}

    @classmethod
    def from_dict(cls, m: dict[str, Any]) -> "StreamEntry":
        def tensors(items: list[dict[str, Any]]) -> tuple[tuple[str, TensorSpec], ...]:
            return tuple((t["name"], TensorSpec(shape=tuple(t["shape"]), dtype=t["dtype"],
                                                scale=t.get("scale", 0.0), zero_point=t.get("zero_point", 0)))
                         for t in items)

        return cls(file=m["file"], inputs=tensors(m["inputs"]), outputs=tensors(m["outputs"]),
                   sha256=m.get("sha256", ""), size_bytes=int(m.get("size_bytes", 0)))


@dataclass(frozen=True)
class StreamingSection:
    """The streaming form of the models (optional): step models that take ``step_frames`` new frames
    and their state, keyed like ``models`` ("int8", "float")."""

    step_frames: int
    models: dict[str, StreamEntry] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"step_frames": self.step_frames, "models": {k: e.to_dict() for k, e in self.models.items()}}


@dataclass(frozen=True)
class EmbeddingSection:
    """The frozen front end of the embedding family: the mel constants file (for
    kws.edge.embedding_frontend) and the embedding models, keyed like ``models`` (the "int8" head
    runs on the "int8" embedding); ``weights`` says where the weights came from."""

    mel_constants: str
    mel_sha256: str
    models: dict[str, ModelEntry] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    mel_size_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"mel_constants": {"file": self.mel_constants, "sha256": self.mel_sha256,
                                  "size_bytes": self.mel_size_bytes},
                "models": {k: _entry_dict(e) for k, e in self.models.items()}, "weights": dict(self.weights)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EmbeddingSection":
        mel = data["mel_constants"]
        return cls(mel_constants=mel["file"], mel_sha256=mel.get("sha256", ""),
                   mel_size_bytes=int(mel.get("size_bytes", 0)),
                   models={k: _model_entry(m) for k, m in data.get("models", {}).items()},
                   weights=dict(data.get("weights", {})))


@dataclass(frozen=True)
class EnsembleMember:
    """One model of an ensemble: its converted folder (``path``, relative to the ensemble's folder and
    inside it), which of its models runs (``model``: "int8", "float"), and where it came from."""

    path: str
    model: str
    source: str = ""


@dataclass(frozen=True)
class EnsembleSection:
    """The members of an ensemble, the first setting the hop, and how their scores combine."""

    members: tuple[EnsembleMember, ...]
    merge: str = MEAN_HOLD_LATEST

    def to_dict(self) -> dict[str, Any]:
        return {"merge": self.merge, "members": [asdict(m) for m in self.members]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnsembleSection":
        return cls(members=tuple(EnsembleMember(path=str(m["path"]), model=str(m["model"]),
                                                source=str(m.get("source", ""))) for m in data["members"]),
                   merge=str(data.get("merge", MEAN_HOLD_LATEST)))


def _entry_dict(entry: ModelEntry) -> dict[str, Any]:
    data = asdict(entry)
    for key in ("input", "output"):
        data[key]["shape"] = list(data[key]["shape"])
    return data


def _model_entry(m: dict[str, Any]) -> ModelEntry:
    return ModelEntry(file=m["file"], input=TensorSpec(**{**m["input"], "shape": tuple(m["input"]["shape"])}),
                      output=TensorSpec(**{**m["output"], "shape": tuple(m["output"]["shape"])}),
                      sha256=m.get("sha256", ""), size_bytes=int(m.get("size_bytes", 0)))


@dataclass(frozen=True)
class Manifest:
    """The versioned manifest (see docs in firmware_notes/)."""

    labels: tuple[str, ...]
    frontend: FrontendConfig
    models: dict[str, ModelEntry] = field(default_factory=dict)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    thresholds: dict[str, float] = field(default_factory=dict)
    ignore_labels: tuple[str, ...] = BACKGROUND_LABELS
    config_digest: str = ""
    calibration: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    streaming: StreamingSection | None = None
    embedding: EmbeddingSection | None = None
    ensemble: EnsembleSection | None = None
    format: str = MANIFEST_FORMAT
    version: int = MANIFEST_VERSION

    @property
    def family(self) -> str:
        """Which pipeline runs the models: WINDOW_FAMILY, EMBEDDING_FAMILY or ENSEMBLE_FAMILY."""
        if self.ensemble is not None:
            return ENSEMBLE_FAMILY
        return EMBEDDING_FAMILY if self.embedding is not None else WINDOW_FAMILY

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @property
    def clip_ms(self) -> int:
        return self.frontend.clip_ms

    def threshold_for(self, label: str) -> float:
        """The detection threshold of a label: its own if set, else the smoothing default."""
        return float(self.thresholds.get(label, self.smoothing.detection_threshold))

    def default_model(self, source: str = "manifest") -> str:
        """Key of the model a runtime should use when none is named: int8, else the first; ManifestError
        naming ``source`` (the manifest's path) where it lists none."""
        if "int8" in self.models:
            return "int8"
        if self.ensemble is not None:
            raise ManifestError(f"{source}: an ensemble of {len(self.ensemble.members)} models has no model file of "
                                "its own: kws-listen and kws-eval run it; other tools take one of its member folders")
        if not self.models:
            raise ManifestError(f"{source}: lists no model files (its models section is empty; re-run kws-convert)")
        return next(iter(self.models))

    def entry_for_file(self, filename: str, source: str = "manifest") -> tuple[str, ModelEntry]:
        """The key and entry of the model ``filename``; ManifestError naming ``source`` where none is it."""
        for key, entry in self.models.items():
            if entry.file == filename:
                return key, entry
        raise ManifestError(f"{source}: does not describe {filename} (it lists: "
                            f"{', '.join(e.file for e in self.models.values()) or 'nothing'})")

    def with_updates(self, **changes: Any) -> "Manifest":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = (ENSEMBLE_VERSION if self.ensemble is not None else EMBEDDING_FAMILY_VERSION
                           if self.embedding is not None else WINDOW_FAMILY_VERSION)
        data["streaming"] = self.streaming.to_dict() if self.streaming else None
        data["embedding"] = self.embedding.to_dict() if self.embedding else None
        data["ensemble"] = self.ensemble.to_dict() if self.ensemble else None
        data["family"] = self.family
        data["labels"] = list(self.labels)
        data["ignore_labels"] = list(self.ignore_labels)
        data["sample_rate"] = self.sample_rate
        data["clip_ms"] = self.clip_ms
        for entry in data["models"].values():
            for key in ("input", "output"):
                entry[key]["shape"] = list(entry[key]["shape"])
        order = ["format", "version", "labels", "sample_rate", "clip_ms", "frontend", "models",
                 "smoothing", "thresholds", "ignore_labels", "calibration", "config_digest", "extra"]
        if self.streaming is not None:  # manifests without a step model stay as they were
            order.insert(order.index("smoothing"), "streaming")
        if self.embedding is not None or self.ensemble is not None:  # and so do those of the window family
            order.insert(order.index("labels"), "family")
        if self.embedding is not None:
            order.insert(order.index("models"), "embedding")
        if self.ensemble is not None:
            order.insert(order.index("models"), "ensemble")
        return {k: data[k] for k in order}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "manifest") -> "Manifest":
        """A validated Manifest; ManifestError (one line naming the field) for anything wrong."""
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: manifest must be a JSON object")
        try:
            if data.get("format") != MANIFEST_FORMAT:
                raise ManifestError(f"{source}: not a kws manifest (format={data.get('format')!r})")
            if int(data.get("version", 0)) > MANIFEST_VERSION:
                raise ManifestError(f"{source}: manifest version {data['version']} is newer than this kws "
                                    f"understands ({MANIFEST_VERSION}); upgrade kws")
            check_manifest_data(data, source)
            models = {key: _model_entry(m) for key, m in data.get("models", {}).items()}
            family = data.get("family", WINDOW_FAMILY)
            if family not in FAMILIES:
                raise ManifestError(f"{source}: model family {family!r} is not one this kws runs "
                                    f"({', '.join(FAMILIES)}); upgrade kws")
            for section, own in (("embedding", EMBEDDING_FAMILY), ("ensemble", ENSEMBLE_FAMILY)):
                if (family == own) != (section in data):
                    raise ManifestError(f"{source}: family {family!r} " + (f"needs an {section} section"
                                        if family == own else f"takes no {section} section"))
            try:
                smoothing = SmoothingConfig.from_dict(data.get("smoothing", {}))
            except ValueError as exc:
                raise ManifestError(f"{source}: smoothing: {exc}") from None
            manifest = cls(
                labels=tuple(data["labels"]),
                frontend=FrontendConfig.from_dict(data["frontend"]),
                models=models,
                smoothing=smoothing,
                thresholds={str(k): float(v) for k, v in data.get("thresholds", {}).items()},
                ignore_labels=tuple(data.get("ignore_labels", BACKGROUND_LABELS)),
                config_digest=data.get("config_digest", ""),
                calibration=dict(data.get("calibration", {})),
                extra=dict(data.get("extra", {})),
                streaming=_streaming(data.get("streaming")),
                embedding=EmbeddingSection.from_dict(data["embedding"]) if family == EMBEDDING_FAMILY else None,
                ensemble=EnsembleSection.from_dict(data["ensemble"]) if family == ENSEMBLE_FAMILY else None,
                version=MANIFEST_VERSION,  # read into the current schema, and written back in it
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{source}: malformed manifest ({type(exc).__name__}: {exc})") from None
        if len(set(manifest.labels)) != len(manifest.labels) or len(manifest.labels) < 2:
            raise ManifestError(f"{source}: labels must be at least two distinct names")
        bad = sorted(set(manifest.thresholds) - set(manifest.labels))
        if bad:
            raise ManifestError(f"{source}: thresholds for unknown label(s) {', '.join(bad)}")
        _check_ignore_labels(manifest, source)
        return manifest


def _check_ignore_labels(manifest: Manifest, source: str) -> None:
    """ManifestError naming ``source`` where ``ignore_labels`` names a label the model does not have
    (a typo: the label meant stays reported) or leaves no keyword to report (every tool would run
    and never detect anything). The background names may be listed without being labels: every
    manifest lists them by default, and a model may have been trained without either."""
    unknown = [l for l in manifest.ignore_labels if l not in manifest.labels and l not in BACKGROUND_LABELS]
    if unknown:
        raise ManifestError(f"{source}: ignore_labels names unknown label(s) {', '.join(unknown)} "
                            f"(the model's labels: {_shown(manifest.labels)})")
    keywords = [l for l in manifest.labels if l not in BACKGROUND_LABELS]
    if keywords and all(l in manifest.ignore_labels for l in keywords):
        raise ManifestError(f"{source}: ignore_labels lists every keyword ({_shown(keywords)}), so nothing "
                            "would ever be detected: leave out the ones to detect")


def _shown(names: tuple[str, ...] | list[str]) -> str:
    """Up to SHOWN_LABELS names joined by commas, and how many more there are."""
    more = len(names) - SHOWN_LABELS
    return ", ".join(names[:SHOWN_LABELS]) + (f" and {more} more" if more > 0 else "")


def _streaming(data: dict[str, Any] | None) -> StreamingSection | None:
    if data is None:
        return None
    return StreamingSection(step_frames=int(data["step_frames"]),
                            models={k: StreamEntry.from_dict(m) for k, m in data.get("models", {}).items()})


def what_is_at(path: Path) -> str | None:
    """What stands at ``path`` where a file was looked for and something else is there: "a folder",
    "a broken link", "a named pipe" or "a special file" (a socket, a device); None for a file (or a
    link to one) and where nothing is."""
    if path.is_file():
        return None
    if path.is_dir():
        return "a folder"
    if path.is_symlink() and not path.exists():
        return "a broken link"
    if not path.exists():
        return None
    return "a named pipe" if path.is_fifo() else "a special file"


def not_a_manifest_file(path: Path) -> ManifestError | None:
    """The one-line error for a ``manifest.json`` that is not a file (``what_is_at``), else None."""
    what = what_is_at(path)
    return ManifestError(f"{path}: {what}, not a manifest file") if what else None


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Load and validate a manifest.json (or the manifest.json inside a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    odd = not_a_manifest_file(path)  # a folder would be "Is a directory", a named pipe never ends
    if odd:
        raise odd
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest here") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc.strerror})") from None
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{path}: {len(raw)} bytes is too large for a manifest (at most {MAX_MANIFEST_BYTES})")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # e.g. integers too long to convert, nesting too deep
        raise ManifestError(f"{path}: not a usable JSON manifest ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: manifest must be a JSON object")
    return Manifest.from_dict(data, source=str(path))


def save_manifest(manifest: Manifest, path: str | os.PathLike) -> Path:
    """Write the manifest atomically; returns the file written."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


TEMP_NAME_ATTEMPTS = 1000
WRITE_PROBE = ".kws-write-test"


def check_writable_dir(folder: str | os.PathLike, what: str) -> None:
    """Make ``folder`` if needed and check a file can be written there, so a job that ends by
    writing ``what`` fails before its work rather than after it (KwsError, one line)."""
    folder = Path(folder)
    probe = folder / f"{WRITE_PROBE}.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise KwsError(f"{folder}: cannot write {what} there ({exc.strerror or type(exc).__name__})") from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file so a reader sees the old or the new content, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def process_umask() -> int:
    """The process umask, read without changing it where Linux says it (/proc/self/status), since
    os.umask's read-by-setting races with threads creating files."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes to a temp file beside ``path``, fsync, then rename over it (``atomic_file``)."""
    with atomic_file(path) as f:
        f.write(data)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file whose bytes become ``path`` when the block ends: a temp file beside it, fsynced
    and renamed over it, so a reader sees the old or the new content, never half. If anything fails
    the temp file is removed and ``path`` is as it was; an OSError (a full disk, a read-only folder)
    names ``path``, not the temp file (``naming``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a name of our own (pid + counter, created exclusively) rather than tempfile.mkstemp: tempfile
    # brings shutil, random, bz2 and lzma, 0.6 MiB of kws-listen's peak RSS for its --summary-json
    for attempt in range(TEMP_NAME_ATTEMPTS):
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{attempt}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise naming(exc, path, tmp) from None
    else:
        raise FileExistsError(f"{path}: no free temporary name beside it after {TEMP_NAME_ATTEMPTS} tries")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            # the mode a plain write would give (the old file's, else 0666 less the umask), not the
            # temp file's 0600: a service running as another user must still read the manifest
            try:
                mode = os.stat(path).st_mode & 0o777
            except OSError:
                mode = 0o666 & ~process_umask()
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with cleanup_held(exc):  # a second Ctrl-C cannot leave the temp file behind
            if os.path.exists(tmp):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise naming(exc, path, tmp) from None
        raise
