"""Keras -> TFLite: a batch-1 copy of the model, then float and full-integer int8 conversion with
``TFLiteConverter.from_keras_model`` (builtin ops only; see PLATFORM.md for why not
from_concrete_functions or model.export)."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from typing import Any, Callable, Iterator

import numpy as np

from kws.trainer.tfimport import import_tensorflow

from .errors import ConvertError

EDGE_BATCH = 1
INPUT_NAME = "features"
LOG_PREFIX = "kws-convert-log-"  # the converter's log, a temporary file in the system's folder (TMPDIR)


@contextlib.contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Silence Python and C++ output (TF's converter chatter) for a block; the text is kept so a
    failure can quote it. The C++ side writes into a temporary file; where that cannot be made or
    written (a full temporary folder), a ConvertError naming the folder, after stdout and stderr are
    back where they were."""
    buf = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        sink = tempfile.TemporaryFile(mode="w+b", prefix=LOG_PREFIX)
    except OSError as exc:
        raise _log_error(exc) from None
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    failed: OSError | None = None
    with sink:
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                yield buf
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:  # what Python buffered for the log during the block goes into the temporary file
                    stream.flush()
                except OSError as exc:
                    failed = failed or exc
            for fd, old in saved.items():
                os.dup2(old, fd)
                os.close(old)
            sink.seek(0)
            buf.write(sink.read().decode("utf-8", "replace"))
    if failed is not None:
        raise _log_error(failed)


def _log_error(exc: OSError) -> ConvertError:
    """The one line for a converter's log that the temporary folder cannot hold: the folder, what
    failed and why, and the way out (as kws-convert's tflite-runtime check says it)."""
    where = tempfile.tempdir or "the temporary folder"  # None: no usable one was found
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ConvertError(f"{where}: cannot write the TFLite converter's log to a temporary file there ({reason}); "
                        "set TMPDIR to a folder with space")


def batch1_model(model: Any) -> Any:
    """The same network with its batch dimension fixed to 1 (a dynamic batch adds
    SHAPE/STRIDED_SLICE/PACK ops the edge model does not need); weights are shared."""
    import keras

    inputs = keras.Input(batch_shape=(EDGE_BATCH, *model.input_shape[1:]), name=INPUT_NAME)
    outputs = model(inputs, training=False)
    return keras.Model(inputs, outputs, name=f"{model.name}_batch1")


def _last_error_line(exc: Exception, log: str) -> str:
    text = (str(exc).strip() or log.strip() or type(exc).__name__).splitlines()
    errors = [line for line in text if "error" in line.lower()]
    return (errors[-1] if errors else text[-1]).strip()[:300]


def _convert(model: Any, what: str, configure: Callable[[Any, Any], None]) -> bytes:
    """Run TFLiteConverter.from_keras_model with ``configure(converter, tf)`` applied; a failure is
    a one-line ConvertError naming ``what``."""
    tf = import_tensorflow()
    with captured_output() as log, warnings.catch_warnings():
        # int8: "Statistics for quantized inputs were expected": the input range comes from calibration
        warnings.simplefilter("ignore", UserWarning)
        try:
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            configure(converter, tf)
            data = converter.convert()
        except Exception as exc:  # noqa: BLE001 - converter errors are long; keep one line
            error = exc
        else:
            error = None
    if error is not None:
        raise ConvertError(f"{what} TFLite conversion failed: {_last_error_line(error, log.getvalue())}")
    return bytes(data)


def convert_float(model: Any) -> bytes:
    """Float32 TFLite of a batch-1 Keras model, builtin ops only."""

    def configure(converter: Any, tf: Any) -> None:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]

    return _convert(model, "float", configure)


def convert_dynamic(model: Any) -> bytes:
    """Dynamic-range TFLite: int8 weights (per output channel for convolutions) with float input,
    output and activations; the runtime's hybrid kernels quantize each layer's input as they run, so
    no activation range is fixed by calibration."""

    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]

    return _convert(model, "dynamic-range int8", configure)


def convert_int8(model: Any, calibration: np.ndarray) -> bytes:
    """Full-integer TFLite: int8 weights, activations, input and output (TFLITE_BUILTINS_INT8),
    calibrated on ``calibration`` features (one example per step, batch 1)."""
    if len(calibration) == 0:
        raise ConvertError("int8 conversion needs calibration features; none were given")

    def representative() -> Iterator[list[np.ndarray]]:
        for x in calibration:
            yield [np.asarray(x, np.float32)[None]]

    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8

    return _convert(model, "int8", configure)
