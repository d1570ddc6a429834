"""A small read-only parser of the .tflite flatbuffer: operator codes (with versions), tensors,
operators and buffer sizes of the main subgraph. Pure Python, no TensorFlow and no flatbuffers
package, so it also runs next to an edge runtime.

Field numbers follow tensorflow/lite/schema/schema.fbs (Model, OperatorCode, SubGraph, Tensor,
Operator, Buffer).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from kws.edge.errors import KwsError

FILE_IDENTIFIER = b"TFL3"
# BuiltinOperator values that fit the int8 deprecated_builtin_code; codes above use builtin_code
PLACEHOLDER_FOR_GREATER_OP_CODES = 127
CUSTOM_CODE = 32

# Model table fields
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_DESCRIPTION, MODEL_BUFFERS = 1, 2, 3, 4
# OperatorCode fields
OPCODE_DEPRECATED_BUILTIN, OPCODE_CUSTOM, OPCODE_VERSION, OPCODE_BUILTIN = 0, 1, 2, 3
# SubGraph fields
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 1, 2, 3
# Tensor fields
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME, TENSOR_QUANTIZATION = 0, 1, 2, 3, 4
# QuantizationParameters fields
QUANT_SCALE, QUANT_ZERO_POINT = 2, 3
# Operator fields
OPERATOR_OPCODE_INDEX, OPERATOR_INPUTS, OPERATOR_OUTPUTS = 0, 1, 2
# Buffer fields
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2

# TensorType -> (name, bytes per element)
TENSOR_TYPES = {
    0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 3: ("uint8", 1), 4: ("int64", 8),
    5: ("string", 1), 6: ("bool", 1), 7: ("int16", 2), 8: ("complex64", 8), 9: ("int8", 1),
    10: ("float64", 8), 11: ("complex128", 16), 12: ("uint64", 8), 13: ("resource", 1),
    14: ("variant", 1), 15: ("uint32", 4), 16: ("uint16", 2), 17: ("int4", 1),
}

# BuiltinOperator enum of schema.fbs (the codes up to those newer than any runtime we target)
BUILTIN_OPERATORS = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION",
    "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D",
    "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX",
    "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE", "PAD", "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG",
    "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE", "SIN", "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM", "SQRT", "RSQRT",
    "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK", "LOGICAL_OR",
    "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY",
    "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU",
    "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N",
    "GATHER_ND", "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE",
    "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE", "BROADCAST_TO", "RFFT2D", "CONV_3D",
    "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE",
    "REDUCE_ALL", "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
    "BROADCAST_ARGS", "RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM", "MULTINOMIAL", "GELU",
    "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM", "ATAN2", "UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST", "BITWISE_XOR",
    "RIGHT_SHIFT",
)


class FlatbufferError(KwsError):
    """A file is not a readable TFLite flatbuffer."""


def builtin_name(code: int) -> str:
    """The schema name of a BuiltinOperator code (``BUILTIN_<n>`` for codes newer than this table)."""
    return BUILTIN_OPERATORS[code] if 0 <= code < len(BUILTIN_OPERATORS) else f"BUILTIN_{code}"


@dataclass(frozen=True)
class OpCode:
    """One entry of Model.operator_codes: the builtin op (or custom name) and its version."""

    code: int
    name: str
    version: int
    custom: bool = False


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main subgraph."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    element_bytes: int
    buffer: int
    constant: bool
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()

    @property
    def num_bytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(int(d), 1)
        return n * self.element_bytes


@dataclass(frozen=True)
class OperatorInfo:
    """One operator of the main subgraph, in execution order."""

    opcode_index: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What a .tflite holds: op codes, the main subgraph's tensors, operators, inputs, outputs."""

    description: str
    opcodes: tuple[OpCode, ...]
    tensors: tuple[TensorInfo, ...]
    operators: tuple[OperatorInfo, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    num_subgraphs: int

    def op_counts(self) -> dict[tuple[str, int], int]:
        """(op name, version) -> how many operators use it, in first-use order."""
        counts: dict[tuple[str, int], int] = {}
        for op in self.operators:
            code = self.opcodes[op.opcode_index]
            key = (code.name, code.version)
            counts[key] = counts.get(key, 0) + 1
        return counts


class _Reader:
    """Random access to flatbuffer tables, vectors and scalars of one byte buffer."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source

    def _unpack(self, fmt: str, pos: int):
        try:
            return struct.unpack_from(fmt, self.data, pos)[0]
        except struct.error:
            raise FlatbufferError(f"{self.source}: truncated or corrupt flatbuffer (offset {pos})") from None

    def u8(self, pos: int) -> int: return self._unpack("<B", pos)
    def i8(self, pos: int) -> int: return self._unpack("<b", pos)
    def u16(self, pos: int) -> int: return self._unpack("<H", pos)
    def i32(self, pos: int) -> int: return self._unpack("<i", pos)
    def u32(self, pos: int) -> int: return self._unpack("<I", pos)
    def u64(self, pos: int) -> int: return self._unpack("<Q", pos)
    def f32(self, pos: int) -> float: return self._unpack("<f", pos)
    def i64(self, pos: int) -> int: return self._unpack("<q", pos)

    def field(self, table: int, index: int) -> int:
        """Absolute position of a table's field, or 0 when the field is absent (default)."""
        vtable = table - self.i32(table)
        vt_size = self.u16(vtable)
        slot = 4 + 2 * index
        if slot >= vt_size:
            return 0
        off = self.u16(vtable + slot)
        return table + off if off else 0

    def deref(self, pos: int) -> int:
        return pos + self.u32(pos)

    def table(self, table: int, index: int) -> int:
        pos = self.field(table, index)
        return self.deref(pos) if pos else 0

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) if absent."""
        pos = self.field(table, index)
        if not pos:
            return 0, 0
        vec = self.deref(pos)
        return vec + 4, self.u32(vec)

    def tables(self, table: int, index: int) -> list[int]:
        start, n = self.vector(table, index)
        return [self.deref(start + 4 * i) for i in range(n)]

    def ints(self, table: int, index: int) -> tuple[int, ...]:
        start, n = self.vector(table, index)
        return tuple(self.i32(start + 4 * i) for i in range(n))

    def string(self, table: int, index: int) -> str:
        start, n = self.vector(table, index)
        return self.data[start:start + n].decode("utf-8", "replace") if n else ""

    def scalar(self, table: int, index: int, kind: str, default):
        pos = self.field(table, index)
        return getattr(self, kind)(pos) if pos else default


def parse_model(data: bytes, source: str = "model") -> ModelInfo:
    """Parse a .tflite flatbuffer; raises FlatbufferError if it is not one."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise FlatbufferError(f"{source}: not a TFLite model (no {FILE_IDENTIFIER.decode()} identifier)")
    r = _Reader(data, source)
    model = r.deref(0)
    opcodes = []
    for t in r.tables(model, MODEL_OPERATOR_CODES):
        deprecated = r.scalar(t, OPCODE_DEPRECATED_BUILTIN, "i8", 0)
        builtin = r.scalar(t, OPCODE_BUILTIN, "i32", 0)
        # schema 3a: the real code is the larger of the two (old files only set the deprecated one)
        code = max(int(deprecated), int(builtin))
        version = int(r.scalar(t, OPCODE_VERSION, "i32", 1))
        custom = r.string(t, OPCODE_CUSTOM)
        if code == CUSTOM_CODE:
            opcodes.append(OpCode(code, custom or "CUSTOM", version, custom=True))
        else:
            opcodes.append(OpCode(code, builtin_name(code), version))
    buffers = r.tables(model, MODEL_BUFFERS)
    buffer_sizes = []
    for b in buffers:
        _, n = r.vector(b, BUFFER_DATA)
        n = n or int(r.scalar(b, BUFFER_SIZE, "u64", 0))
        buffer_sizes.append(n)
    subgraphs = r.tables(model, MODEL_SUBGRAPHS)
    if not subgraphs:
        raise FlatbufferError(f"{source}: the model has no subgraph")
    main = subgraphs[0]
    tensors = []
    for t in r.tables(main, SUBGRAPH_TENSORS):
        type_code = int(r.scalar(t, TENSOR_TYPE, "u8", 0))
        dtype, size = TENSOR_TYPES.get(type_code, (f"type{type_code}", 1))
        buffer = int(r.scalar(t, TENSOR_BUFFER, "u32", 0))
        quant = r.table(t, TENSOR_QUANTIZATION)
        scale: tuple[float, ...] = ()
        zero: tuple[int, ...] = ()
        if quant:
            s_start, s_n = r.vector(quant, QUANT_SCALE)
            z_start, z_n = r.vector(quant, QUANT_ZERO_POINT)
            scale = tuple(r.f32(s_start + 4 * i) for i in range(s_n))
            zero = tuple(r.i64(z_start + 8 * i) for i in range(z_n))
        constant = 0 < buffer < len(buffer_sizes) and buffer_sizes[buffer] > 0
        tensors.append(TensorInfo(name=r.string(t, TENSOR_NAME), shape=r.ints(t, TENSOR_SHAPE), dtype=dtype,
                                  element_bytes=size, buffer=buffer, constant=constant, scale=scale,
                                  zero_point=zero))
    operators = tuple(
        OperatorInfo(int(r.scalar(o, OPERATOR_OPCODE_INDEX, "u32", 0)), r.ints(o, OPERATOR_INPUTS),
                     r.ints(o, OPERATOR_OUTPUTS))
        for o in r.tables(main, SUBGRAPH_OPERATORS))
    for op in operators:
        if op.opcode_index >= len(opcodes):
            raise FlatbufferError(f"{source}: operator refers to op code {op.opcode_index} of {len(opcodes)}")
    return ModelInfo(description=r.string(model, MODEL_DESCRIPTION), opcodes=tuple(opcodes),
                     tensors=tuple(tensors), operators=operators, inputs=r.ints(main, SUBGRAPH_INPUTS),
                     outputs=r.ints(main, SUBGRAPH_OUTPUTS), num_subgraphs=len(subgraphs))
