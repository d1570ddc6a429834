"""The model registry: architectures chosen by name, each a Keras model from (frames, features)
to class probabilities, built only from ops that convert to int8 TFLite builtins.

``model.input_normalization`` starts a model with a per-feature standardisation: a Keras
``Normalization`` layer holding the training set's per-coefficient mean and variance as constants
(it converts to one SUB and one MUL, int8 too). On the demo's MFCCs it made every architecture
worse (docs/BENCHMARKS.md), so it is off by default; what the BN-free models needed was a lower
learning rate (DEFAULT_LEARNING_RATES).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# name -> builder(input_shape, num_labels, model_config, feature_stats) -> keras.Model
MODEL_BUILDERS: dict[str, Callable[..., Any]] = {}
# name -> the peak Adam learning rate train.learning_rate=auto gives it (chosen on validation
# accuracy on the demo data: bench/bench_lr.py, docs/BENCHMARKS.md "Learning rate ...")
DEFAULT_LEARNING_RATES: dict[str, float] = {}
# name -> the channels model.width=auto gives it (architectures without a width ignore it)
DEFAULT_WIDTHS: dict[str, int] = {}
WIDTH_WHEN_UNSET = 64
DEFAULT_ARCHITECTURE = "tcn"
# Batch-norm statistics settle within ~30 steps, so small custom datasets evaluate correctly too.
BN_MOMENTUM = 0.9
NORMALIZATION_LAYER = "standardize"
# Floor of the standard deviation a feature is divided by (a constant feature becomes 0, not NaN).
MIN_FEATURE_STD = 1e-3
STATS_ROWS = 65536  # rows (frames or embeddings) per float64 chunk of FeatureStats.of


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature mean and variance of the training features (over clips and frames)."""

    mean: np.ndarray
    variance: np.ndarray

    @classmethod
    def of(cls, features: np.ndarray) -> "FeatureStats":
        """Statistics of a (clips, frames, features) array, in float64 over STATS_ROWS rows at a
        time (two passes: mean, then squared deviations), so the whole array is never copied: the
        embedding family's training windows are 1536 values each, up to millions of them."""
        flat = np.asarray(features).reshape(-1, features.shape[-1])
        chunks = range(0, len(flat), STATS_ROWS)
        mean = sum(flat[i:i + STATS_ROWS].sum(axis=0, dtype=np.float64) for i in chunks) / len(flat)
        squares = sum(np.square(flat[i:i + STATS_ROWS] - mean).sum(axis=0) for i in chunks)
        variance = np.maximum(squares / len(flat), MIN_FEATURE_STD ** 2)
        return cls(mean.astype(np.float32), variance.astype(np.float32))

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [round(float(v), 6) for v in self.mean],
                "std": [round(float(v), 6) for v in np.sqrt(self.variance)]}


def register(name: str, learning_rate: float,
             width: int = WIDTH_WHEN_UNSET) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        MODEL_BUILDERS[name] = fn
        DEFAULT_LEARNING_RATES[name] = learning_rate
        DEFAULT_WIDTHS[name] = width
        return fn
    return wrap


def default_width(name: str) -> int:
    """The channels an architecture gets when model.width is auto."""
    return DEFAULT_WIDTHS.get(name, WIDTH_WHEN_UNSET)


def default_learning_rate(name: str) -> float:
    """The learning rate an architecture trains with when train.learning_rate is auto."""
    return DEFAULT_LEARNING_RATES[name]


def build_model(name: str, input_shape: tuple[int, int], num_labels: int, cfg: Any,
                feature_stats: FeatureStats | None = None) -> Any:
    """Build a registered architecture; ``cfg`` is the ModelConfig. With ``feature_stats`` the
    model starts with a fixed per-feature standardisation."""
    try:
        builder = MODEL_BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(MODEL_BUILDERS)}") from None
    return builder(tuple(input_shape), int(num_labels), cfg, feature_stats)


def _input(keras: Any, input_shape: tuple[int, int], stats: FeatureStats | None) -> tuple[Any, Any]:
    inputs = keras.Input(shape=input_shape, name="features")
    x = inputs
    if stats is not None:
        x = keras.layers.Normalization(axis=-1, mean=stats.mean, variance=stats.variance,
                                       name=NORMALIZATION_LAYER)(x)
    x = keras.layers.Reshape((*input_shape, 1), name="add_channel")(x)
    return inputs, x


def is_normalized(model: Any) -> bool:
    """Whether a built or loaded model starts with the input standardisation."""
    return any(layer.name == NORMALIZATION_LAYER for layer in model.layers)


@register("conv", learning_rate=0.0005)
def conv(input_shape: tuple[int, int], num_labels: int, cfg: Any,
         stats: FeatureStats | None = None) -> Any:
    """The speech_commands tutorial's default model ("CNNs for small-footprint KWS"), as in the seed."""
    import keras

    inputs, x = _input(keras, input_shape, stats)
    x = keras.layers.Conv2D(64, (20, 8), padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    x = keras.layers.MaxPooling2D((2, 2), name="pool1")(x)
    x = keras.layers.Conv2D(64, (10, 4), padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="conv")


@register("low_latency_conv", learning_rate=0.001)
def low_latency_conv(input_shape: tuple[int, int], num_labels: int, cfg: Any,
                     stats: FeatureStats | None = None) -> Any:
    """The tutorial's low_latency_conv: one full-height conv (186 filters, 8 wide), then dense layers."""
    import keras

    frames, _ = input_shape
    inputs, x = _input(keras, input_shape, stats)
    x = keras.layers.Conv2D(186, (frames, 8), padding="valid", activation="relu", name="conv1")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    x = keras.layers.Dense(128, activation="relu", name="fc2")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    outputs = keras.layers.Dense(num_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="low_latency_conv")


@register("tiny_conv", learning_rate=0.002)
def tiny_conv(input_shape: tuple[int, int], num_labels: int, cfg: Any,
              stats: FeatureStats | None = None) -> Any:
    """micro_speech's tiny_conv: one strided 10x8 conv with 8 filters and a dense layer (<20 kB int8)."""
    import keras

    inputs, x = _input(keras, input_shape, stats)
    x = keras.layers.Conv2D(8, (10, 8), strides=(2, 2), padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tiny_conv")


@register("ds_cnn", learning_rate=0.002)
def ds_cnn(input_shape: tuple[int, int], num_labels: int, cfg: Any,
           stats: FeatureStats | None = None) -> Any:
    """Depthwise-separable CNN (Hello Edge): a strided 10x4 conv, ``blocks`` x (3x3 depthwise +
    1x1 pointwise, each with batch norm and ReLU), global average pooling, dense softmax."""
    import keras

    width = cfg.width
    inputs, x = _input(keras, input_shape, stats)
    x = keras.layers.Conv2D(width, (10, 4), strides=(2, 2), padding="same", use_bias=False, name="conv1")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    for i in range(1, cfg.blocks + 1):
        x = keras.layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False, name=f"dw{i}")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"dw{i}_bn")(x)
        x = keras.layers.ReLU(name=f"dw{i}_relu")(x)
        x = keras.layers.Conv2D(width, (1, 1), use_bias=False, name=f"pw{i}")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"pw{i}_bn")(x)
        x = keras.layers.ReLU(name=f"pw{i}_relu")(x)
    x = keras.layers.Dropout(cfg.dropout)(x)
    x = keras.layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="avg_pool")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="ds_cnn")


# tcn: frames each depthwise convolution looks at (90 ms at a 10 ms stride) and of the first one.
TCN_KERNEL_FRAMES = 9
TCN_INPUT_KERNEL_FRAMES = 3
TCN_LAYERS_PER_BLOCK = 2


@register("tcn", learning_rate=0.002, width=128)
def tcn(input_shape: tuple[int, int], num_labels: int, cfg: Any,
        stats: FeatureStats | None = None) -> Any:
    """Streaming-native temporal CNN (TC-ResNet style, depthwise-separable): the features of a frame
    are the channels and every convolution runs over time only, unpadded ("valid") and unstrided, so
    output frame t depends on input frames up to t and nothing after. A 3-frame convolution to
    ``width`` channels, then ``blocks`` residual blocks of two (9-frame depthwise + 1x1 pointwise, batch
    norm, ReLU) layers whose shortcut is the input's newest frames, then the average over the frames
    left and a dense softmax. Because nothing is padded, a streaming step model that keeps each
    layer's last (kernel - 1) input frames as state computes exactly the same scores
    (``converters/streaming.py``)."""
    import keras

    frames, features = input_shape
    width = cfg.width
    inputs = keras.Input(shape=input_shape, name="features")
    x = inputs
    if stats is not None:
        x = keras.layers.Normalization(axis=-1, mean=stats.mean, variance=stats.variance,
                                       name=NORMALIZATION_LAYER)(x)
    x = keras.layers.Reshape((frames, 1, features), name="frames_as_rows")(x)
    x = keras.layers.Conv2D(width, (TCN_INPUT_KERNEL_FRAMES, 1), use_bias=False, name="conv1")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name="conv1_bn")(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    for i in range(1, cfg.blocks + 1):
        shortcut = x
        for j in range(1, TCN_LAYERS_PER_BLOCK + 1):
            name = f"b{i}_{j}"
            x = keras.layers.DepthwiseConv2D((TCN_KERNEL_FRAMES, 1), use_bias=False, name=f"{name}_dw")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_dw_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_dw_relu")(x)
            x = keras.layers.Conv2D(width, (1, 1), use_bias=False, name=f"{name}_pw")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_pw_bn")(x)
            if j < TCN_LAYERS_PER_BLOCK:
                x = keras.layers.ReLU(name=f"{name}_pw_relu")(x)
        lost = TCN_LAYERS_PER_BLOCK * (TCN_KERNEL_FRAMES - 1)
        shortcut = keras.layers.Cropping2D(((lost, 0), (0, 0)), name=f"b{i}_shortcut")(shortcut)
        x = keras.layers.Add(name=f"b{i}_add")([x, shortcut])
        x = keras.layers.ReLU(name=f"b{i}_relu")(x)
    if x.shape[1] < 1:
        raise ValueError(f"tcn with {cfg.blocks} blocks needs more than {frames} frames of input")
    x = keras.layers.Dropout(cfg.dropout)(x)
    x = keras.layers.AveragePooling2D(pool_size=(int(x.shape[1]), 1), name="avg_pool")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(num_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="tcn")


EMBEDDING_ARCHITECTURE = "embedding"
EMBEDDING_HEAD_LAYERS = 2


@register(EMBEDDING_ARCHITECTURE, learning_rate=0.001, width=128)
def embedding_head(input_shape: tuple[int, int], num_labels: int, cfg: Any,
                   stats: FeatureStats | None = None) -> Any:
    """The head of the embedding family: the last 16 speech embeddings (16 x 96), standardised per
    embedding dimension with ``stats`` where given (the training windows'; model.input_normalization,
    on by default for this family), flattened, two ReLU dense layers of ``width`` units with
    dropout, softmax (the front end is frozen and not part of this model:
    kws.trainer.embedding_data computes its input)."""
    import keras

    inputs = keras.Input(shape=input_shape, name="embeddings")
    x = inputs
    if stats is not None:
        x = keras.layers.Normalization(axis=-1, mean=stats.mean, variance=stats.variance,
                                       name=NORMALIZATION_LAYER)(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in range(1, EMBEDDING_HEAD_LAYERS + 1):
        x = keras.layers.Dense(cfg.width, activation="relu", name=f"dense{i}")(x)
        x = keras.layers.Dropout(cfg.dropout, name=f"dropout{i}")(x)
    outputs = keras.layers.Dense(num_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=EMBEDDING_ARCHITECTURE)


def count_macs(model: Any) -> int:
    """Multiply-accumulates of one inference (conv, depthwise conv and dense layers)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            out_h, out_w, out_c = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            total += out_h * out_w * out_c * kh * kw
        elif isinstance(layer, keras.layers.Conv2D):
            out_h, out_w, out_c = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            in_c = layer.input.shape[-1]
            total += out_h * out_w * out_c * kh * kw * in_c
        elif isinstance(layer, keras.layers.Dense):
            total += int(layer.input.shape[-1]) * layer.units
    return int(total)


def model_info(model: Any) -> dict[str, Any]:
    """Architecture name, parameter count and MACs per inference."""
    return {
        "architecture": model.name,
        "params": int(model.count_params()),
        "macs": count_macs(model),
        "input_shape": list(model.input_shape[1:]),
        "num_labels": int(model.output_shape[-1]),
        "input_normalization": is_normalized(model),
    }
