"""Can the frozen speech embedding run on kws's edge runtimes? (issue 16, item 5; a feasibility note)

    python -m bench.embedding_tflite [--calibration 400]

Rebuilds ``embedding_model.onnx`` (openwakeword 0.4.0 wheel, Google's speech_embedding) as a
Keras network from the ONNX weights (the graph is one chain: Pad, Conv, Relu, BatchNormalization,
LeakyRelu, Max with a constant, MaxPool, Reshape), checks it against onnxruntime on real mel windows,
converts it with kws's own converter (``kws.converters.tflite``: float, and full-integer int8 calibrated
on mel windows of the training running speech and synthesized clips) and measures each form:
agreement with onnxruntime on held-out speech (mel windows of the first 10 held-out running-speech
files), size, one-thread CPU per embedding with ai-edge-litert, and the int8 ops.
Writes bench/out/embedding/tflite.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench import bench_embedding as be


def keras_embedding():
    """The embedding network in Keras (NHWC), weights copied from the ONNX graph: now the product's
    rebuild (kws.trainer.speech_embedding), which this experiment first wrote."""
    from kws.trainer.speech_embedding import keras_embedding as rebuild

    return rebuild(be.models_dir() / "embedding_model.onnx")


def mel_windows(fe, audio: np.ndarray, step: int = 1) -> np.ndarray:
    x = np.concatenate([np.zeros(be.LOOKBACK, np.float32), audio * 32767.0]).astype(np.float32)
    mel = fe.mel(x)
    m = (len(mel) - be.MEL_WINDOW) // be.MEL_STEP + 1
    idx = np.arange(0, m, step)[:, None] * be.MEL_STEP + np.arange(be.MEL_WINDOW)[None]
    return mel[idx][..., None]


def litert(data: bytes):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    return it


def run_tflite(it, x: np.ndarray) -> np.ndarray:
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    out = np.zeros((len(x), be.DIM), np.float32)
    for k, w in enumerate(x):
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            w = np.clip(np.round(w / s + z), -128, 127).astype(np.int8)
        it.set_tensor(i["index"], w[None].astype(i["dtype"]))
        it.invoke()
        y = it.get_tensor(o["index"])[0]
        if o["dtype"] == np.int8:
            s, z = o["quantization"]
            y = (y.astype(np.float32) - z) * s
        out[k] = y
    return out


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
    return {"max_abs": round(float(np.abs(a - b).max()), 5), "rms_err_over_rms": round(float(
        np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(a ** 2))), 5),
        "cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calibration", type=int, default=400, help="mel windows for int8 calibration")
    args = ap.parse_args()
    from kws.converters.tflite import batch1_model, convert_float, convert_int8

    fe = be.Frontend(1)
    train_files, test_files = be.running_files(None)
    rng = np.random.default_rng(0)
    cal = np.concatenate([mel_windows(fe, be.load(f), 4) for f in train_files[::12]])
    syn = be.synth_splits()["train"]
    cal = np.concatenate([cal] + [mel_windows(fe, np.concatenate([np.zeros(8000, np.float32), be.load(f)]), 1)
                                  for w in be.WORDS for f in syn[w][:20]])
    cal = cal[rng.permutation(len(cal))[:args.calibration]]
    held = np.concatenate([mel_windows(fe, be.load(f), 2) for f in test_files[:10]])
    onnx_out = fe.emb_sess.run(None, {"input_1": held})[0].reshape(-1, be.DIM)
    km = keras_embedding()
    k_out = km.predict(held, verbose=0, batch_size=256)
    res = {"held_windows": int(len(held)), "calibration_windows": int(len(cal)),
           "keras_vs_onnx": agreement(onnx_out, k_out), "params": int(km.count_params())}
    print("keras vs onnx:", res["keras_vs_onnx"], flush=True)
    b1 = batch1_model(km)
    forms = {}
    t0 = time.time()
    forms["float"] = convert_float(b1)
    forms["int8"] = convert_int8(b1, cal)
    res["convert_s"] = round(time.time() - t0, 1)
    out = be.OUT
    for key, data in forms.items():
        (out / f"embedding_{key}.tflite").write_bytes(data)
        it = litert(data)
        y = run_tflite(it, held)
        lat = []
        for _ in range(3):
            c0 = time.process_time()
            run_tflite(it, held[:200])
            lat.append((time.process_time() - c0) / 200 * 1000)
        res[key] = {"bytes": len(data), "vs_onnx": agreement(onnx_out, y), "cpu_ms_per_embedding": round(min(lat), 3),
                    "embedding_rtf": round(min(lat) / 1000 / be.HOP_S, 5)}
        print(key, res[key], flush=True)
    from kws.converters.flatbuffer import parse_model
    from kws.converters.opcheck import op_uses, unsupported

    uses = op_uses(parse_model(forms["int8"]))
    res["int8_ops"] = [f"{u.describe()} x{u.count}" for u in uses]
    res["int8_unsupported_by_tflite_runtime_2_14"] = unsupported(uses)
    (out / "tflite.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
