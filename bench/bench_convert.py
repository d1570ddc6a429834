"""Conversion benchmark: for every architecture in the registry, train briefly, run kws-convert,
and report Keras / float / int8 test accuracy, model sizes and per-inference latency with
ai-edge-litert (this environment) and tflite-runtime 2.14 (.venv-edge), one thread.

    python -m bench.bench_convert --data data/demo --epochs 20

Results go to bench/results/convert.md (python -m bench.collect adds them to docs/BENCHMARKS.md).
Latency is the median of 50 calls of one inference (quantize, invoke, dequantize) after 5 warm-up
calls, as measured by kws-convert itself (see convert_report.json).
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

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "convert.md"
DEFAULT_DATA = "data/demo"
DEFAULT_EPOCHS = 20
DEFAULT_BATCH = 32
EXIT_GUARD = 3


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def train(data: str, out: Path, arch: str, epochs: int, batch: int) -> dict:
    cmd = [sys.executable, "-m", "kws.trainer.cli", "--data", data, "--out", str(out), "--arch", arch, "-q",
           "--set", f"train.epochs={epochs}", "--set", f"train.batch_size={batch}"]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO)
    if res.returncode:
        raise SystemExit(f"training {arch} failed:\n{res.stderr[-2000:]}")
    info = json.loads((out / "model_info.json").read_text())
    return {"seconds": time.time() - t0, "info": info}


def convert(run: Path, out: Path) -> tuple[int, dict, float, str]:
    cmd = [sys.executable, "-m", "kws.converters.cli", "-m", str(run), "--out", str(out), "-q"]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO)
    seconds = time.time() - t0
    report_path = out / "convert_report.json"
    if res.returncode not in (0, EXIT_GUARD) or not report_path.is_file():
        raise SystemExit(f"kws-convert of {run} failed (exit {res.returncode}):\n{res.stderr[-2000:]}")
    return res.returncode, json.loads(report_path.read_text()), seconds, res.stderr.strip()


# Runs in a Python that has the tflite-micro package: the smallest arena (16-byte resolution) with
# which the TFLM interpreter builds the model and runs one inference.
TFLM_ARENA_SCRIPT = r"""
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
data = open(sys.argv[1], "rb").read()
def fits(n):
    try:
        it = runtime.Interpreter.from_bytes(data, arena_size=n)
        d = it.get_input_details(0)
        it.set_input(np.zeros(d["shape"], d["dtype"]), 0)
        it.invoke()
        return True
    except Exception:
        return False
lo, hi = 1024, 16 * 1024 * 1024
if not fits(hi):
    print(-1)
    sys.exit()
while hi - lo > 16:
    mid = (lo + hi) // 2
    lo, hi = (lo, mid) if fits(mid) else (mid, hi)
print(hi)
"""


def measure_arena(tflm_python: str | None, model: Path) -> int | None:
    """Exact TFLite Micro arena of a model, if a Python with tflite-micro was given."""
    if not tflm_python or not model.is_file():
        return None
    res = subprocess.run([tflm_python, "-c", TFLM_ARENA_SCRIPT, str(model)], capture_output=True, text=True)
    try:
        value = int(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return value if value > 0 else None


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _ms(rt: dict | None) -> str:
    if not rt or not rt.get("loaded") or rt.get("latency_ms") is None:
        return "n/a" if not rt else ("not installed" if str(rt.get("status", "")).startswith("not installed")
                                     else "failed")
    return f"{rt['latency_ms']:.3f}"


def _kb(n) -> str:
    return "-" if n is None else f"{n / 1024:.1f} KiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=DEFAULT_DATA, help=f"dataset folder (default {DEFAULT_DATA}, from make demo)")
    ap.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="training epochs per architecture")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--models", default="", help="comma-separated architectures (default: the whole registry)")
    ap.add_argument("--keep", metavar="DIR", help="keep the runs and conversions in DIR")
    ap.add_argument("--reuse", action="store_true", help="with --keep: reuse runs already trained there "
                    "(re-convert only)")
    ap.add_argument("--tflm-python", metavar="PYTHON", help="a python with the tflite-micro package, to measure "
                    "the exact TFLite Micro arena next to kws-convert's estimate (optional)")
    args = ap.parse_args()
    load_start = os.getloadavg()[0]
    data = Path(args.data)
    if not data.is_dir():
        print(f"bench_convert: skipped: {data} does not exist (run make demo first, or pass --data)", file=sys.stderr)
        return
    from kws.trainer.models import MODEL_BUILDERS

    archs = [a for a in args.models.split(",") if a] or list(MODEL_BUILDERS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kws-bench-convert-") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for arch in archs:
            run = root / f"run_{arch}"
            if args.reuse and (run / "model.keras").is_file():
                print(f"{arch}: reusing the trained run {run}", file=sys.stderr)
                t = {"seconds": None, "info": json.loads((run / "model_info.json").read_text())}
            else:
                print(f"{arch}: training {args.epochs} epochs", file=sys.stderr)
                t = train(str(data), run, arch, args.epochs, args.batch_size)
            print(f"{arch}: converting", file=sys.stderr)
            code, report, seconds, log = convert(root / f"run_{arch}", root / f"dist_{arch}")
            int8_file = root / f"dist_{arch}" / report["artifacts"]["int8"]["file"]
            report["measured_arena"] = measure_arena(args.tflm_python, int8_file)
            rows.append((arch, t, code, report, seconds))
            arts = report["artifacts"]
            print(f"{arch}: keras {_pct(report['keras']['accuracy'])} float {_pct(arts['float']['accuracy'])} "
                  f"int8 {_pct(arts['int8']['accuracy'])} int8 {_kb(arts['int8']['size_bytes'])}", file=sys.stderr)

    load_end = os.getloadavg()[0]
    cmd = (f"python -m bench.bench_convert --data {args.data} --epochs {args.epochs}"
           + (f" --models {args.models}" if args.models else "")
           + (f" --keep {args.keep}" if args.keep else "") + (" --reuse" if args.reuse else "")
           + (" --tflm-python <venv with tflite-micro>/bin/python" if args.tflm_python else ""))
    first = rows[0][3]
    lines = [
        "## Conversion (kws-convert): float vs int8",
        "",
        f"Command: `{cmd}` (each architecture trained {args.epochs} epochs, batch {args.batch_size}, then "
        "`kws-convert` with its defaults: 400 calibration clips, guard 1.0 point). "
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, 1-minute load average {load_start:.2f} at the start "
        f"and {load_end:.2f} at the end (above ~2, other work took CPU from this run), Python {platform.python_version()}, "
        f"TensorFlow {first.get('tensorflow')}. Accuracy on the {first['evaluation']['split']} split "
        f"({first['evaluation']['clips']} clips) with the edge runtime; latency = median of one inference "
        "(quantize + invoke + dequantize), one thread, in ms.",
        "",
        "| model | params | MACs | Keras | float | int8 | int8 - float | float size | int8 size | "
        "LiteRT float | LiteRT int8 | tflite-runtime 2.14 float | tflite-runtime 2.14 int8 | guard |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for arch, t, code, report, seconds in rows:
        a = report["artifacts"]
        f, q = a["float"], a["int8"]
        diff = None if f["accuracy"] is None or q["accuracy"] is None else (q["accuracy"] - f["accuracy"]) * 100
        guard = "passed" if report["guard"]["passed"] else "rejected: " + "; ".join(report["guard"]["failures"])
        lines.append(
            f"| {arch} | {t['info']['params']:,} | {t['info']['macs'] / 1e6:.1f} M | {_pct(report['keras']['accuracy'])} | "
            f"{_pct(f['accuracy'])} | {_pct(q['accuracy'])} | {'-' if diff is None else f'{diff:+.2f}'} | "
            f"{_kb(f['size_bytes'])} | {_kb(q['size_bytes'])} | {_ms(f['runtimes'].get('ai-edge-litert'))} | "
            f"{_ms(q['runtimes'].get('ai-edge-litert'))} | {_ms(f['runtimes'].get('tflite-runtime'))} | "
            f"{_ms(q['runtimes'].get('tflite-runtime'))} | {guard} |")
    lines += ["", "int8 ops (all checked against tflite-runtime 2.14's op versions), TFLite Micro arena estimate "
              "and conversion time (all formats, including evaluation):", ""]
    for arch, t, code, report, seconds in rows:
        q = report["artifacts"]["int8"]
        ops = ", ".join(f"{o['op']} v{o['version']}" for o in q["ops"])
        arena = q.get("micro_arena", {}).get("estimated_arena_bytes")
        measured = report.get("measured_arena")
        lines.append(f"- {arch}: {ops}; ops supported by 2.14: {'yes' if q['ops_supported'] else 'NO'}; "
                     f"arena estimate {'-' if arena is None else f'{arena:,} B'}"
                     + (f" (tflite-micro measured {measured:,} B)" if measured else "")
                     + f"; kws-convert {seconds:.0f} s (exit {code})")
    default = next((r for r in rows if r[0] == "ds_cnn"), None)
    if default:
        a = default[3]["artifacts"]
        diff = (a["int8"]["accuracy"] - a["float"]["accuracy"]) * 100
        lines += ["", f"Targets (ds_cnn): int8 within 0.5 points of float: {diff:+.2f} points "
                  f"({'met' if diff >= -0.5 else 'NOT met'}); int8 under 100 kB: "
                  f"{a['int8']['size_bytes']:,} B ({'met' if a['int8']['size_bytes'] < 100_000 else 'NOT met'})."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
