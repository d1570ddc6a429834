"""TFLite runtimes without TensorFlow: ai-edge-litert's C API (``libLiteRt.so`` through ctypes, see
``litert_c``) where it loads, else ai-edge-litert's Python interpreter, else tflite-runtime, else
tf.lite; ``TFLiteModel`` wraps one model (float features in, float probabilities out, quantization
handled).

``KWS_TFLITE_RUNTIME`` (``litert-c``, ``litert``, ``tflite-runtime``, ``tf``) forces one runtime; a
runtime named there or by ``runtime=`` is used as named (``litert`` is the Python interpreter).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import KwsError, ManifestError, RuntimeMissingError
from .manifest import ModelEntry, TensorSpec

RUNTIME_ENV = "KWS_TFLITE_RUNTIME"
PROBE_TIMEOUT_S = 30.0  # a forked trial load that has not answered by then is left out, not an error
PROBE_POLL_S = 0.005
LITERT = "litert"
LITERT_C = "litert-c"
TFLITE_RUNTIME = "tflite-runtime"
TF_LITE = "tf"
# (name, module holding Interpreter, distribution name for the version), in order of preference
RUNTIMES = (
    (LITERT, "ai_edge_litert.interpreter", "ai-edge-litert"),
    (TFLITE_RUNTIME, "tflite_runtime.interpreter", "tflite-runtime"),
    # tf.lite.Interpreter's own module: "tensorflow.lite" imports as a package without it (TF 2.21)
    (TF_LITE, "tensorflow.lite.python.interpreter", "tensorflow"),
)
RUNTIME_ALIASES = {"litert-c": LITERT_C, "litert_c": LITERT_C, "litert": LITERT, "ai-edge-litert": LITERT, "ai_edge_litert": LITERT,
                   "tflite-runtime": TFLITE_RUNTIME, "tflite_runtime": TFLITE_RUNTIME,
                   "tf": TF_LITE, "tensorflow": TF_LITE, "tf.lite": TF_LITE}
# Where each runtime has wheels on PyPI: ai-edge-litert 2.3 for CPython 3.10-3.14 on 64-bit x86/ARM;
# tflite-runtime 2.14.0, the last with 32-bit ARM wheels, for CPython 3.10-3.11 there (armv7l)
LITERT_MACHINES = ("x86_64", "amd64", "aarch64", "arm64")
LITERT_PYTHONS = ((3, 10), (3, 14))
ARM32_MACHINES = ("armv7l", "armv6l")
TFLITE_RUNTIME_PYTHONS = ((3, 10), (3, 11))
# What installs a runtime asked for by name (--runtime, $KWS_TFLITE_RUNTIME); litert: install_hint()
NAMED_RUNTIME_INSTALL = {TFLITE_RUNTIME: "pip install 'tflite-runtime==2.14.0' 'numpy<2'",
                         TF_LITE: "pip install tensorflow-cpu"}
INT8_RANGE = (-128, 127)
UINT8_RANGE = (0, 255)


class ModelLoadError(KwsError):
    """A .tflite file is missing, unreadable or not a TFLite model."""


@dataclass(frozen=True)
class Runtime:
    """A loaded TFLite runtime: its name, distribution and Interpreter class; ``version`` is the
    package's ``__version__`` (ai_edge_litert, tflite_runtime and tensorflow all have one), looked
    up in the distribution's metadata only where it is missing (importlib.metadata costs ~35 ms and
    2.3 MiB of kws-listen's peak RSS)."""

    name: str
    dist: str
    interpreter_class: Callable[..., Any]

    @property
    def version(self) -> str:
        package = sys.modules.get(getattr(self.interpreter_class, "__module__", "").split(".")[0])
        found = getattr(package, "__version__", None)
        return found if isinstance(found, str) and found else _version(self.dist)


def install_hint(machine: str | None = None, python: tuple[int, int] | None = None) -> str:
    """What to pip-install for a TFLite runtime on ``machine`` under ``python`` (default: this one)."""
    if machine is None:
        import platform  # only for this message: a start-up that finds a runtime never loads it

        machine = platform.machine()
    machine = machine.lower()
    py = python or sys.version_info[:2]
    if machine in ARM32_MACHINES:
        hint = "pip install 'tflite-runtime==2.14.0' 'numpy<2'  (32-bit ARM: ai-edge-litert has no wheel"
        if TFLITE_RUNTIME_PYTHONS[0] <= py <= TFLITE_RUNTIME_PYTHONS[1]:
            return hint + ")"
        return (f"{hint}, and tflite-runtime 2.14.0 has none for Python {py[0]}.{py[1]}: "
                f"use Python {_span(TFLITE_RUNTIME_PYTHONS)}, or a 64-bit OS)")
    if machine in LITERT_MACHINES and LITERT_PYTHONS[0] <= py <= LITERT_PYTHONS[1]:
        return "pip install ai-edge-litert"
    return f"pip install ai-edge-litert (wheels: Python {_span(LITERT_PYTHONS)} on x86_64/aarch64) or tensorflow"


def _span(pythons: tuple[tuple[int, int], tuple[int, int]]) -> str:
    """'3.10-3.14' for ((3, 10), (3, 14))."""
    return "-".join(f"{major}.{minor}" for major, minor in pythons)


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001 - version is informational only
        return "unknown"


def _try_load(name: str, module: str, dist: str) -> Runtime | None:
    try:
        if name == TF_LITE:  # TensorFlow's C++ start-up notices, not the tool's output
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            with native_stderr_silenced():
                mod = importlib.import_module(module)
        else:
            mod = importlib.import_module(module)
        cls = mod.Interpreter
    except Exception:  # noqa: BLE001 - ImportError, or a runtime built for another numpy
        return None
    return Runtime(name, dist, cls)


_CACHE: dict[str, Runtime] = {}


def load_runtime(name: str | None = None) -> Runtime:
    """The runtime named (or by $KWS_TFLITE_RUNTIME), else the first that imports.

    Raises RuntimeMissingError with the pip line for this platform if none does."""
    wanted = name or os.environ.get(RUNTIME_ENV) or ""
    if wanted:
        key = RUNTIME_ALIASES.get(wanted.lower())
        if key is None:
            raise RuntimeMissingError(f"unknown TFLite runtime {wanted!r} (choose litert-c, litert, "
                                      f"tflite-runtime or tf)")
        if key == LITERT_C:
            raise RuntimeMissingError("litert-c is not a Python interpreter; use pick_runtime")
        candidates = [r for r in RUNTIMES if r[0] == key]
    else:
        key = "auto"
        candidates = list(RUNTIMES)
    if key in _CACHE:
        return _CACHE[key]
    for rname, module, dist in candidates:
        runtime = _try_load(rname, module, dist)
        if runtime is not None:
            _CACHE[key] = runtime
            return runtime
    if wanted:  # the runtime asked for by name is the one to install, not the first choice here
        raise RuntimeMissingError(f"the TFLite runtime {wanted!r} does not import; install it: "
                                  f"{NAMED_RUNTIME_INSTALL.get(key) or install_hint()}")
    raise RuntimeMissingError(f"no TFLite runtime is installed; install one: {install_hint()}")


def pick_runtime(name: str | None = None) -> Runtime | Any:
    """The runtime to run a model with: the one named (or by $KWS_TFLITE_RUNTIME), else ai-edge-litert's
    C API where libLiteRt.so loads (a ``litert_c.CRuntime``), else what ``load_runtime`` finds.

    Raises RuntimeMissingError for an unknown name, or ``litert-c`` asked for and not loading."""
    wanted = name or os.environ.get(RUNTIME_ENV) or ""
    key = RUNTIME_ALIASES.get(wanted.lower()) if wanted else None
    if not wanted or key == LITERT_C:
        from . import litert_c

        api = litert_c.load()
        if api is not None:
            return api.runtime
        if key == LITERT_C:
            raise RuntimeMissingError(f"the TFLite runtime 'litert-c' does not load (ai-edge-litert "
                                      f"{', '.join(v + 'x' for v in litert_c.TESTED_VERSIONS)} with "
                                      f"libLiteRt.so); install one: pip install ai-edge-litert")
    return load_runtime(name)


def is_c_api(runtime: Any) -> bool:
    """Whether ``runtime`` (from pick_runtime) is the C API rather than a Python interpreter."""
    return getattr(runtime, "name", None) == LITERT_C


def named_c_api(name: str | None) -> bool:
    """Whether the C API was asked for by name (``runtime=`` or $KWS_TFLITE_RUNTIME), not picked."""
    return RUNTIME_ALIASES.get((name or os.environ.get(RUNTIME_ENV) or "").lower()) == LITERT_C


def _tflite_bytes(path: Path, what: str, head_only: bool = False) -> bytes:
    """The bytes of a .tflite file (only its first 8 with ``head_only``), checked for the TFLite
    identifier; ModelLoadError (one line naming the file) where it cannot be read or is no TFLite model."""
    try:
        with open(path, "rb") as f:
            content = f.read(8) if head_only else f.read()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if len(content) < 8 or content[4:8] != b"TFL3":
        raise ModelLoadError(f"{path}: not a TFLite model (no TFL3 identifier; truncated or another format)")
    return content


def open_runtime_model(path: Path, runtime: str | None, num_threads: int = 1,
                       what: str = "model") -> tuple[Any, Any, Any]:
    """(runtime, compiled model, interpreter) for the .tflite at ``path``, one of the last two None: the
    C API's compiled model where ``pick_runtime(runtime)`` is the C API and it runs this model, else an
    interpreter of a Python runtime (the C API's refusal is an error only where it was named)."""
    picked = pick_runtime(runtime)
    if is_c_api(picked):
        compiled = open_compiled(path, what=what, fallback=not named_c_api(runtime))
        if compiled is not None:
            return picked, compiled, None
        picked = load_runtime(runtime)  # a model the C binding does not run: the Python interpreter
    return picked, None, open_interpreter(path, picked, num_threads, what=what)


def open_compiled(path: Path, what: str = "model", fallback: bool = False) -> Any:
    """A ``litert_c.CompiledModel`` of the .tflite at ``path``; ModelLoadError (one line naming the
    file) where it cannot be read, is not a TFLite flatbuffer, or the C API refuses it. ``fallback``:
    None instead of the C API's refusal (a model the binding does not run, e.g. a dynamic batch
    dimension, or one LiteRT's C API does not load or compile): the caller then opens it with a Python
    interpreter, which runs it or says in its own words why not."""
    from . import litert_c

    _tflite_bytes(path, what, head_only=True)
    crash = _crash_in_child(lambda: litert_c.CompiledModel(path, what=what).run())
    if crash:
        raise ModelLoadError(f"{path}: not a valid TFLite {what} (LiteRT's C API crashed loading and "
                             f"running it: {crash}; the file is damaged or was not written by a converter)")
    try:
        return litert_c.CompiledModel(path, what=what)
    except litert_c.CApiError as exc:
        if fallback:
            return None
        raise ModelLoadError(str(exc)) from None


def _crash_in_child(load: Callable[[], Any], timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """Run ``load`` once in a forked child and say how it died ("signal SIGSEGV"), or None where it
    returned, raised (the caller's own load then says why in its error) or could not be probed (no
    fork on this platform, or no answer within ``timeout_s``). LiteRT's C API does not verify a
    flatbuffer before reading it, so a truncated or altered .tflite can crash the process; the child
    crashes instead of the tool."""
    if not hasattr(os, "fork"):
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:  # the child: never returns into the caller's code
        code = 1
        try:
            import faulthandler

            faulthandler.disable()  # its crash is the answer, not a report (pytest turns the handler on)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            load()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # SIGCHLD ignored by the host program: the child was reaped unseen
            return None
        if done:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            return None
        time.sleep(PROBE_POLL_S)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"signal {signal.Signals(number).name}"
        except ValueError:
            return f"signal {number}"
    return None


def _spec(detail: dict) -> TensorSpec:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorSpec(shape=tuple(int(d) for d in detail["shape"]), dtype=np.dtype(detail["dtype"]).name,
                      scale=float(scale), zero_point=int(zero_point))


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float values to the integer type of ``spec`` with its scale and zero point (round, clip)."""
    lo, hi = INT8_RANGE if spec.dtype == "int8" else UINT8_RANGE
    q = np.round(np.asarray(values, np.float32) / spec.scale) + spec.zero_point
    return np.clip(q, lo, hi).astype(spec.dtype)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Integer tensor values to float with the scale and zero point of ``spec``."""
    return ((np.asarray(values, np.float32) - spec.zero_point) * spec.scale).astype(np.float32)


@contextlib.contextmanager
def native_stderr_silenced():
    """Hide a runtime's native log lines on fd 2 while it loads (XNNPACK's "INFO: Created TensorFlow Lite
    XNNPACK delegate", LiteRT's environment and accelerator registry)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def same_tensor(listed: TensorSpec, actual: TensorSpec) -> bool:
    """Whether a manifest's description of a tensor matches the model's: shape, type and, for a
    quantized tensor, its scale (to 1e-6 relative) and zero point."""
    if tuple(listed.shape) != tuple(actual.shape) or listed.dtype != actual.dtype:
        return False
    return not actual.quantized or (abs(listed.scale - actual.scale) <= 1e-6 * max(1.0, abs(actual.scale))
                                    and listed.zero_point == actual.zero_point)


def open_interpreter(path: Path, runtime: Runtime, num_threads: int = 1, what: str = "model") -> Any:
    """An allocated interpreter of ``runtime`` for the .tflite at ``path``; ModelLoadError (one line
    naming the file) when it cannot be read, is not a TFLite flatbuffer, or the runtime refuses it."""
    content = _tflite_bytes(path, what)
    try:
        with native_stderr_silenced(), warnings.catch_warnings():
            # tf.lite.Interpreter warns that it is deprecated for ai-edge-litert: asked for, it runs
            warnings.simplefilter("ignore", UserWarning)
            interpreter = runtime.interpreter_class(model_content=content, num_threads=num_threads)
            interpreter.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - runtimes raise ValueError/RuntimeError with long texts
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{path}: {runtime.name} cannot load this {what}: {first}") from None
    return interpreter


class TFLiteModel:
    """One .tflite classifier: ``predict(features)`` takes float features of the model's input shape
    (without or with the batch dimension of 1) and returns float probabilities per label."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1, runtime: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: no such model file")
        self.size_bytes = self.path.stat().st_size
        self.num_threads = num_threads
        self.runtime, self._compiled, self._interpreter = open_runtime_model(self.path, runtime, num_threads)
        if self._compiled is not None:
            specs, out_specs = self._compiled.input_specs, self._compiled.output_specs
            if len(specs) != 1 or len(out_specs) != 1:
                raise ModelLoadError(f"{self.path}: expected one input and one output, "
                                     f"found {len(specs)} and {len(out_specs)}")
            self.input_spec, self.output_spec = specs[0], out_specs[0]
            self._in_array, self._out_array = self._compiled.inputs[0], self._compiled.outputs[0]
            return
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(f"{self.path}: expected one input and one output, "
                                 f"found {len(inputs)} and {len(outputs)}")
        self._in_index = inputs[0]["index"]
        self._out_index = outputs[0]["index"]
        self.input_spec = _spec(inputs[0])
        self.output_spec = _spec(outputs[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input_spec.shape

    @property
    def num_labels(self) -> int:
        return int(self.output_spec.shape[-1])

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Probabilities (float32, one per label) for one example of float features."""
        x = np.asarray(features, np.float32).reshape(self.input_spec.shape)
        if self.input_spec.quantized:
            x = quantize(x, self.input_spec)
        elif self.input_spec.dtype != "float32":
            raise ModelLoadError(f"{self.path}: unsupported input type {self.input_spec.dtype}")
        if self._compiled is not None:
            np.copyto(self._in_array, x)
            self._compiled.run()
            y = self._out_array.copy()  # the output buffer is reused by the next run
        else:
            self._interpreter.set_tensor(self._in_index, x)
            self._interpreter.invoke()
            y = self._interpreter.get_tensor(self._out_index)
        if self.output_spec.quantized:
            y = dequantize(y, self.output_spec)
        return np.asarray(y, np.float32).reshape(-1)

    def predict_batch(self, features: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of examples, (n, labels); the model itself runs batch 1."""
        feats = np.asarray(features, np.float32)
        if len(feats) == 0:
            return np.zeros((0, self.num_labels), np.float32)
        return np.stack([self.predict(f) for f in feats])

    def check_entry(self, entry: ModelEntry, manifest_path: str | os.PathLike = "manifest") -> None:
        """Raise ManifestError if the manifest's description of this model does not match it."""
        for what, spec, actual in (("input", entry.input, self.input_spec),
                                   ("output", entry.output, self.output_spec)):
            if tuple(spec.shape) != tuple(actual.shape) or spec.dtype != actual.dtype:
                raise ManifestError(f"{manifest_path}: says the {what} of {self.path.name} is "
                                    f"{spec.dtype}{list(spec.shape)}, the model has {actual.dtype}{list(actual.shape)}")
            if not same_tensor(spec, actual):
                raise ManifestError(f"{manifest_path}: {what} quantization of {self.path.name} "
                                    f"({spec.scale}, {spec.zero_point}) differs from the model's "
                                    f"({actual.scale}, {actual.zero_point})")
