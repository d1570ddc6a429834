"""The streaming (step) form of a trained model, for architectures whose convolutions run over time
unpadded and unstrided (``tcn``): a batch-1 Keras model that takes only the newest ``step_frames``
feature frames plus one state tensor per temporal layer (that layer's last input frames) and returns
the scores of the window ending at the newest frame plus the new states ("external state": plain
CONCATENATION / STRIDED_SLICE builtins that tflite-runtime, LiteRT and TFLite Micro all run).

The step model is built from the trained model's own layers and weights, layer by layer:
per-frame layers (normalization, batch norm, activations, dropout, 1x1 convolutions, Add) are applied
to the new frames; a (k x 1) convolution concatenates its state (the k - 1 previous input frames)
before the new ones and keeps the newest k - 1 as the new state; a shortcut cropped to the newest
frames is the step's own frames; the average over the P remaining frames keeps the P - step previous
top-layer frames. Any other layer (padding or striding in time, pooling in time, ...) has no exact
streaming form: ``plan`` says which layer and the converter writes no step model.

int8: the step model is converted with calibration, then every tensor is given the quantization of
the same tensor in the window int8 model and every weight/bias buffer the window model's bytes
(``align_int8``), so the integer arithmetic of each frame is the window model's, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ConvertError

FRAMES_INPUT = "frames"
SCORES_OUTPUT = "scores"
STATE_PREFIX = "state_"
TIME_AXIS = 1
# layers that act on each frame alone (or are identity at inference)
PER_FRAME_LAYERS = ("Normalization", "BatchNormalization", "ReLU", "Activation", "Dropout", "Add",
                    "InputLayer")
AFTER_POOL_LAYERS = ("Flatten", "Dense", "Dropout", "Activation", "Softmax", "Reshape")
# ops the step model's graph may hold besides the window model's (state plumbing)
STATE_OPS = ("CONCATENATION", "STRIDED_SLICE", "SLICE")


class NotStreamableError(ConvertError):
    """The architecture has a layer without an exact streaming form (padding or striding in time)."""


@dataclass(frozen=True)
class StateSpec:
    """One state tensor: the layer whose input frames it buffers, how many frames, the channel shape."""

    layer: str
    frames: int
    shape: tuple[int, ...]  # without batch: (frames, ...)

    @property
    def name(self) -> str:
        return f"{STATE_PREFIX}{self.layer}"


@dataclass
class StepPlan:
    """The batch-1 Keras step model and what it buffers."""

    keras: Any
    step_frames: int
    window_frames: int
    num_features: int
    states: list[StateSpec] = field(default_factory=list)


def _temporal(kt: Any) -> bool:
    return len(kt.shape) >= 3


def _check_conv(layer: Any) -> int:
    """Frames of a convolution's kernel over time; NotStreamableError unless it streams exactly."""
    cls = type(layer).__name__
    strides = tuple(layer.strides)
    dilation = tuple(layer.dilation_rate)
    k = int(layer.kernel_size[0])
    if any(s != 1 for s in strides) or any(d != 1 for d in dilation):
        raise NotStreamableError(f"layer {layer.name} ({cls}) strides or dilates (strides {strides}, "
                                 f"dilation {dilation})")
    if layer.padding != "valid" and (k > 1 or any(int(s) > 1 for s in layer.kernel_size[1:])):
        raise NotStreamableError(f"layer {layer.name} ({cls}) pads ({layer.padding!r})")
    return k


def _inputs_of(layer: Any) -> list[Any]:
    x = layer.input
    return list(x) if isinstance(x, (list, tuple)) else [x]


def plan(model: Any, step_frames: int) -> StepPlan:
    """Build the step model from a trained Keras model (input (frames, features)); raises
    NotStreamableError naming the first layer that has no exact streaming form."""
    import keras

    if step_frames < 1:
        raise ConvertError(f"step frames must be >= 1, got {step_frames}")
    window_frames, num_features = (int(d) for d in model.input_shape[1:])
    if step_frames > window_frames:
        raise ConvertError(f"step of {step_frames} frames is longer than the {window_frames}-frame window")
    frames_in = keras.Input(batch_shape=(1, step_frames, num_features), name=FRAMES_INPUT)
    mapped: dict[int, Any] = {id(model.inputs[0]): frames_in}
    collapsed: dict[int, bool] = {id(model.inputs[0]): False}  # has the time axis been pooled away?
    state_inputs: list[Any] = []
    state_outputs: list[Any] = []
    states: list[StateSpec] = []

    def buffered(x: Any, frames: int, layer: Any) -> Any:
        """concat(state, x) over time; the newest ``frames`` frames become the layer's new state."""
        shape = (frames, *tuple(int(d) for d in x.shape[2:]))
        spec = StateSpec(layer.name, frames, shape)
        state = keras.Input(batch_shape=(1, *shape), name=spec.name)
        joined = keras.layers.Concatenate(axis=TIME_AXIS, name=f"{layer.name}_stream_concat")([state, x])
        state_inputs.append(state)
        state_outputs.append(joined[:, -frames:])
        states.append(spec)
        return joined

    for layer in model.layers:
        cls = type(layer).__name__
        if cls == "InputLayer":
            continue
        srcs = _inputs_of(layer)
        xs = [mapped[id(s)] for s in srcs]
        was_collapsed = any(collapsed[id(s)] for s in srcs)
        x = xs[0]
        if was_collapsed:
            if cls not in AFTER_POOL_LAYERS:
                raise NotStreamableError(f"layer {layer.name} ({cls}) after the pooling over time")
            out = layer(x)
        elif cls in PER_FRAME_LAYERS:
            out = layer(xs if cls == "Add" else x)
        elif cls == "Reshape":
            frames_before = int(srcs[0].shape[TIME_AXIS])
            target = tuple(int(d) for d in layer.target_shape)
            if target[0] != frames_before:
                raise NotStreamableError(f"layer {layer.name} (Reshape to {target}) mixes frames")
            out = keras.layers.Reshape((step_frames, *target[1:]), name=f"{layer.name}_step")(x)
        elif cls in ("Conv2D", "DepthwiseConv2D"):
            k = _check_conv(layer)
            out = layer(buffered(x, k - 1, layer) if k > 1 else x)
        elif cls == "Cropping2D":
            (top, bottom), (left, right) = (tuple(int(v) for v in c) for c in layer.cropping)
            if bottom or left or right:
                raise NotStreamableError(f"layer {layer.name} (Cropping2D {layer.cropping}) does not keep "
                                         "the newest frames")
            out = x  # the newest frames of its input: in a step, the step's own frames
        elif cls == "AveragePooling2D":
            pool = int(layer.pool_size[0])
            frames_before = int(srcs[0].shape[TIME_AXIS])
            if pool != frames_before or int(layer.pool_size[1]) != int(srcs[0].shape[2]):
                raise NotStreamableError(f"layer {layer.name} (AveragePooling2D {tuple(layer.pool_size)}) "
                                         "does not average every remaining frame")
            if pool > step_frames:
                x = buffered(x, pool - step_frames, layer)
            elif pool < step_frames:
                x = x[:, -pool:]
            out = layer(x)
            mapped[id(layer.output)] = out
            collapsed[id(layer.output)] = True
            continue
        else:
            raise NotStreamableError(f"layer {layer.name} ({cls}) has no exact streaming form")
        mapped[id(layer.output)] = out
        collapsed[id(layer.output)] = was_collapsed
    if not collapsed.get(id(model.outputs[0]), False):
        raise NotStreamableError("the model does not end by averaging over time")
    # lists, not dicts: TFLiteConverter.from_keras_model cannot trace a Keras 3 model with dict inputs
    scores = mapped[id(model.outputs[0])]
    step = keras.Model([frames_in, *state_inputs], [scores, *state_outputs], name=f"{model.name}_step")
    return StepPlan(step, step_frames, window_frames, num_features, states)


def run_keras_step(step: StepPlan, frames: np.ndarray) -> np.ndarray:
    """Scores after every step over a (n, features) frame sequence, from zero state (Keras, for checks)."""
    state = [np.zeros((1, *s.shape), np.float32) for s in step.states]
    out = []
    for start in range(0, len(frames) - step.step_frames + 1, step.step_frames):
        res = step.keras([frames[None, start:start + step.step_frames].astype(np.float32), *state], training=False)
        out.append(np.asarray(res[0]).reshape(-1))
        state = [np.asarray(r) for r in res[1:]]
    return np.stack(out)


# --- TFLite ---------------------------------------------------------------------------------------
def _representative(step: StepPlan, clips: np.ndarray) -> Any:
    """Calibration feeds (by signature name) of the Keras step model streamed over whole clips."""
    def feeds():
        for clip in clips:
            state = [np.zeros((1, *s.shape), np.float32) for s in step.states]
            for start in range(0, len(clip) - step.step_frames + 1, step.step_frames):
                x = np.asarray(clip[None, start:start + step.step_frames], np.float32)
                yield {FRAMES_INPUT: x, **{s.name: v for s, v in zip(step.states, state)}}
                res = step.keras([x, *state], training=False)
                state = [np.asarray(r) for r in res[1:]]
    return feeds


def _load(data: bytes) -> Any:
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(bytearray(data), 0)


def _save(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _name(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _canonical_io(model: Any, step: StepPlan) -> None:
    """Order the subgraph's inputs as [frames, states...] and outputs as [scores, new states...] (the
    plan's order, which the manifest lists; the converter orders them by its own rules), and name the
    output tensors."""
    sig = model.signatureDefs[0]
    by_input = {_name(t.name): t.tensorIndex for t in sig.inputs}
    by_output = {_name(t.name): t.tensorIndex for t in sig.outputs}
    in_names = [FRAMES_INPUT] + [s.name for s in step.states]
    out_keys = [f"output_{i}" for i in range(1 + len(step.states))]  # Keras 3: outputs in list order
    if set(by_input) != set(in_names) or set(by_output) != set(out_keys):
        raise ConvertError(f"step model signature has inputs {sorted(by_input)} and outputs {sorted(by_output)}, "
                           f"expected {in_names} and {out_keys}")
    graph = model.subgraphs[0]
    graph.inputs = [by_input[n] for n in in_names]
    graph.outputs = [by_output[k] for k in out_keys]
    for index, name in zip(graph.outputs, [SCORES_OUTPUT] + [f"new_{s.name}" for s in step.states]):
        graph.tensors[index].name = name


def _opname(model: Any, op: Any) -> str:
    from .flatbuffer import builtin_name

    code = model.operatorCodes[op.opcodeIndex]
    return builtin_name(max(code.builtinCode, code.deprecatedBuiltinCode))


def _compute_ops(model: Any) -> list[Any]:
    return [op for op in model.subgraphs[0].operators if _opname(model, op) not in STATE_OPS]


def _copy_quant(src: Any) -> Any:
    import copy

    return copy.deepcopy(src)


def align_int8(step_data: bytes, window_data: bytes) -> bytes:
    """The int8 step model with every tensor quantized as in the window int8 model and its weights and
    biases replaced by the window model's bytes: the compute ops (all but CONCATENATION and the
    slices) correspond one to one, in order; the state plumbing takes the scale of what it carries."""
    step, window = _load(step_data), _load(window_data)
    s_ops, w_ops = _compute_ops(step), _compute_ops(window)
    s_names = [_opname(step, op) for op in s_ops]
    w_names = [_opname(window, op) for op in w_ops]
    if s_names != w_names:
        from collections import Counter

        extra, missing = Counter(s_names) - Counter(w_names), Counter(w_names) - Counter(s_names)
        what = "; ".join(f"{label} {', '.join(f'{op} x{n}' for op, n in sorted(c.items()))}"
                         for label, c in (("extra", extra), ("missing", missing)) if c) or "same ops, other order"
        raise ConvertError(f"the int8 step graph does not line up with the window model's ({what})")
    st, wt = step.subgraphs[0].tensors, window.subgraphs[0].tensors
    for s_op, w_op in zip(s_ops, w_ops):
        for s_idx, w_idx in [*zip(s_op.inputs, w_op.inputs), *zip(s_op.outputs, w_op.outputs)]:
            if s_idx < 0 or w_idx < 0:
                continue
            s_t, w_t = st[s_idx], wt[w_idx]
            if w_t.quantization is None or w_t.quantization.scale is None:
                continue  # shape operands (e.g. RESHAPE's new shape): the step model keeps its own
            s_t.quantization = _copy_quant(w_t.quantization)
            w_buf = window.buffers[w_t.buffer]
            if w_buf.data is not None and len(w_buf.data):
                if list(s_t.shape) != list(w_t.shape):
                    raise ConvertError(f"int8 step weight {_name(s_t.name)} has shape {list(s_t.shape)}, the "
                                       f"window model's {list(w_t.shape)}")
                step.buffers[s_t.buffer].data = np.array(w_buf.data, copy=True)
    # state plumbing: a concatenation's inputs and output, and a slice's output, share one quantization
    for _ in range(2):
        for op in step.subgraphs[0].operators:
            kind = _opname(step, op)
            if kind == "CONCATENATION":
                for idx in op.inputs:
                    st[idx].quantization = _copy_quant(st[op.outputs[0]].quantization)
            elif kind in ("STRIDED_SLICE", "SLICE"):
                st[op.outputs[0]].quantization = _copy_quant(st[op.inputs[0]].quantization)
    return _save(step)


def convert_step_float(step: StepPlan) -> bytes:
    """Float step .tflite: builtins only, inputs [frames, states...], outputs [scores, new states...]."""
    from .tflite import _convert

    def configure(converter: Any, tf: Any) -> None:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]

    model = _load(_convert(step.keras, "float step", configure))
    _canonical_io(model, step)
    return _save(model)


def convert_step_int8(step: StepPlan, window_int8: bytes, calibration: np.ndarray, calibration_clips: int) -> bytes:
    """Full-int8 step .tflite quantized exactly as ``window_int8`` (see ``align_int8``); ConvertError
    if the converter's int8 graph does not line up with the window model's."""
    from .tflite import _convert

    if len(calibration) == 0:
        raise ConvertError("int8 step conversion needs calibration features; none were given")

    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(step, calibration[:calibration_clips])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

    model = _load(_convert(step.keras, "int8 step", configure))
    _canonical_io(model, step)
    return align_int8(_save(model), window_int8)
