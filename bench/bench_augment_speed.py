"""What the augmentation costs: feature throughput of the augmentation pipeline alone (1 and 2
threads) and ds_cnn training throughput, with the default augmentation (the tutorial's: shift,
+-6 dB, raw-volume background, SpecAugment) and with every step of the library on (speed, VTLP,
rooms, channels, noise at an SNR, +-20 dB).

    python -m bench.bench_augment_speed --data data/demo

Training throughput is the median of epochs 2-3 (epoch 1 includes graph tracing), batch 32, as in
bench_train. Results: bench/results/augment_speed.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "augment_speed.md"
ALL_ON = ["augment.speed_range=[0.9,1.1]", "augment.vtlp_range=[0.9,1.1]", "augment.reverb_probability=0.5",
          "augment.eq_probability=0.5", "augment.band_limit_probability=0.1", "augment.background_snr_db=[0,20]",
          "augment.gain_db=20"]
REFERENCE_CLIPS_PER_S = 166  # ds_cnn, batch 32, before this library (docs/BENCHMARKS.md, Training)
FEATURE_CLIPS = 1024


def feature_speed(data: str, sets: list[str], workers: int) -> float:
    """Clips per second of training_features on FEATURE_CLIPS training items of ``data``."""
    from kws.trainer import dataset as ds
    from kws.trainer.augment import AugmentSources
    from kws.trainer.config import load_config
    from kws.trainer.features import training_features

    cfg = load_config(None, sets)
    index = ds.scan_dataset(data, [], 10, 10, 10, 10, cfg.train.seed, cfg.data.group_pattern)
    items = index.splits["training"][:FEATURE_CLIPS]
    clips, _ = ds.load_clips([i.path for i in items if i.path], cfg.features.sample_rate, cfg.features.clip_samples)
    backgrounds, _ = ds.load_background(index.background_files, cfg.features.sample_rate)
    sources = AugmentSources(tuple(backgrounds))
    training_features(items[:128], clips, cfg, sources, [], seed=[0, 0], workers=1)  # warm caches
    t0 = time.perf_counter()
    training_features(items, clips, cfg, sources, [], seed=[0, 1], workers=workers)
    return len(items) / (time.perf_counter() - t0)


def train_speed(data: str, sets: list[str], out: Path) -> float:
    cmd = [sys.executable, "-m", "kws.trainer.cli", "--data", data, "--out", str(out), "-q",
           "--set", "train.epochs=3", "--set", "train.batch_size=32"]
    for s in sets:
        cmd += ["--set", s]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if res.returncode:
        raise SystemExit(res.stderr[-2000:])
    state = json.loads((out / "state.json").read_text())
    n = len(json.loads((out / "split.json").read_text())["splits"]["training"])
    return n / statistics.median(h["seconds"] for h in state["history"][1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, sets in (("default (configs/default.yaml)", []), ("every step on", ALL_ON)):
            f1 = feature_speed(args.data, sets, 1)
            f2 = feature_speed(args.data, sets, 2)
            t = train_speed(args.data, sets, Path(tmp) / name.split()[0])
            rows.append((name, f1, f2, t))
            print(f"{name}: features {f1:.0f}/{f2:.0f} clips/s, training {t:.0f} clips/s", file=sys.stderr)
    lines = ["## Augmentation cost", "",
             f"Command: `python -m bench.bench_augment_speed --data {args.data}` ({platform.machine()}, "
             f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end).", "",
             "| augmentation | features alone, 1 thread | features alone, 2 threads | ds_cnn training (batch 32) |",
             "|---|---:|---:|---:|"]
    lines += [f"| {n} | {a:.0f} clips/s | {b:.0f} clips/s | {c:.0f} clips/s |" for n, a, b, c in rows]
    lines += [""] + [f"{n}: training throughput {t / REFERENCE_CLIPS_PER_S * 100:.0f}% of the {REFERENCE_CLIPS_PER_S} "
                     "clips/s measured before this library (target: at least 75%)." for n, _, _, t in rows]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
