"""Streams a 16 kHz mono 16-bit WAV through microWakeWord's Python runtime (pymicro-wakeword) and
prints one JSON line: audio seconds, CPU seconds of the processing loop and of the whole process,
per-step p50/p99, detections, peak RSS. Run by bench.bench_edge inside a throwaway venv holding only
pymicro-wakeword, never imported by kws:

    python bench/mww_runner.py LONG.wav [--model alexa]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
import wave

READ_FRAMES = 1600  # 100 ms blocks, as kws-listen's file source reads
SAMPLE_RATE = 16000
SAMPLE_WIDTH = 2
MS_PER_S = 1000.0
KIB_PER_MIB = 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("wav")
    ap.add_argument("--model", default="alexa")
    args = ap.parse_args()
    t_start = time.process_time()
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    mww = MicroWakeWord.from_builtin(Model(args.model))
    features = MicroWakeWordFeatures()
    startup_cpu = time.process_time() - t_start
    steps: list[float] = []
    detections = 0
    loop_cpu = 0.0
    frames = 0
    with wave.open(args.wav, "rb") as w:
        if (w.getframerate(), w.getsampwidth(), w.getnchannels()) != (SAMPLE_RATE, SAMPLE_WIDTH, 1):
            sys.exit(f"{args.wav}: need 16 kHz mono 16-bit")
        while True:
            block = w.readframes(READ_FRAMES)
            if not block:
                break
            frames += len(block) // SAMPLE_WIDTH
            c0 = time.process_time()
            for feats in features.process_streaming(block):
                t0 = time.perf_counter()
                if mww.process_streaming(feats):
                    detections += 1
                steps.append(time.perf_counter() - t0)
            loop_cpu += time.process_time() - c0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    steps.sort()
    print(json.dumps({
        "model": args.model, "audio_s": frames / SAMPLE_RATE, "loop_cpu_s": loop_cpu,
        "process_cpu_s": usage.ru_utime + usage.ru_stime, "startup_cpu_s": startup_cpu,
        "step_p50_ms": statistics.median(steps) * MS_PER_S if steps else 0.0,
        "step_p99_ms": steps[int(0.99 * (len(steps) - 1))] * MS_PER_S if steps else 0.0,
        "steps": len(steps), "detections": detections, "peak_rss_mib": usage.ru_maxrss / KIB_PER_MIB,
    }))


if __name__ == "__main__":
    main()
