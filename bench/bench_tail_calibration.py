"""kws-eval --calibrate with and without the near misses' tail (evaluation/fa_tail.py), on the same
converted model: the thresholds each rule chooses on the validation speakers' stream, and what they
give on the unseen test speakers' stream and on held-out real running speech (issue 13's streams,
built by bench_unseen).

    python -m bench.bench_tail_calibration [--runs default-30ep] [--hours 0.5]

Needs bench_unseen's runs (bench/out/unseen/runs/NAME) and its stream folders. Results:
bench/results/tail_calibration.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from bench import bench_unseen as bu

RESULTS = bu.REPO / "bench" / "results" / "tail_calibration.md"
RULES = {"tail": [], "no tail": ["--no-tail"]}


def measure(run: Path, hours: float) -> dict:
    """Per rule: calibration, test stream and running speech at the chosen thresholds."""
    src = run / "dist"
    model_name = "model_int8.tflite" if (src / "model_int8.tflite").is_file() else "model_float.tflite"
    out = {}
    for rule, flags in RULES.items():
        dist = run / f"dist_tail_ab_{rule.replace(' ', '_')}"
        shutil.rmtree(dist, ignore_errors=True)
        shutil.copytree(src, dist)
        model = str(dist / model_name)
        stream = ["--noise", str(bu.TEST_NOISE), "--hours", str(hours), "--snr", bu.SNR, "--json"]
        cal = bu._run([sys.executable, "-m", "kws.evaluation.eval_cli", "-m", model, "--keywords",
                       str(bu.OUT / "stream_validation"), *stream, "--seed", "1", "--calibrate",
                       "--target-fa-per-hour", str(bu.TARGET_FA_PER_HOUR), *flags], f"calibrate ({rule})")
        test = bu._run([sys.executable, "-m", "kws.evaluation.eval_cli", "-m", model, "--keywords",
                        str(bu.OUT / "stream_test"), *stream, "--seed", "2"], f"test stream ({rule})")
        out[rule] = {"calibration": json.loads(cal.stdout.strip().splitlines()[-1])["calibration"],
                     "test": json.loads(test.stdout.strip().splitlines()[-1])["at_manifest_thresholds"],
                     "running": bu._running_speech_fa(model)["at_manifest_thresholds"]}
    return out


def render(results: dict, command: str) -> str:
    lines = ["## Calibration with and without the near misses' tail (issue 13's streams)", "",
             f"Command: `{command}`. Each converted model calibrated by `kws-eval --calibrate --target-fa-per-hour "
             f"{bu.TARGET_FA_PER_HOUR:g}` on the validation speakers' stream (Mycroft noise, {bu.SNR} dB SNR), "
             "once as now (a label with no false accept seen counts the number expected from its near misses) "
             "and once with `--no-tail` (the lowest threshold with none seen, the rule before); then measured "
             "at those thresholds on the unseen test speakers' stream and on the held-out running speech. "
             "The stream rows of the tables above were calibrated by the earlier rule (`--no-tail`'s). The "
             "models here come from bench_unseen's run folders as they are on this machine (this session: "
             "`python -m bench.bench_unseen --headline default --variants '' --extra '' --epochs 30 "
             "--stream-hours 0.5`, 97.08% on the unseen speakers' clips, int8 97.08%, 5.3 min of training), "
             "not the run in the table above.", "",
             "| model | rule | thresholds (window) | calibration: FA/h seen (expected) on h, FRR | test speakers: "
             "recall, FA/h (n) | running speech: FA/h (n in h) |", "|---|---|---|---|---|---|"]
    for name, per_rule in results.items():
        for rule, r in per_rule.items():
            c, t, s = r["calibration"], r["test"], r["running"]
            th = ", ".join(f"{k} {v:g}" for k, v in c["thresholds"].items())
            exp = f" ({c['fa_per_hour_expected']})" if c.get("tail") else ""
            lines.append(f"| {name} | {rule} | {th} ({c['average_window_ms']:g} ms) | {c['fa_per_hour']}{exp} on "
                         f"{c['fa_hours']:.3f} h, FRR {100 * c['frr']:.1f}% | {100 * (1 - t['frr']):.1f}%, "
                         f"{t['fa_per_hour']} ({t['false_accepts']} in {t['keyword_free_hours']:.3f} h) | "
                         f"{s['fa_per_hour']} ({s['false_accepts']} in {s['keyword_free_hours']:.3f} h) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="default-30ep", help="bench_unseen run folders (comma-separated)")
    ap.add_argument("--hours", type=float, default=0.5)
    ap.add_argument("--render", action="store_true", help="only rewrite the markdown from tail_calibration.json")
    args = ap.parse_args()
    if args.render:
        raw = json.loads((bu.OUT / "tail_calibration.json").read_text())
        command = RESULTS.read_text().split("Command: `", 1)[1].split("`", 1)[0] if RESULTS.is_file() else "?"
        RESULTS.write_text(render(raw, command))
        print(RESULTS.read_text())
        return
    results = {}
    for name in [n for n in args.runs.split(",") if n]:
        run = bu.OUT / "runs" / name
        if not (run / "dist" / "manifest.json").is_file():
            raise SystemExit(f"{run}: no converted model; run bench_unseen with its streams first")
        results[name] = measure(run, args.hours)
        (bu.OUT / "tail_calibration.json").write_text(json.dumps(results, indent=1))
    RESULTS.write_text(render(results, "python -m bench.bench_tail_calibration " + " ".join(sys.argv[1:])))
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
