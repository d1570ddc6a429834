"""Training benchmarks: throughput (clips/s) of every registered model, and ds_cnn vs the
tutorial's conv model trained on the same data within the same time budget.

    python -m bench.bench_train --data data/demo --budget 240 --batch-size 32

Every model trains with its own default learning rate (train.learning_rate: auto; bench_lr.py
is how the rates were chosen) and make demo's batch size. Each model first trains two epochs to
measure steady-state throughput (the second epoch; the first includes graph tracing). For the budget comparison each model gets as many epochs as its
measured speed fits into the budget (so both run a complete learning-rate schedule), plus the
hard stop train.time_budget_s. Results go to bench/results/train.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "train.md"


def run_train(data: str, out: Path, arch: str, sets: list[str]) -> dict:
    cmd = [sys.executable, "-m", "kws.trainer.cli", "--data", data, "--out", str(out), "--arch", arch, "-q"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if res.returncode:
        raise SystemExit(f"training {arch} failed:\n{res.stderr[-2000:]}")
    state = json.loads((out / "state.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    split = json.loads((out / "split.json").read_text())
    return {"wall_s": time.time() - t0, "state": state, "metrics": metrics,
            "n_train": len(split["splits"]["training"])}


def _n_train(data: str, tmp: str, arch: str) -> int:
    split = json.loads((Path(tmp) / f"speed_{arch}" / "split.json").read_text())
    return len(split["splits"]["training"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset folder (e.g. data/demo from make demo)")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds of training per model for the comparison")
    ap.add_argument("--models", default="ds_cnn,conv,low_latency_conv,tiny_conv")
    ap.add_argument("--batch-size", type=int, default=32, help="clips per step (make demo uses 32)")
    args = ap.parse_args()
    from kws.trainer.config import Config
    from kws.trainer.models import build_model, default_learning_rate, model_info

    rows, speeds = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.models.split(","):
            r = run_train(args.data, Path(tmp) / f"speed_{arch}", arch,
                          ["train.epochs=2", f"train.batch_size={args.batch_size}"])
            epoch2 = r["state"]["history"][-1]["seconds"]
            speeds[arch] = r["n_train"] / epoch2
            info = model_info(build_model(arch, Config().features.input_shape, len(r["metrics"]["labels"]),
                                          Config().model))
            rows.append((arch, info["params"], info["macs"], speeds[arch]))
            print(f"{arch}: {speeds[arch]:.0f} clips/s", file=sys.stderr)
        comparison = []
        for arch in ("ds_cnn", "conv"):
            # epochs that fit the budget at the measured speed, with 15% for validation passes
            n_train = _n_train(args.data, tmp, arch)
            epochs = max(1, int(args.budget / (n_train / speeds[arch] * 1.15)))
            r = run_train(args.data, Path(tmp) / f"budget_{arch}", arch,
                          [f"train.epochs={epochs}", f"train.time_budget_s={args.budget}",
                           f"train.batch_size={args.batch_size}"])
            m = r["metrics"]
            comparison.append((arch, default_learning_rate(arch), epochs, r["state"]["epochs_done"],
                               r["state"]["train_seconds"], m["validation"]["accuracy"],
                               m["test"]["accuracy"] if m.get("test") else None))
            print(f"{arch}: budget run done", file=sys.stderr)

    cmd = f"python -m bench.bench_train --data {args.data} --budget {args.budget:.0f} --batch-size {args.batch_size}"
    lines = [
        "## Training",
        "",
        f"Command: `{cmd}` on {platform.machine()}, {os.cpu_count()} cores, CPU only, TensorFlow "
        f"{__import__('tensorflow').__version__}; data `{args.data}`.",
        "",
        f"| model | parameters | MACs / inference | training clips/s (batch {args.batch_size}, with augmentation) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {p:,} | {m / 1e6:.1f} M | {s:.0f} |" for a, p, m, s in rows]
    lines += [
        "",
        f"Same data, same time budget ({args.budget:.0f} s of training each; epochs chosen so the learning-rate "
        "schedule completes within it):",
        "",
        "| model | learning rate (auto) | epochs planned | epochs run | training s | validation accuracy | test accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {a} | {lr:g} | {e} | {d} | {s:.0f} | {v * 100:.2f}% | {'n/a' if t is None else f'{t * 100:.2f}%'} |"
              for a, lr, e, d, s, v, t in comparison]
    cost = {a: (p, m) for a, p, m, _ in rows}
    if "ds_cnn" in cost and "conv" in cost:
        lines += ["", f"ds_cnn's compute is {cost['ds_cnn'][1] / cost['conv'][1] * 100:.1f}% of conv's "
                  f"(multiply-accumulates per inference), its parameters {cost['ds_cnn'][0] / cost['conv'][0] * 100:.1f}%."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
