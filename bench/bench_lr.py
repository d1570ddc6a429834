"""Learning rate and input standardisation per architecture, chosen on validation accuracy.

    python -m bench.bench_lr --data data/demo

Every architecture is trained with each peak learning rate of its grid (Adam, the default cosine
schedule), with and without the input standardisation (model.input_normalization true / false), for
the same number of epochs; the best validation accuracy of each run is reported. This is what
``train.learning_rate: auto`` and ``model.input_normalization: false`` were chosen from: the test
split is not looked at. Results go to bench/results/lr.md.
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

RESULTS = Path(__file__).resolve().parent / "results" / "lr.md"
GRIDS = {
    "conv": (0.002, 0.001, 0.0005),
    "low_latency_conv": (0.005, 0.002, 0.001, 0.0005),
    "tiny_conv": (0.005, 0.002, 0.001, 0.0005),
    "ds_cnn": (0.005, 0.002, 0.001),
}
NORMALIZATION = ("off", "on")  # model.input_normalization false / true


def run(data: str, out: Path, arch: str, lr: float, norm: str, epochs: int, batch: int) -> dict:
    cmd = [sys.executable, "-m", "kws.trainer.cli", "--data", data, "--out", str(out), "--arch", arch, "-q",
           "--set", f"train.learning_rate={lr}",
           "--set", f"model.input_normalization={str(norm == 'on').lower()}",
           "--set", f"train.epochs={epochs}", "--set", f"train.batch_size={batch}"]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if res.returncode:
        raise SystemExit(f"training {arch} lr={lr} norm={norm} failed:\n{res.stderr[-2000:]}")
    state = json.loads((out / "state.json").read_text())
    hist = state["history"]
    return {"arch": arch, "lr": lr, "norm": norm, "best_val": max(h["val_accuracy"] for h in hist),
            "last_loss": hist[-1]["loss"], "wall_s": time.time() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="dataset folder (e.g. data/demo from make demo)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--models", default=",".join(GRIDS))
    args = ap.parse_args()
    from kws.trainer.models import DEFAULT_LEARNING_RATES

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.models.split(","):
            for lr in GRIDS[arch]:
                for norm in NORMALIZATION:
                    r = run(args.data, Path(tmp) / f"{arch}_{lr}_{norm}", arch, lr, norm, args.epochs,
                            args.batch_size)
                    results.append(r)
                    print(f"{arch} lr {lr} normalization {norm}: best validation {r['best_val']:.3f} "
                          f"({r['wall_s']:.0f} s)", file=sys.stderr, flush=True)

    cmd = (f"python -m bench.bench_lr --data {args.data} --epochs {args.epochs} --batch-size {args.batch_size}"
           + (f" --models {args.models}" if args.models != ",".join(GRIDS) else ""))
    lines = [
        "## Learning rate and input standardisation per architecture",
        "",
        f"Command: `{cmd}` on {platform.machine()}, {os.cpu_count()} cores, CPU only. Each cell: best "
        f"validation accuracy over {args.epochs} epochs (batch {args.batch_size}, Adam, cosine schedule, "
        "one seed) / the last epoch's training loss; chance is 1/12 (loss 2.48). `norm on`: the model "
        "starts with a per-feature standardisation by the training set's mean and standard deviation. "
        "The test split was not used to choose.",
        "",
        "| model | learning rate | norm off | norm on |",
        "|---|---:|---:|---:|",
    ]
    by_key = {(r["arch"], r["lr"], r["norm"]): r for r in results}
    for arch in args.models.split(","):
        for lr in GRIDS[arch]:
            cells = [f"{by_key[(arch, lr, n)]['best_val'] * 100:.1f}% / {by_key[(arch, lr, n)]['last_loss']:.2f}"
                     for n in NORMALIZATION]
            lines.append(f"| {arch} | {lr:g} | {cells[0]} | {cells[1]} |")
    lines += [
        "",
        "The defaults now (`train.learning_rate: auto`): "
        + ", ".join(f"{a} {DEFAULT_LEARNING_RATES[a]:g}" for a in args.models.split(","))
        + "; `model.input_normalization: false`. Compare them with the table above.",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
