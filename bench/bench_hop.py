"""Microbenchmark of the per-hop Python path of the recognizer without the model: the streaming
frontend's new frames, the ring of frames (written, then read out as the model's input) and the
smoother, for one 40 ms hop of audio at a time.

    python -m bench.bench_hop [--seconds 600] [--hop-ms 40]

Prints the median and p99 time per hop in microseconds, as the thread's CPU time (not inflated by
other load on the machine) and as wall time, and the peak bytes Python allocated over a hop
(tracemalloc, a separate run). Run it pinned to one core (``taskset -c 0``).
"""
from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc

import numpy as np

from kws.edge.frontend import FrontendConfig, StreamingFrontend
from kws.edge.manifest import SmoothingConfig
from kws.edge.ringbuffer import RingBuffer
from kws.edge.smoothing import PosteriorSmoother

LABELS = ("_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
MS_PER_S = 1000.0
US_PER_S = 1e6
WARMUP_HOPS = 50
ALLOC_HOPS = 500


class HopPath:
    """Frontend -> ring of frames -> model input copy -> smoother, as the recognizer runs them."""

    def __init__(self, hop_ms: float):
        self.cfg = FrontendConfig()
        self.frontend = StreamingFrontend(self.cfg)
        self.frames = RingBuffer(self.cfg.num_frames, self.cfg.num_features)
        self.clip = np.empty(self.cfg.input_shape, np.float32)
        self.smoother = PosteriorSmoother(LABELS, SmoothingConfig(hop_ms=hop_ms))
        self.hop = int(self.cfg.sample_rate * hop_ms / MS_PER_S)
        self.hop_ms = hop_ms
        self.t_ms = 0.0

    def step(self, samples: np.ndarray, scores: np.ndarray) -> None:
        self.frames.write(self.frontend.push(samples))
        self.frames.latest(self.clip)
        self.t_ms += self.hop_ms
        self.smoother.update(scores, self.t_ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0, help="audio to stream")
    ap.add_argument("--hop-ms", type=float, default=40.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    path = HopPath(args.hop_ms)
    n = int(args.seconds * MS_PER_S / args.hop_ms)
    audio = rng.normal(0, 0.05, (256, path.hop)).astype(np.float32)
    scores = rng.dirichlet(np.ones(len(LABELS)), 256).astype(np.float32)
    for i in range(WARMUP_HOPS):
        path.step(audio[i % 256], scores[i % 256])
    times, cpu = np.empty(n), np.empty(n)
    for i in range(n):
        t, c = time.perf_counter(), time.thread_time()
        path.step(audio[i % 256], scores[i % 256])
        cpu[i], times[i] = time.thread_time() - c, time.perf_counter() - t
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    for i in range(ALLOC_HOPS):
        path.step(audio[i % 256], scores[i % 256])
    peak = tracemalloc.get_traced_memory()[1] - before[0]
    tracemalloc.stop()
    print(json.dumps({"hops": n, "hop_ms": args.hop_ms,
                      "cpu_p50_us": round(float(np.median(cpu)) * US_PER_S, 1),
                      "cpu_p99_us": round(float(np.percentile(cpu, 99)) * US_PER_S, 1), "p50_us": round(float(np.median(times)) * US_PER_S, 1),
                      "p99_us": round(float(np.percentile(times, 99)) * US_PER_S, 1),
                      "mean_us": round(float(times.mean()) * US_PER_S, 1),
                      "traced_peak_bytes_over_hops": peak,
                      "load_avg": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
