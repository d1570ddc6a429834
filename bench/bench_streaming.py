"""Window model every hop vs the streaming (step) form, with the runtime of this Python (one thread):
one invoke of each (quantize, invoke, dequantize, and for the step passing its state on), and
the recognizer's processing time per hop on 60 s of audio at 20 and 40 ms hops.

    python bench/bench_streaming.py -m models/<tcn run>/dist [--runtime tflite-runtime]
    .venv-edge/bin/python bench/bench_streaming.py -m ...      (tflite-runtime 2.14, numpy 1)

Needs a kws-convert folder of a tcn model (its manifest lists a streaming form). Imports only
kws.edge and numpy, so it runs in the TensorFlow-free edge environment too.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from kws.edge.manifest import load_manifest
from kws.edge.recognizer import Recognizer
from kws.edge.runtime import TFLiteModel
from kws.edge.stepmodel import StepModel

REPEATS = 3
CALLS = 1000
WARMUP = 50
STREAM_S = 60
HOPS_MS = (20, 40)
CHUNK_SAMPLES = 1600  # 100 ms blocks, as a microphone delivers them
MS_PER_S = 1000.0
US_PER_S = 1e6


def best_us(fn) -> float:
    """Fastest mean of REPEATS runs of CALLS calls, in microseconds (a busy machine adds, never removes)."""
    for _ in range(WARMUP):
        fn()
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(CALLS):
            fn()
        best = min(best, (time.perf_counter() - start) / CALLS * US_PER_S)
    return round(best, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", required=True, help="kws-convert folder of a tcn model")
    ap.add_argument("--runtime", default=None, help="litert, tflite-runtime or tf (default: the first found)")
    args = ap.parse_args()
    manifest = load_manifest(args.model)
    if manifest.streaming is None:
        raise SystemExit(f"{args.model}: the manifest lists no streaming form (convert a tcn model)")
    fe = manifest.frontend
    rng = np.random.default_rng(0)
    frames = rng.normal(0, 1, (fe.num_frames, fe.num_features)).astype(np.float32)
    audio = (rng.normal(0, 0.05, STREAM_S * fe.sample_rate)).astype(np.float32)
    rows = []
    for key, entry in manifest.streaming.models.items():
        window = TFLiteModel(f"{args.model}/{manifest.models[key].file}", runtime=args.runtime)
        step = StepModel(f"{args.model}/{entry.file}", runtime=args.runtime)
        row = {"model": key, "runtime": f"{window.runtime.name} {window.runtime.version}",
               "window_invoke_us": best_us(lambda: window.predict(frames)),
               f"step_invoke_us ({step.state_copy})": best_us(lambda: step.step(frames[:step.step_frames]))}
        for hop in HOPS_MS:
            for streaming in (False, True):
                rec = Recognizer.from_manifest(args.model, model=key, hop_ms=hop, streaming=streaming,
                                               runtime=args.runtime)
                for start in range(0, len(audio), CHUNK_SAMPLES):
                    rec.process(audio[start:start + CHUNK_SAMPLES])
                summary = rec.timer.summary_ms()
                row[f"hop{hop}_{rec.form}_p50_ms"] = round(summary["p50_ms"], 4)
                row[f"hop{hop}_{rec.form}_rtf"] = round(rec.timer.total_s / STREAM_S, 5)
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
