"""The int8 model as C++ source for TensorFlow Lite for Microcontrollers: ``model_int8.cc`` holds
the flatbuffer as an aligned byte array, ``model_int8.h`` declares it together with the ops to
register, the input/output quantization, the labels and an estimated tensor-arena size. Builtin ops
only: a model with a custom op is refused (kws-convert converts with builtin op sets, so emits none),
as is one with a builtin op whose resolver method is not in opcheck.MICRO_RESOLVER_METHODS."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws.edge.manifest import TensorSpec

from .errors import ConvertError
from .flatbuffer import ModelInfo
from .opcheck import OpUse, micro_method

ARRAY_NAME = "g_kws_model_data"
LABELS_NAME = "kKwsLabels"
STREAM_ARRAY_NAME = "g_kws_stream_model_data"
STREAM_LENGTH_NAME = "g_kws_stream_model_data_len"
STREAM_LABELS_NAME = "kKwsStreamLabels"
STREAM_ARENA_NAME = "kKwsStreamTensorArenaSize"
STREAM_HEADER_GUARD = "KWS_STREAM_INT8_H_"
LENGTH_NAME = "g_kws_model_data_len"
ARENA_NAME = "kKwsTensorArenaSize"
HEADER_GUARD = "KWS_MODEL_INT8_H_"
BYTES_PER_LINE = 12
ARRAY_ALIGNMENT = 16
# Arena estimate: the activation layout TFLM's greedy planner makes (planned_activations), plus
# headroom for kernel scratch buffers (CMSIS-NN), plus the interpreter's per-tensor and per-operator
# bookkeeping and per-channel quantization data. Measured with the tflite-micro Python interpreter
# (reference kernels): the fixture ds_cnn needs 133,791 B, 125,440 B of it activations (estimate
# 149,504 B); the default tcn (width 128, 5 labels) 67,643 B, 43,008 B of it activations as planned,
# where only 34,816 B are ever alive at once (estimate 75,776 B).
ACTIVATION_HEADROOM = 1.10
BYTES_PER_TENSOR = 64
BYTES_PER_OPERATOR = 128
BYTES_PER_CHANNEL = 8  # output multiplier + shift per output channel of conv/dense ops
FIXED_OVERHEAD = 2048
CHANNEL_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Label strings: bytes kept as they are (space to tilde), and the three of them that need a backslash.
PRINTABLE_ASCII = (0x20, 0x7E)
C_STRING_ESCAPES = {'"': '\\"', "\\": "\\\\", "?": "\\?"}


@dataclass(frozen=True)
class ArenaEstimate:
    """Estimated TFLite Micro tensor arena for one model, and its parts (bytes)."""

    peak_activations: int
    bookkeeping: int
    total: int

    def to_dict(self) -> dict:
        return {"peak_activation_bytes": self.peak_activations, "bookkeeping_bytes": self.bookkeeping,
                "estimated_arena_bytes": self.total}


def _align(n: int, to: int = ARRAY_ALIGNMENT) -> int:
    return (n + to - 1) // to * to


def _lifetimes(info: ModelInfo) -> dict[int, tuple[int, int]]:
    """First and last op (inclusive) of every non-constant tensor, as TFLM's planner counts them: graph
    inputs from the first op, graph outputs to the last, every other tensor from the op that writes it
    to the last op that reads it."""
    n_ops = len(info.operators)
    first: dict[int, int] = {t: 0 for t in info.inputs}
    last: dict[int, int] = {t: n_ops - 1 for t in info.outputs}
    for step, op in enumerate(info.operators):
        for t in op.outputs:
            if t >= 0:
                first.setdefault(t, step)
        for t in op.inputs:
            if t >= 0:
                last[t] = max(last.get(t, step), step)
    return {t: (start, last.get(t, start)) for t, start in first.items() if not info.tensors[t].constant}


def planned_activations(info: ModelInfo) -> int:
    """Bytes of the activation layout TFLM's greedy memory planner makes: largest tensor first (of
    equal sizes, the later tensor first), each at the lowest offset where it overlaps no placed tensor
    alive at the same time. Gaps it leaves make this more than the most bytes ever alive at once (by
    a quarter for the default tcn, whose residual adds keep a block's input alive)."""
    spans = _lifetimes(info)
    order = sorted(spans, key=lambda t: (-_align(info.tensors[t].num_bytes), -t))
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first op, last op
    for t in order:
        size, (start, stop) = _align(info.tensors[t].num_bytes), spans[t]
        offset = 0
        for lo, hi, *_ in sorted(b for b in placed if b[2] <= stop and start <= b[3]):
            if offset + size <= lo:
                break
            offset = max(offset, hi)
        placed.append((offset, offset + size, start, stop))
    return max((end for _, end, _, _ in placed), default=0)


def estimate_arena(info: ModelInfo) -> ArenaEstimate:
    """The planner's activation layout (``planned_activations``) with headroom, plus bookkeeping."""
    n_ops = len(info.operators)
    peak = planned_activations(info)
    channels = sum(int(info.tensors[op.outputs[0]].shape[-1]) for op in info.operators
                   if info.opcodes[op.opcode_index].name in CHANNEL_OPS and op.outputs
                   and info.tensors[op.outputs[0]].shape)
    bookkeeping = (BYTES_PER_TENSOR * len(info.tensors) + BYTES_PER_OPERATOR * n_ops
                   + BYTES_PER_CHANNEL * channels + FIXED_OVERHEAD)
    total = _align(int(peak * ACTIVATION_HEADROOM) + bookkeeping, 1024)
    return ArenaEstimate(peak, bookkeeping, total)


def _c_string(text: str) -> str:
    """``text`` as a C/C++ string literal of its UTF-8 bytes, in plain ASCII source: quote and
    backslash escaped, ``?`` as ``\\?`` (so no ``??=``-style trigraph forms under -trigraphs or C++
    before 17), and every other byte outside printable ASCII as a three-digit octal escape (octal
    escapes end after three digits, so a following digit cannot join them as it would a hex one)."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in C_STRING_ESCAPES:
            out.append(C_STRING_ESCAPES[char])
        elif PRINTABLE_ASCII[0] <= byte <= PRINTABLE_ASCII[1]:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _builtin_ops(uses: list[OpUse], source_name: str) -> list[str]:
    """The op names of ``uses``, once each, in order; ConvertError naming ``source_name`` and the op
    where one is a custom op (its name is whatever the model file says, not a builtin with a
    MicroMutableOpResolver method, so no registration, nor a comment holding it, can be written) or
    a builtin op without a known resolver method (a guessed name would fail the firmware's build
    with no word of why)."""
    custom = next((u.name for u in uses if u.custom), None)
    if custom is not None:
        raise ConvertError(f"{source_name}: uses the custom op {custom!r}, which TensorFlow Lite for "
                           "Microcontrollers has no builtin kernel for; its C source is not written")
    unknown = next((u.name for u in uses if micro_method(u.name) is None), None)
    if unknown is not None:
        raise ConvertError(f"{source_name}: uses the builtin op {unknown!r}, whose TensorFlow Lite for "
                           "Microcontrollers resolver method (MicroMutableOpResolver::Add...) kws-convert "
                           "does not know; its C source is not written (convert without c in --formats)")
    return list(dict.fromkeys(u.name for u in uses))


def render_header(uses: list[OpUse], arena: ArenaEstimate, input_spec: TensorSpec, output_spec: TensorSpec,
                  labels: tuple[str, ...], source_name: str, data_len: int) -> str:
    """model_int8.h: declarations, the ops to register and the arena size (builtin ops only)."""
    ops = _builtin_ops(uses, source_name)
    op_lines = "\n".join(f"//   {u.name} v{u.version} (x{u.count})" for u in uses)
    x_macro = " \\\n".join(f"  X({micro_method(name)})" for name in ops)
    register = "\n".join(f"//   resolver.{micro_method(name)}();" for name in ops)
    frames, features = (list(input_spec.shape[1:]) + [0, 0])[:2]
    return f"""// Generated by kws-convert from {source_name} ({data_len} bytes): do not edit.
// TensorFlow Lite for Microcontrollers model: int8 input {list(input_spec.shape)}, int8 output {list(output_spec.shape)}.
#ifndef {HEADER_GUARD}
#define {HEADER_GUARD}

// Ops the model uses (register each with tflite::MicroMutableOpResolver):
{op_lines}
#define KWS_MODEL_NUM_OPS {len(ops)}
#define KWS_MODEL_OPS(X) \\
{x_macro}
// Example:
//   static tflite::MicroMutableOpResolver<KWS_MODEL_NUM_OPS> resolver;
{register}
//   (or: #define KWS_ADD_OP(name) resolver.name(); KWS_MODEL_OPS(KWS_ADD_OP))

// Estimated tensor arena: planned activations {arena.peak_activations} B x {ACTIVATION_HEADROOM} + bookkeeping
// {arena.bookkeeping} B, rounded up to 1 KiB. Check with MicroInterpreter::arena_used_bytes().
constexpr int {ARENA_NAME} = {arena.total};

// Input: {frames} frames x {features} features, float feature f -> int8 round(f / scale) + zero_point.
constexpr int kKwsInputFrames = {frames};
constexpr int kKwsInputFeatures = {features};
constexpr float kKwsInputScale = {input_spec.scale!r}f;
constexpr int kKwsInputZeroPoint = {input_spec.zero_point};
// Output: int8 q per label -> probability (q - zero_point) * scale.
constexpr int kKwsNumLabels = {len(labels)};
constexpr float kKwsOutputScale = {output_spec.scale!r}f;
constexpr int kKwsOutputZeroPoint = {output_spec.zero_point};
extern const char* const kKwsLabels[kKwsNumLabels];

extern const unsigned char {ARRAY_NAME}[];
extern const unsigned int {LENGTH_NAME};

#endif  // {HEADER_GUARD}
"""


def render_source(data: bytes, labels: tuple[str, ...], header_name: str, source_name: str,
                  array_name: str = ARRAY_NAME, length_name: str = LENGTH_NAME, labels_name: str = LABELS_NAME) -> str:
    """model_int8.cc (or stream_int8.cc with the stream names): the flatbuffer bytes, 16-byte aligned,
    and the labels."""
    rows = []
    for start in range(0, len(data), BYTES_PER_LINE):
        chunk = data[start:start + BYTES_PER_LINE]
        rows.append("    " + ", ".join(f"0x{b:02x}" for b in chunk) + ",")
    body = "\n".join(rows)
    label_list = ", ".join(_c_string(lab) for lab in labels)
    return f"""// Generated by kws-convert from {source_name}: do not edit.
#include "{header_name}"

const char* const {labels_name}[{len(labels)}] = {{{label_list}}};

alignas({ARRAY_ALIGNMENT}) const unsigned char {array_name}[] = {{
{body}
}};
const unsigned int {length_name} = {len(data)};
"""


def _c_list(values: list, fmt: str) -> str:
    return ", ".join(fmt.format(v) for v in values)


def render_stream_header(uses: list[OpUse], arena: ArenaEstimate, inputs: tuple[TensorSpec, ...],
                         outputs: tuple[TensorSpec, ...], labels: tuple[str, ...], source_name: str,
                         data_len: int) -> str:
    """stream_int8.h: the step model's declarations, ops, arena size, and its frames, score and
    state tensors (input 0 / output 0: frames / scores; input i / output i: state i); builtin ops only."""
    ops = _builtin_ops(uses, source_name)
    op_lines = "\n".join(f"//   {u.name} v{u.version} (x{u.count})" for u in uses)
    x_macro = " \\\n".join(f"  X({micro_method(name)})" for name in ops)
    frames = inputs[0]
    states = inputs[1:]
    sizes = [int(np.prod(s.shape)) for s in states]
    scores = outputs[0]
    return f"""// Generated by kws-convert from {source_name} ({data_len} bytes): do not edit.
// Streaming (step) form of the int8 model for TensorFlow Lite for Microcontrollers. Each step takes the
// newest kKwsStepFrames feature frames and the state, and returns the scores of the window ending at the
// newest frame and the new state. Input 0 = frames, inputs 1..kKwsNumStates = states; output 0 = scores,
// output i = new state i. After Invoke(), copy each output state into a buffer of your own, then into
// input i before the next Invoke() (the arena planner may reuse an input's memory for an output).
// At start-up (and to forget the past) fill every state with its zero point.
#ifndef {STREAM_HEADER_GUARD}
#define {STREAM_HEADER_GUARD}

#include <cstdint>

// Ops the step model uses (register each with tflite::MicroMutableOpResolver):
{op_lines}
#define KWS_STREAM_MODEL_NUM_OPS {len(ops)}
#define KWS_STREAM_MODEL_OPS(X) \\
{x_macro}

// Estimated tensor arena: planned activations {arena.peak_activations} B x {ACTIVATION_HEADROOM} + bookkeeping
// {arena.bookkeeping} B, rounded up to 1 KiB. Check with MicroInterpreter::arena_used_bytes().
constexpr int {STREAM_ARENA_NAME} = {arena.total};

// Input 0: kKwsStepFrames new frames x features, float f -> int8 round(f / scale) + zero_point.
constexpr int kKwsStepFrames = {int(frames.shape[1])};
constexpr int kKwsStepFeatures = {int(np.prod(frames.shape[2:]))};
constexpr float kKwsStepInputScale = {frames.scale!r}f;
constexpr int kKwsStepInputZeroPoint = {frames.zero_point};
// Output 0: int8 q per label -> probability (q - zero_point) * scale.
constexpr int kKwsStreamNumLabels = {len(labels)};
constexpr float kKwsStepOutputScale = {scores.scale!r}f;
constexpr int kKwsStepOutputZeroPoint = {scores.zero_point};
// State i (input i + 1, output i + 1): int8 bytes and the zero point an empty history holds.
constexpr int kKwsNumStates = {len(states)};
constexpr int kKwsStateBytes[kKwsNumStates] = {{{_c_list(sizes, "{}")}}};
constexpr std::int8_t kKwsStateZeroPoint[kKwsNumStates] = {{{_c_list([s.zero_point for s in states], "{}")}}};
constexpr int kKwsStateTotalBytes = {sum(sizes)};
extern const char* const {STREAM_LABELS_NAME}[kKwsStreamNumLabels];

extern const unsigned char {STREAM_ARRAY_NAME}[];
extern const unsigned int {STREAM_LENGTH_NAME};

#endif  // {STREAM_HEADER_GUARD}
"""
