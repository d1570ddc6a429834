"""Which ops (with versions) a .tflite uses, and whether the oldest runtime we support runs them.

The oldest runtime is tflite-runtime 2.14.0 (the last release, and the only one on 32-bit
Raspberry Pi OS). ``TFLITE_RUNTIME_2_14_MAX_VERSIONS`` holds the highest version of each builtin
op that its BuiltinOpResolver registers. The numbers were measured: a one-op-code flatbuffer per
(op, version) was loaded by tflite-runtime 2.14.0 and the highest version it accepted recorded
(tests/test_convert.py re-checks them against ``.venv-edge`` when that environment exists).
So e.g. CONV_2D v8, FULLY_CONNECTED v11 and RESHAPE v2 need a runtime newer than 2.14.
"""
from __future__ import annotations

from dataclasses import dataclass

from .flatbuffer import ModelInfo

OLDEST_RUNTIME = "tflite-runtime 2.14.0"

# builtin op -> highest version tflite-runtime 2.14.0 can run (measured, see module docstring)
TFLITE_RUNTIME_2_14_MAX_VERSIONS: dict[str, int] = {
    "ADD": 5,
    "ARG_MAX": 3,
    "AVERAGE_POOL_2D": 3,
    "BATCH_MATMUL": 4,
    "CAST": 5,
    "CONCATENATION": 4,
    "CONV_2D": 7,
    "DEPTHWISE_CONV_2D": 7,
    "DEQUANTIZE": 5,
    "EXPAND_DIMS": 1,
    "FULLY_CONNECTED": 10,
    "GATHER": 6,
    "HARD_SWISH": 1,
    "LEAKY_RELU": 2,
    "LOG": 1,
    "LOGISTIC": 3,
    "MAXIMUM": 4,
    "MAX_POOL_2D": 3,
    "MEAN": 3,
    "MINIMUM": 4,
    "MUL": 7,
    "PACK": 4,
    "PAD": 4,
    "QUANTIZE": 3,
    "RELU": 3,
    "RELU6": 3,
    "RESHAPE": 1,
    "SHAPE": 1,
    "SLICE": 6,
    "SOFTMAX": 3,
    "SPLIT": 4,
    "SQUEEZE": 2,
    "STRIDED_SLICE": 8,
    "SUB": 5,
    "SUM": 2,
    "TANH": 3,
    "TRANSPOSE": 6,
}

# TFLite Micro's MicroMutableOpResolver method for each builtin op kws's window and step models can hold
# (Add<Name>(), but not always the name's CamelCase: BATCH_MATMUL is AddBatchMatMul); for an op not
# here the C header is refused (kws.converters.carray) rather than given a guessed method
MICRO_RESOLVER_METHODS: dict[str, str] = {
    "ADD": "AddAdd",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "EXPAND_DIMS": "AddExpandDims",
    "FULLY_CONNECTED": "AddFullyConnected",
    "LOGISTIC": "AddLogistic",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MUL": "AddMul",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "QUANTIZE": "AddQuantize",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "SHAPE": "AddShape",
    "SLICE": "AddSlice",  # a step model's state plumbing may hold it (kws.converters.streaming.STATE_OPS)
    "SOFTMAX": "AddSoftmax",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "TANH": "AddTanh",
}


@dataclass(frozen=True)
class OpUse:
    """One (op, version) a model uses, how often, and whether tflite-runtime 2.14 runs it."""

    name: str
    version: int
    count: int
    custom: bool
    max_supported: int | None  # None: op unknown to the table

    @property
    def supported(self) -> bool:
        return not self.custom and self.max_supported is not None and self.version <= self.max_supported

    def to_dict(self) -> dict:
        return {"op": self.name, "version": self.version, "count": self.count, "custom": self.custom,
                "max_version_tflite_runtime_2_14": self.max_supported, "supported": self.supported}

    def describe(self) -> str:
        return f"{self.name} v{self.version}"


def op_uses(info: ModelInfo) -> list[OpUse]:
    """Every (op, version) of a parsed model with its support in tflite-runtime 2.14."""
    custom = {(c.name, c.version) for c in info.opcodes if c.custom}
    return [OpUse(name, version, count, (name, version) in custom,
                  None if (name, version) in custom else TFLITE_RUNTIME_2_14_MAX_VERSIONS.get(name))
            for (name, version), count in info.op_counts().items()]


def unsupported(uses: list[OpUse]) -> list[str]:
    """Human descriptions of the ops tflite-runtime 2.14 cannot run (empty when all are fine)."""
    out = []
    for u in uses:
        if u.custom:
            out.append(f"custom op {u.name} (not a builtin)")
        elif u.max_supported is None:
            out.append(f"{u.describe()} (not in the table of ops checked against {OLDEST_RUNTIME})")
        elif u.version > u.max_supported:
            out.append(f"{u.describe()} ({OLDEST_RUNTIME} runs up to v{u.max_supported})")
    return out


def micro_method(op_name: str) -> str | None:
    """The MicroMutableOpResolver method registering an op: AddConv2D, AddFullyConnected ...; None
    for an op outside MICRO_RESOLVER_METHODS."""
    return MICRO_RESOLVER_METHODS.get(op_name)
