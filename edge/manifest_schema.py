"""The manifest's field types and sane ranges, checked before anything is built from a manifest
(which may come from a stranger): every problem is one ManifestError naming the field."""
from __future__ import annotations

import math
import re
from typing import Any

from .errors import ManifestError

MAX_LABELS = 1000
MAX_LABEL_CHARS = 64
MAX_MODELS = 16
MAX_TENSOR_DIMS = 8
MAX_TENSOR_DIM = 1_000_000
MAX_STEP_FRAMES = 1000
MAX_STATE_TENSORS = 256
TENSOR_DTYPES = ("int8", "uint8", "int16", "int32", "float16", "float32")
QUANT_ZERO_POINT_RANGE = (-128, 255)
SHA256_RE = re.compile(r"[0-9a-f]{64}")

# field -> (minimum, maximum, integer?): wide enough for every real frontend, narrow enough that
# nothing allocates more than tens of MB (a 10 s clip at 192 kHz is 1.9 M samples)
FRONTEND_RANGES: dict[str, tuple[float, float, bool]] = {
    "sample_rate": (1000, 192_000, True),
    "clip_ms": (50, 10_000, True),
    "window_ms": (1.0, 1000.0, False),
    "stride_ms": (1.0, 1000.0, False),
    "num_features": (1, 512, True),
    "num_mel_bins": (1, 512, True),
    "lower_hz": (0.0, 96_000.0, False),
    "upper_hz": (1.0, 96_000.0, False),
}
SMOOTHING_RANGES: dict[str, tuple[float, float, bool]] = {
    "average_window_ms": (1.0, 60_000.0, False),
    "detection_threshold": (0.0, 1.0, False),
    "suppression_ms": (0.0, 600_000.0, False),
    "minimum_span_ms": (0.0, 60_000.0, False),
    "release_fraction": (0.0, 1.0, False),
    "release_ms": (0.0, 60_000.0, False),
    "hop_ms": (1.0, 10_000.0, False),
    "minimum_count": (1, 10_000, True),  # version 1; read as minimum_span_ms = (count - 1) * hop_ms
}
STRING_FIELDS = {"feature_type"}


def _fail(source: str, name: str, what: str, value: Any) -> ManifestError:
    shown = repr(value)
    if len(shown) > MAX_LABEL_CHARS:
        shown = shown[:MAX_LABEL_CHARS] + "..."
    return ManifestError(f"{source}: {name} {what}, got {shown}")


def number(source: str, name: str, value: Any, low: float, high: float, integer: bool) -> None:
    """A finite number (an integer if ``integer``) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(source, name, "must be a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _fail(source, name, "must be a finite number", value)
    if integer and value != int(value):
        raise _fail(source, name, "must be a whole number", value)
    if not low <= value <= high:
        raise _fail(source, name, f"must be in [{low:g}, {high:g}]", value)


def _object(source: str, name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise _fail(source, name, "must be a JSON object", value)
    return value


def is_valid_label(value: Any) -> bool:
    """Whether a manifest can hold ``value`` as a label: 1..MAX_LABEL_CHARS printable characters, none
    of them a space at either end (labels.txt is read line by line with the ends stripped)."""
    return (isinstance(value, str) and 1 <= len(value) <= MAX_LABEL_CHARS and value.isprintable()
            and value == value.strip())


def _label(source: str, name: str, value: Any) -> None:
    if not is_valid_label(value):
        raise _fail(source, name, f"must be 1..{MAX_LABEL_CHARS} printable characters (no control "
                    "characters, no space at either end)", value)


def _labels(source: str, name: str, value: Any) -> None:
    if not isinstance(value, list) or len(value) > MAX_LABELS:
        raise _fail(source, name, f"must be a list of at most {MAX_LABELS} labels", value)
    for i, label in enumerate(value):
        _label(source, f"{name}[{i}]", label)


def _ranged_section(source: str, section: str, data: Any, ranges: dict) -> None:
    for key, value in _object(source, section, data).items():
        if key in ranges:
            number(source, f"{section}.{key}", value, *ranges[key])
        elif key in STRING_FIELDS:
            if not isinstance(value, str):
                raise _fail(source, f"{section}.{key}", "must be a string", value)
        else:
            raise _fail(source, f"{section}.{key}", "is not a known field", key)


def model_file_name(source: str, name: str, value: Any) -> None:
    """A plain file name in the manifest's own folder: no folders, no '..', not absolute."""
    if (not isinstance(value, str) or value in ("", ".", "..") or "/" in value or "\\" in value
            or "\0" in value or not value.isprintable() or len(value) > 255):
        raise _fail(source, name, "must be a file name inside the manifest's folder", value)


def _tensor(source: str, name: str, data: Any, named: bool = False) -> None:
    data = _object(source, name, data)
    for key in ("shape", "dtype") + (("name",) if named else ()):
        if key not in data:
            raise ManifestError(f"{source}: {name}.{key} is missing")
    if named:
        _label(source, f"{name}.name", data["name"])
    unknown = sorted(set(data) - {"shape", "dtype", "scale", "zero_point"} - ({"name"} if named else set()))
    if unknown:
        raise _fail(source, f"{name}.{unknown[0]}", "is not a known field", unknown[0])
    shape = data["shape"]
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_TENSOR_DIMS:
        raise _fail(source, f"{name}.shape", f"must be a list of 1..{MAX_TENSOR_DIMS} sizes", shape)
    for i, dim in enumerate(shape):
        number(source, f"{name}.shape[{i}]", dim, 1, MAX_TENSOR_DIM, True)
    if data["dtype"] not in TENSOR_DTYPES:
        raise _fail(source, f"{name}.dtype", f"must be one of {', '.join(TENSOR_DTYPES)}", data["dtype"])
    if "scale" in data:
        number(source, f"{name}.scale", data["scale"], 0.0, 1e6, False)
    if "zero_point" in data:
        number(source, f"{name}.zero_point", data["zero_point"], *QUANT_ZERO_POINT_RANGE, True)


def _file_facts(source: str, name: str, entry: dict) -> None:
    model_file_name(source, f"{name}.file", entry["file"])
    sha = entry.get("sha256", "")
    if not isinstance(sha, str) or (sha and not SHA256_RE.fullmatch(sha)):
        raise _fail(source, f"{name}.sha256", "must be 64 lowercase hex digits", sha)
    number(source, f"{name}.size_bytes", entry.get("size_bytes", 0), 0, 2 ** 40, True)


def _streaming(source: str, data: Any) -> None:
    """The optional ``streaming`` section: step_frames and step models with named tensor lists
    (frames + states in, scores + states out, one state list for both)."""
    data = _object(source, "streaming", data)
    unknown = sorted(set(data) - {"step_frames", "models"})
    if unknown:
        raise _fail(source, f"streaming.{unknown[0]}", "is not a known field", unknown[0])
    if "step_frames" not in data:
        raise ManifestError(f"{source}: streaming.step_frames is missing")
    number(source, "streaming.step_frames", data["step_frames"], 1, MAX_STEP_FRAMES, True)
    for name, entry in _entries(source, "streaming.models", data.get("models", {}), ("file", "inputs", "outputs")):
        for side in ("inputs", "outputs"):
            tensors = entry[side]
            if not isinstance(tensors, list) or not 1 <= len(tensors) <= MAX_STATE_TENSORS + 1:
                raise _fail(source, f"{name}.{side}", f"must be a list of 1..{MAX_STATE_TENSORS + 1} tensors",
                            tensors)
            for i, tensor in enumerate(tensors):
                _tensor(source, f"{name}.{side}[{i}]", tensor, named=True)
        if len(entry["inputs"]) != len(entry["outputs"]):
            raise _fail(source, f"{name}.outputs", "must list as many tensors as inputs (scores + states)",
                        len(entry["outputs"]))


def _entries(source: str, section: str, data: Any, required: tuple[str, ...]) -> list[tuple[str, dict]]:
    """The model entries of a section as (name, entry): each an object with its required fields and
    valid file facts, at most MAX_MODELS of them."""
    data = _object(source, section, data)
    if len(data) > MAX_MODELS:
        raise _fail(source, section, f"must list at most {MAX_MODELS} models", len(data))
    out = []
    for key, entry in data.items():
        name = f"{section}.{key}"
        entry = _object(source, name, entry)
        for field in required:
            if field not in entry:
                raise ManifestError(f"{source}: {name}.{field} is missing")
        _file_facts(source, name, entry)
        out.append((name, entry))
    return out


def _models(source: str, data: Any, section: str = "models") -> None:
    for name, entry in _entries(source, section, data, ("file", "input", "output")):
        _tensor(source, f"{name}.input", entry["input"])
        _tensor(source, f"{name}.output", entry["output"])


def _embedding(source: str, data: Any) -> None:
    """The ``embedding`` section of the embedding family: the mel constants file, the embedding
    models (like ``models``) and the weights' provenance."""
    data = _object(source, "embedding", data)
    unknown = sorted(set(data) - {"mel_constants", "models", "weights"})
    if unknown:
        raise _fail(source, f"embedding.{unknown[0]}", "is not a known field", unknown[0])
    if "mel_constants" not in data:
        raise ManifestError(f"{source}: embedding.mel_constants is missing")
    mel = _object(source, "embedding.mel_constants", data["mel_constants"])
    if "file" not in mel:
        raise ManifestError(f"{source}: embedding.mel_constants.file is missing")
    _file_facts(source, "embedding.mel_constants", mel)
    _models(source, data.get("models", {}), "embedding.models")
    _object(source, "embedding.weights", data.get("weights", {}))


MAX_ENSEMBLE_MEMBERS = 8
MAX_MEMBER_PATH_CHARS = 255


def _ensemble(source: str, data: Any) -> None:
    """The ``ensemble`` section: the merge rule's name and 2..MAX_ENSEMBLE_MEMBERS members, each a
    relative folder inside the ensemble's (no absolute path, no ``..``) and a model key."""
    data = _object(source, "ensemble", data)
    unknown = sorted(set(data) - {"merge", "members"})
    if unknown:
        raise _fail(source, f"ensemble.{unknown[0]}", "is not a known field", unknown[0])
    if not isinstance(data.get("merge", ""), str):
        raise _fail(source, "ensemble.merge", "must be a string", data["merge"])
    members = data.get("members")
    if not isinstance(members, list) or not 2 <= len(members) <= MAX_ENSEMBLE_MEMBERS:
        raise _fail(source, "ensemble.members", f"must be a list of 2..{MAX_ENSEMBLE_MEMBERS} members", members)
    for i, member in enumerate(members):
        name = f"ensemble.members[{i}]"
        member = _object(source, name, member)
        for key in ("path", "model"):
            if not isinstance(member.get(key), str) or not member[key]:
                raise _fail(source, f"{name}.{key}", "must be a non-empty string", member.get(key))
        path = member["path"]
        parts = path.replace("\\", "/").split("/")
        if (len(path) > MAX_MEMBER_PATH_CHARS or path.startswith("/") or ".." in parts
                or (len(path) > 1 and path[1] == ":")):
            raise _fail(source, f"{name}.path", "must be a folder inside the ensemble's (relative, no '..')", path)
        if not isinstance(member.get("source", ""), str):
            raise _fail(source, f"{name}.source", "must be a string", member["source"])


def check_manifest_data(data: Any, source: str) -> None:
    """Raise ManifestError naming the first field of ``data`` (a parsed manifest.json) that has the
    wrong type or is outside its range. Cross-field rules are checked by the dataclasses."""
    data = _object(source, "manifest", data)
    if "labels" not in data or "frontend" not in data:
        raise ManifestError(f"{source}: {'labels' if 'labels' not in data else 'frontend'} is missing")
    if "version" in data:
        number(source, "version", data["version"], 0, 2 ** 31, True)
    _labels(source, "labels", data["labels"])
    _ranged_section(source, "frontend", data["frontend"], FRONTEND_RANGES)
    _models(source, data.get("models", {}))
    if "streaming" in data:
        _streaming(source, data["streaming"])
    if "family" in data and not isinstance(data["family"], str):
        raise _fail(source, "family", "must be a string", data["family"])
    if "embedding" in data:
        _embedding(source, data["embedding"])
    if "ensemble" in data:
        _ensemble(source, data["ensemble"])
    _ranged_section(source, "smoothing", data.get("smoothing", {}), SMOOTHING_RANGES)
    for label, value in _object(source, "thresholds", data.get("thresholds", {})).items():
        number(source, f"thresholds.{label}", value, 0.0, 1.0, False)
    _labels(source, "ignore_labels", data.get("ignore_labels", []))
    for key in ("calibration", "extra"):
        _object(source, key, data.get(key, {}))
    if not isinstance(data.get("config_digest", ""), str):
        raise _fail(source, "config_digest", "must be a string", data["config_digest"])
    for key in ("sample_rate", "clip_ms"):  # written for readers; must agree with the frontend
        if key in data and data[key] != data["frontend"].get(key, data[key]):
            raise _fail(source, key, f"must equal frontend.{key}", data[key])
