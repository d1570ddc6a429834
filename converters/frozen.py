"""A frozen GraphDef (.pb) of the Keras model for plain TensorFlow: variables folded into constants,
input placeholder ``features`` (batch dimension free), output ``probabilities``; reloaded with
``tf.compat.v1`` and checked against the Keras outputs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kws.trainer.tfimport import import_tensorflow

from .errors import ConvertError, VerificationError
from .tflite import captured_output

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
PB_TOLERANCE = 1e-5
PB_BATCH = 256


@dataclass(frozen=True)
class PbCheck:
    """How the reloaded .pb compares with Keras on the same features."""

    max_abs_diff: float
    predictions: np.ndarray
    input_tensor: str
    output_tensor: str


def freeze(model: Any) -> bytes:
    """Serialized GraphDef of ``model`` with constant weights and named input/output nodes."""
    tf = import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(features):
        return {OUTPUT_NAME: tf.identity(model(features, training=False), name=OUTPUT_NAME)}

    with captured_output() as log:
        try:
            frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
            graph_def = frozen.graph.as_graph_def()
        except Exception as exc:  # noqa: BLE001
            error: Exception | None = exc
        else:
            error = None
    if error is not None:
        raise ConvertError(f"freezing the graph failed: {str(error).strip().splitlines()[0][:300] or log.getvalue()[-300:]}")
    names = {n.name for n in graph_def.node}
    for name in (INPUT_NAME, OUTPUT_NAME):
        if name not in names:
            raise ConvertError(f"frozen graph has no node named {name!r}")
    return graph_def.SerializeToString()


def reload_and_run(pb: bytes, x: np.ndarray) -> tuple[np.ndarray, str, str]:
    """Import a frozen GraphDef into a fresh graph (plain TF1 API) and run it on ``x``."""
    tf = import_tensorflow()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(pb)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    in_name, out_name = f"{INPUT_NAME}:0", f"{OUTPUT_NAME}:0"
    outs = []
    with tf.compat.v1.Session(graph=graph) as sess:
        for start in range(0, len(x), PB_BATCH):
            outs.append(sess.run(out_name, feed_dict={in_name: x[start:start + PB_BATCH]}))
    y = np.concatenate(outs) if outs else np.zeros((0,), np.float32)
    return y.astype(np.float32), in_name, out_name


def verify(pb: bytes, x: np.ndarray, keras_probs: np.ndarray, tolerance: float = PB_TOLERANCE) -> PbCheck:
    """Reload the .pb and require its outputs to match Keras within ``tolerance``."""
    try:
        y, in_name, out_name = reload_and_run(pb, x)
    except Exception as exc:  # noqa: BLE001
        raise VerificationError(f"frozen_graph.pb does not reload with TensorFlow: "
                                f"{str(exc).strip().splitlines()[0][:300]}") from None
    diff = float(np.max(np.abs(y - keras_probs))) if len(x) else 0.0
    if not diff <= tolerance:
        raise VerificationError(f"frozen_graph.pb outputs differ from Keras by {diff:.2e} (> {tolerance:g})")
    return PbCheck(diff, y, in_name, out_name)
