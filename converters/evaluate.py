"""Verification of converted models with the edge runtime (kws.edge.runtime, no TensorFlow):
accuracy and per-class accuracy on the test split, latency, and whether tflite-runtime 2.14 in the
separate edge environment (``.venv-edge``, numpy<2, no TensorFlow) loads and runs the model."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from kws.edge.manifest import SILENCE_LABEL, UNKNOWN_LABEL
from kws.edge.runtime import LITERT, TF_LITE, TFLITE_RUNTIME, ModelLoadError, TFLiteModel
from kws.edge.errors import RuntimeMissingError
from kws.edge.stopping import removed_after

from .errors import ConvertError

EDGE_PYTHON_ENV = "KWS_EDGE_PYTHON"
EDGE_VENV_DIR = ".venv-edge"
REPO_ROOT = Path(__file__).resolve().parent.parent
LATENCY_RUNS = 50
LATENCY_WARMUP = 5
EDGE_TIMEOUT_S = 300
NOT_INSTALLED = "not installed"
EDGE_CHECK_PREFIX = "kws-edge-check-"  # its temporary folder, in the system's (TMPDIR)

# Runs inside the edge environment: only numpy + tflite_runtime, prints one JSON object.
EDGE_SCRIPT = r"""
import importlib.util, json, sys, time
import numpy as np
result = {"loaded": False}
try:
    import tflite_runtime
    from tflite_runtime.interpreter import Interpreter
    result["version"] = getattr(tflite_runtime, "__version__", "unknown")
    result["numpy"] = np.__version__
    result["tensorflow_importable"] = importlib.util.find_spec("tensorflow") is not None
    model, feats, out_path, runs, warmup = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    it = Interpreter(model_path=model, num_threads=1)
    it.allocate_tensors()
    result["loaded"] = True
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = np.load(feats)
    probs = np.empty((len(x), int(out["shape"][-1])), np.float32)
    for i, f in enumerate(x):
        f = f.reshape(inp["shape"]).astype(np.float32)
        scale, zero = inp["quantization"]
        if inp["dtype"] != np.float32:
            info = np.iinfo(inp["dtype"])
            f = np.clip(np.round(f / scale) + zero, info.min, info.max).astype(inp["dtype"])
        it.set_tensor(inp["index"], f)
        it.invoke()
        y = it.get_tensor(out["index"]).reshape(-1)
        scale, zero = out["quantization"]
        probs[i] = (y.astype(np.float32) - zero) * scale if out["dtype"] != np.float32 else y
    try:
        np.save(out_path, probs)
    except OSError as exc:  # a full disk: the parent names the file
        result["save_error"] = exc.strerror or str(exc)
        raise
    times = []
    f = np.zeros(inp["shape"], inp["dtype"])
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        it.set_tensor(inp["index"], f)
        it.invoke()
        times.append(time.perf_counter() - t0)
    result["latency_ms"] = float(np.median(times[warmup:]) * 1000)
except Exception as exc:
    result["error"] = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
print(json.dumps(result))
"""


@dataclass(frozen=True)
class Scores:
    """Accuracy overall and per label (recall: share of a label's clips classified as it)."""

    accuracy: float
    per_class: dict[str, float]
    counts: dict[str, int]
    per_group: dict[str, float] = field(default_factory=dict)  # accuracy per speaker, where known
    group_counts: dict[str, int] = field(default_factory=dict)
    # the same clips with _silence_ and _unknown_ as one label (NO_KEYWORD), where the labels hold both:
    # a clip moved between the two changes nothing a listener does (neither is ever detected)
    keyword_view: "Scores | None" = None

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "per_class": self.per_class, "counts": self.counts,
                "per_speaker": self.per_group, "speaker_counts": self.group_counts}


@dataclass
class RuntimeResult:
    """One runtime's attempt to load and run a model."""

    runtime: str
    loaded: bool
    status: str
    version: str = ""
    accuracy: float | None = None
    latency_ms: float | None = None
    max_abs_diff_vs_litert: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"loaded": self.loaded, "status": self.status, "version": self.version, "accuracy": self.accuracy,
               "latency_ms": self.latency_ms, "max_abs_diff_vs_litert": self.max_abs_diff_vs_litert}
        out.update(self.extra)
        return out


NO_KEYWORD = f"{SILENCE_LABEL} or {UNKNOWN_LABEL}"


def scores(probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...],
           groups: tuple[str | None, ...] = ()) -> Scores:
    """Accuracy and per-label accuracy of probabilities against integer labels, and per speaker
    (``groups``, one per clip, None where unknown); with the keyword view where the labels hold
    both _silence_ and _unknown_."""
    pred = probs.argmax(axis=1) if len(probs) else np.zeros((0,), np.int64)
    full = _scores_of(pred, np.asarray(y), tuple(labels), groups)
    if SILENCE_LABEL in labels and UNKNOWN_LABEL in labels:
        merged = [NO_KEYWORD if lab in (SILENCE_LABEL, UNKNOWN_LABEL) else lab for lab in labels]
        kept = list(dict.fromkeys(merged))
        to = np.array([kept.index(lab) for lab in merged], np.int64)
        view = _scores_of(to[pred] if len(pred) else pred, to[np.asarray(y, np.int64)], tuple(kept), groups)
        full = replace(full, keyword_view=view)
    return full


def _scores_of(pred: np.ndarray, y: np.ndarray, labels: tuple[str, ...],
               groups: tuple[str | None, ...]) -> Scores:
    per_class, counts = {}, {}
    for i, lab in enumerate(labels):
        mask = y == i
        counts[lab] = int(mask.sum())
        if counts[lab]:
            per_class[lab] = float((pred[mask] == i).mean())
    per_group, group_counts = {}, {}
    if len(groups) == len(y):
        correct = pred == y
        for g in sorted({g for g in groups if g is not None}):
            mask = np.array([x == g for x in groups])
            group_counts[g] = int(mask.sum())
            per_group[g] = float(correct[mask].mean())
    return Scores(float((pred == y).mean()) if len(y) else 0.0, per_class, counts, per_group, group_counts)


def median_latency_ms(model: TFLiteModel, runs: int = LATENCY_RUNS, warmup: int = LATENCY_WARMUP) -> float:
    """Median wall time of one predict() (quantize, invoke, dequantize) on one thread."""
    x = np.zeros(model.input_shape, np.float32)
    times = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        model.predict(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:]) * 1000.0


def run_litert(path: Path, x: np.ndarray) -> tuple[RuntimeResult, np.ndarray | None, TFLiteModel | None]:
    """Load and run a model with ai-edge-litert in this process (one thread); where LiteRT is not
    installed, with the first runtime kws.edge.runtime finds (the status says which)."""
    status = "ok"
    try:
        try:
            model = TFLiteModel(path, num_threads=1, runtime=LITERT)
        except RuntimeMissingError:
            model = TFLiteModel(path, num_threads=1, runtime=TF_LITE)
            status = f"ai-edge-litert {NOT_INSTALLED}; ran with {model.runtime.name} {model.runtime.version}"
    except (ModelLoadError, RuntimeMissingError) as exc:
        return RuntimeResult("ai-edge-litert", False, str(exc)), None, None
    probs = model.predict_batch(x)
    return (RuntimeResult("ai-edge-litert", True, status, version=model.runtime.version,
                          latency_ms=median_latency_ms(model)), probs, model)


def edge_python() -> Path | None:
    """The edge environment's python: $KWS_EDGE_PYTHON, else .venv-edge/bin/python in the repo."""
    env = os.environ.get(EDGE_PYTHON_ENV)
    if env:
        return Path(env) if Path(env).is_file() else None
    candidate = REPO_ROOT / EDGE_VENV_DIR / "bin" / "python"
    return candidate if candidate.is_file() else None


def run_tflite_runtime(path: Path, x: np.ndarray, y: np.ndarray | None = None,
                       reference: np.ndarray | None = None) -> RuntimeResult:
    """Load and run a model with tflite-runtime in the separate edge environment (subprocess), through
    files in a temporary folder; ConvertError naming the file where one cannot be written there."""
    python = edge_python()
    if python is None:
        return RuntimeResult(TFLITE_RUNTIME, False, f"{NOT_INSTALLED} (no {EDGE_VENV_DIR}/; make edge-venv)")
    try:
        folder = tempfile.TemporaryDirectory(prefix=EDGE_CHECK_PREFIX)
    except OSError as exc:
        where = tempfile.tempdir or "the temporary folder"  # None: no usable one was found
        raise _check_write_error(where, "make a folder for", exc) from None
    with removed_after(folder.cleanup):  # a second Ctrl-C cannot leave it in the temporary folder
        feats, out = Path(folder.name) / "features.npy", Path(folder.name) / "probs.npy"
        try:
            np.save(feats, np.asarray(x, np.float32))
        except OSError as exc:
            raise _check_write_error(feats, "write the test features of", exc) from None
        try:
            res = subprocess.run([str(python), "-c", EDGE_SCRIPT, str(path), str(feats), str(out),
                                  str(LATENCY_RUNS), str(LATENCY_WARMUP)],
                                 capture_output=True, text=True, timeout=EDGE_TIMEOUT_S,
                                 env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            return RuntimeResult(TFLITE_RUNTIME, False, f"edge environment failed: {exc}")
        try:
            data = json.loads(res.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
            return RuntimeResult(TFLITE_RUNTIME, False, f"edge environment failed: {tail[:300]}")
        if "save_error" in data:  # the scores it wrote are partial: not read
            raise _check_write_error(out, "write the scores of", data["save_error"])
        if "version" not in data and not data.get("loaded"):
            return RuntimeResult(TFLITE_RUNTIME, False, f"{NOT_INSTALLED} in {python.parent.parent.name} "
                                 f"({data.get('error', 'import failed')})")
        result = RuntimeResult(TFLITE_RUNTIME, bool(data.get("loaded")), "ok" if data.get("loaded") and
                               "error" not in data else data.get("error", "failed"),
                               version=str(data.get("version", "")), latency_ms=data.get("latency_ms"),
                               extra={"numpy": data.get("numpy"),
                                      "tensorflow_in_env": data.get("tensorflow_importable")})
        if out.is_file():
            probs = np.load(out)
            if y is not None:
                result.accuracy = float((probs.argmax(axis=1) == y).mean()) if len(y) else None
            if reference is not None and len(probs):
                result.max_abs_diff_vs_litert = float(np.max(np.abs(probs - reference)))
    return result


def _check_write_error(path: Path | str, what: str, reason: OSError | str) -> ConvertError:
    """The one line for a file of the tflite-runtime check that could not be written (a full temp
    folder): the file, what it was for, why, and the two ways out."""
    if isinstance(reason, OSError):
        reason = reason.strerror or str(reason) or type(reason).__name__
    return ConvertError(f"{path}: cannot {what} the {TFLITE_RUNTIME} check ({reason}); set TMPDIR to a "
                        "folder with space, or skip the check with --no-edge-check")
