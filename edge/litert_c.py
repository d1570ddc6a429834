"""LiteRT's C API through ctypes: ``libLiteRt.so`` from the ai-edge-litert wheel, without importing the
``ai_edge_litert`` package (whose pybind interpreter loads the 18 MB ``libpywrap_litert_common.so``:
+8.7 MiB of kws-listen's peak RSS, against +3 MiB for libLiteRt.so, measured).

A ``CompiledModel`` runs one .tflite on the CPU (XNNPACK) through ``LiteRtCreateCompiledModel``, its
inputs and outputs bound once to tensor buffers over preallocated, 64-byte aligned numpy arrays
(``LiteRtCreateTensorBufferFromHostMemory``): a run is writing the input arrays, one
``LiteRtRunCompiledModel`` call, reading the output arrays; nothing is allocated per run.

The C API changes between releases (``LiteRtCreateModelFromFile`` gained an environment argument, the
``LiteRtRankedTensorType`` struct grew to 72 bytes) and a wrong signature is a crash, not an error, so
only the wheel versions in ``TESTED_VERSIONS`` are used: their exported functions were checked against
the headers and disassembly. Any other version, a missing library or a failure while loading it makes
``load()`` return None and the caller falls back to ai-edge-litert's Python interpreter.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import KwsError
from .manifest import TensorSpec
from .packages import installed_package_dir
from .runtime import native_stderr_silenced

NAME = "litert-c"
DIST = "ai-edge-litert"
LIBRARY = "libLiteRt.so"
PACKAGE = "ai_edge_litert"
# wheel versions (prefixes) whose C API this module's signatures were checked against
TESTED_VERSIONS = ("2.3.",)
HOST_ALIGNMENT = 64  # LITERT_HOST_MEMORY_BUFFER_ALIGNMENT
RANKED_TYPE_BYTES = 72  # sizeof(LiteRtRankedTensorType) in 2.3: element type, rank, 8 dims, strides
RANKED_TYPE_ROOM = 256  # what is handed to LiteRtGetRankedTensorType (room for a larger struct)
MAX_RANK = 8
HW_CPU = 1  # kLiteRtHwAcceleratorCpu
QUANT_PER_TENSOR = 1  # kLiteRtQuantizationPerTensor
# LiteRtElementType (the TfLiteType values) -> numpy dtype name
ELEMENT_TYPES = {1: "float32", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
STATUS = {1: "invalid argument", 2: "memory allocation failure", 3: "runtime failure",
          4: "missing input tensor", 5: "unsupported", 6: "not found", 8: "wrong version", 9: "unknown",
          500: "file I/O error", 501: "invalid flatbuffer", 502: "dynamic loading failed",
          504: "compilation failed"}

_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_S = ctypes.c_size_t
_PS = ctypes.POINTER(ctypes.c_size_t)
_I = ctypes.c_int
_STR = ctypes.c_char_p
# (name, argument types); every function returns LiteRtStatus (int) unless listed in _VOID
_SIGNATURES = {
    "LiteRtCreateEnvironment": (_I, _P, _PP),
    "LiteRtCreateModelFromFile": (_P, _STR, _PP),  # (environment, path, model*) since 2.x
    "LiteRtDestroyModel": (_P,),
    "LiteRtGetNumModelSignatures": (_P, _PS),
    "LiteRtGetModelSignature": (_P, _S, _PP),
    "LiteRtGetSignatureSubgraph": (_P, _PP),
    "LiteRtGetNumSignatureInputs": (_P, _PS),
    "LiteRtGetNumSignatureOutputs": (_P, _PS),
    "LiteRtGetSignatureInputTensorByIndex": (_P, _S, _PP),
    "LiteRtGetSignatureOutputTensorByIndex": (_P, _S, _PP),
    "LiteRtGetNumSubgraphInputs": (_P, _PS),
    "LiteRtGetNumSubgraphOutputs": (_P, _PS),
    "LiteRtGetSubgraphInput": (_P, _S, _PP),
    "LiteRtGetSubgraphOutput": (_P, _S, _PP),
    "LiteRtGetRankedTensorType": (_P, _P),
    "LiteRtGetQuantizationTypeId": (_P, ctypes.POINTER(_I)),
    "LiteRtGetPerTensorQuantization": (_P, _P),
    "LiteRtCreateOptions": (_PP,),
    "LiteRtSetOptionsHardwareAccelerators": (_P, _I),
    "LiteRtDestroyOptions": (_P,),
    "LiteRtCreateCompiledModel": (_P, _P, _P, _PP),
    "LiteRtDestroyCompiledModel": (_P,),
    "LiteRtCreateTensorBufferFromHostMemory": (_P, _P, _S, _P, _PP),
    "LiteRtGetTensorBufferPackedSize": (_P, _PS),
    "LiteRtDestroyTensorBuffer": (_P,),
    "LiteRtRunCompiledModel": (_P, _S, _S, _PP, _S, _PP),
}
_VOID = {"LiteRtDestroyModel", "LiteRtDestroyOptions", "LiteRtDestroyCompiledModel", "LiteRtDestroyTensorBuffer"}


class CApiError(KwsError):
    """The C API refused a call (a model it cannot load or run)."""


class UnsupportedModel(CApiError):
    """A model this binding does not run (dynamic shapes, an element or quantization type it does not
    map, no signature): the caller may run it with the Python interpreter instead."""


@dataclass(frozen=True)
class CRuntime:
    """What kws-listen names as the runtime: ``litert-c`` and the wheel's version."""

    name: str
    dist: str
    version: str
    library: str


def status_text(status: int) -> str:
    return f"status {status} ({STATUS.get(status, 'unknown')})"


def find_library() -> tuple[Path, str] | None:
    """(libLiteRt.so, wheel version) of the installed ai-edge-litert, found without importing it; None
    where the package or the library is not there."""
    folder = installed_package_dir(PACKAGE)
    if folder is None:
        return None
    lib = folder / LIBRARY
    if not lib.is_file():
        return None
    version = "unknown"
    for info in folder.parent.glob(f"{PACKAGE}-*.dist-info"):
        version = info.name[len(PACKAGE) + 1:-len(".dist-info")]
        break
    return lib, version


class _Api:
    """The bound functions of one libLiteRt.so and the process's LiteRT environment."""

    def __init__(self, lib_path: Path, version: str):
        cdll = ctypes.CDLL(str(lib_path))
        for name, args in _SIGNATURES.items():
            fn = getattr(cdll, name)  # AttributeError where the library lacks one
            fn.argtypes = list(args)
            fn.restype = None if name in _VOID else ctypes.c_int
            setattr(self, name[len("LiteRt"):], fn)
        self.runtime = CRuntime(NAME, DIST, version, str(lib_path))
        self.env = _P()
        with native_stderr_silenced():
            status = self.CreateEnvironment(0, None, ctypes.byref(self.env))
        if status or not self.env:
            raise CApiError(f"LiteRtCreateEnvironment: {status_text(status)}")


_API: list = []  # [] not tried yet; [None] unavailable; [_Api]


def load() -> _Api | None:
    """The C API of the installed ai-edge-litert, once per process; None (silently) where there is no
    libLiteRt.so, its version is not one this module was checked against, or it does not load."""
    if not _API:
        api = None
        found = find_library()
        if found is not None and found[1].startswith(TESTED_VERSIONS):
            try:
                api = _Api(*found)
            except (OSError, AttributeError, CApiError):
                api = None
        _API.append(api)
    return _API[0]


def _aligned(nbytes: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed array of ``shape`` whose data starts on a HOST_ALIGNMENT boundary."""
    raw = np.zeros(nbytes + HOST_ALIGNMENT, np.uint8)
    start = (-raw.ctypes.data) % HOST_ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


class CompiledModel:
    """One .tflite compiled for the CPU, inputs and outputs in the model's (subgraph) order, as numpy
    arrays that the tensor buffers are bound to: write ``inputs``, ``run()``, read ``outputs``."""

    def __init__(self, path: str | os.PathLike, api: _Api | None = None, what: str = "model"):
        self.api = api or load()
        if self.api is None:
            raise CApiError("libLiteRt.so (ai-edge-litert's C API) is not available")
        self.path = Path(path)
        self._what = what
        self._model = _P()
        self._compiled = _P()
        self._buffers: list[ctypes.c_void_p] = []
        a = self.api
        with native_stderr_silenced():
            status = a.CreateModelFromFile(a.env, os.fsencode(self.path), ctypes.byref(self._model))
        if status or not self._model:
            self._model = _P()
            raise CApiError(f"{self.path}: {NAME} cannot load this {what} ({status_text(status)})")
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _fail(self, call: str, status: int) -> CApiError:
        return CApiError(f"{self.path}: {NAME} cannot run this {self._what}: {call} {status_text(status)}")

    def _unsupported(self, what: str) -> UnsupportedModel:
        return UnsupportedModel(f"{self.path}: {NAME} does not run this {self._what}: {what}")

    def _check(self, call: str, status: int) -> None:
        if status:
            raise self._fail(call, status)

    def _open(self) -> None:
        a = self.api
        count = _S()
        self._check("GetNumModelSignatures", a.GetNumModelSignatures(self._model, ctypes.byref(count)))
        if count.value < 1:
            raise self._unsupported("it has no signature")
        sig, sub = _P(), _P()
        self._check("GetModelSignature", a.GetModelSignature(self._model, 0, ctypes.byref(sig)))
        self._check("GetSignatureSubgraph", a.GetSignatureSubgraph(sig, ctypes.byref(sub)))
        ins = self._tensors(a.GetNumSubgraphInputs, a.GetSubgraphInput, sub)
        outs = self._tensors(a.GetNumSubgraphOutputs, a.GetSubgraphOutput, sub)
        # the run takes buffers in the signature's order; the callers use the subgraph's (the
        # Python interpreter's get_input_details order): map each by the tensor handle
        in_order = self._order(ins, a.GetNumSignatureInputs, a.GetSignatureInputTensorByIndex, sig)
        out_order = self._order(outs, a.GetNumSignatureOutputs, a.GetSignatureOutputTensorByIndex, sig)
        options = _P()
        self._check("CreateOptions", a.CreateOptions(ctypes.byref(options)))
        try:
            self._check("SetOptionsHardwareAccelerators", a.SetOptionsHardwareAccelerators(options, HW_CPU))
            with native_stderr_silenced():
                status = a.CreateCompiledModel(a.env, self._model, options, ctypes.byref(self._compiled))
        finally:
            a.DestroyOptions(options)
        if status or not self._compiled:
            self._compiled = _P()
            raise CApiError(f"{self.path}: {NAME} cannot compile this {self._what} ({status_text(status)})")
        self.input_specs, self.inputs, in_bufs = self._bind(ins)
        self.output_specs, self.outputs, out_bufs = self._bind(outs)
        self._in_order, self._out_order = in_order, out_order
        self._in_bufs, self._out_bufs = in_bufs, out_bufs
        self._in_array = (_P * len(ins))(*[in_bufs[i] for i in in_order])
        self._out_array = (_P * len(outs))(*[out_bufs[i] for i in out_order])
        self._n_in, self._n_out = _S(len(ins)), _S(len(outs))
        self._run = a.RunCompiledModel
        self._swaps: tuple = ()

    def alternate(self, pairs: list[tuple[int, int]]) -> None:
        """Make each (input i, output j) pair trade buffers on every run: after a run the values output
        j wrote are what input i reads next (a step model's states), with nothing copied. ``inputs`` and
        ``outputs`` stay the arrays of phase 0; in phase 1 (after an odd number of runs) input i reads
        ``outputs[j]`` and output j writes ``inputs[i]``."""
        for i, j in pairs:
            if self.input_specs[i] != self.output_specs[j]:
                raise CApiError(f"{self.path}: input {i} and output {j} differ: cannot alternate them")
        swapped_in, swapped_out = list(self._in_bufs), list(self._out_bufs)
        for i, j in pairs:
            swapped_in[i], swapped_out[j] = self._out_bufs[j], self._in_bufs[i]
        second = ((_P * len(swapped_in))(*[swapped_in[i] for i in self._in_order]),
                  (_P * len(swapped_out))(*[swapped_out[i] for i in self._out_order]))
        self._swaps = (((self._in_array, self._out_array), second), tuple(pairs))
        self.phase = 0

    @staticmethod
    def _tensors(count_fn, get_fn, owner) -> list[int]:
        n = _S()
        if count_fn(owner, ctypes.byref(n)):
            raise CApiError("cannot count the tensors")
        handles = []
        for i in range(n.value):
            t = _P()
            if get_fn(owner, i, ctypes.byref(t)) or not t:
                raise CApiError(f"cannot get tensor {i}")
            handles.append(t.value)
        return handles

    def _order(self, tensors: list[int], count_fn, get_fn, sig) -> list[int]:
        """For each signature position, the subgraph position of its tensor."""
        listed = self._tensors(count_fn, get_fn, sig)
        if sorted(listed) != sorted(tensors):
            raise self._unsupported("its signature and its subgraph list different tensors")
        return [tensors.index(t) for t in listed]

    def _spec(self, tensor: int) -> tuple[TensorSpec, ctypes.Array]:
        a = self.api
        room = (ctypes.c_ubyte * RANKED_TYPE_ROOM)()
        self._check("GetRankedTensorType", a.GetRankedTensorType(tensor, room))
        head = np.frombuffer(bytes(room)[:8 + 4 * MAX_RANK], np.int32)
        element, rank = int(head[0]), int(head[1])
        if element not in ELEMENT_TYPES or not 0 <= rank <= MAX_RANK:
            raise self._unsupported(f"a tensor of element type {element}, rank {rank}")
        shape = tuple(int(d) for d in head[2:2 + rank])
        if any(d < 1 for d in shape):
            raise self._unsupported(f"a tensor of dynamic shape {list(shape)}")
        qtype = _I()
        self._check("GetQuantizationTypeId", a.GetQuantizationTypeId(tensor, ctypes.byref(qtype)))
        scale, zero = 0.0, 0
        if qtype.value == QUANT_PER_TENSOR:
            q = (ctypes.c_ubyte * 16)()  # LiteRtQuantizationPerTensor: float scale; int64 zero_point (at 8)
            self._check("GetPerTensorQuantization", a.GetPerTensorQuantization(tensor, q))
            scale = float(np.frombuffer(bytes(q)[:4], np.float32)[0])
            zero = int(np.frombuffer(bytes(q)[8:16], np.int64)[0])
        elif qtype.value != 0:
            raise self._unsupported(f"quantization type {qtype.value} (only per-tensor)")
        return TensorSpec(shape=shape, dtype=ELEMENT_TYPES[element], scale=scale, zero_point=zero), room

    def _bind(self, tensors: list[int]):
        a = self.api
        specs, arrays, buffers = [], [], []
        for t in tensors:
            spec, ranked = self._spec(t)
            nbytes = int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
            array = _aligned(nbytes, spec.dtype, spec.shape)
            buf = _P()
            self._check("CreateTensorBufferFromHostMemory", a.CreateTensorBufferFromHostMemory(
                ranked, array.ctypes.data, nbytes, None, ctypes.byref(buf)))
            self._buffers.append(buf)
            packed = _S()
            self._check("GetTensorBufferPackedSize", a.GetTensorBufferPackedSize(buf, ctypes.byref(packed)))
            if packed.value != nbytes:  # the struct read does not describe this tensor: refuse it
                raise self._unsupported(f"a buffer of {packed.value} bytes for {spec}")
            specs.append(spec)
            arrays.append(array)
            buffers.append(buf.value)
        return tuple(specs), tuple(arrays), buffers

    def run(self) -> None:
        """One inference: reads ``inputs``, writes ``outputs``."""
        status = self._run(self._compiled, 0, self._n_in, self._in_array, self._n_out, self._out_array)
        if status:
            raise self._fail("RunCompiledModel", status)

    def run_alternating(self) -> None:
        """One inference with the pairs of ``alternate`` traded afterwards (``inputs``/``outputs`` are
        then the next run's)."""
        status = self._run(self._compiled, 0, self._n_in, self._in_array, self._n_out, self._out_array)
        if status:
            raise self._fail("RunCompiledModel", status)
        self.phase ^= 1
        self._in_array, self._out_array = self._swaps[0][self.phase]

    def close(self) -> None:
        api = getattr(self, "api", None)
        if api is None:
            return
        # the compiled model first (it may hold the buffers it ran with), then the buffers (over our
        # arrays, which live as long as this object), then the model
        if getattr(self, "_compiled", None):
            api.DestroyCompiledModel(self._compiled)
            self._compiled = _P()
        for buf in getattr(self, "_buffers", ()):
            api.DestroyTensorBuffer(buf)
        self._buffers = []
        if getattr(self, "_model", None):
            api.DestroyModel(self._model)
            self._model = _P()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()
