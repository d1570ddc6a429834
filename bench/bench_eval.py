"""Streaming benchmark: FA/h vs FRR of a converted "computer" model on a stream built from the
shared real audio (noise/ as background, speech/computer as keywords, speech/not_keyword as
unknown words), via kws-eval.

    python -m bench.bench_eval --model models/<run>/dist --hours 1

Writes bench/results/eval.md (and the full report next to it in bench/results/eval/).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "eval.md"
REPORT_DIR = ROOT / "results" / "eval"
SHARED = ROOT.parent.parent / "shared" / "data"
NO_PERCENTAGE = "n/a"  # what kws-eval reports as null (no keywords, no keyword-free time, no detection)


def _pct(value: float | None) -> str:
    """'12.5%' of a tutorial percentage, or n/a where the report has none (null)."""
    return NO_PERCENTAGE if value is None else f"{value}%"


def _frr(rate: float | None) -> str:
    """'12.5%' of a false-reject rate, or n/a where the report has none (null: no keyword in the
    stream), never 0.0% as if every keyword had been found."""
    return NO_PERCENTAGE if rate is None else f"{100 * rate:.1f}%"


def _fa(rate: float | None) -> str:
    """False accepts per hour, or n/a where the report has none (null: no keyword-free audio)."""
    return NO_PERCENTAGE if rate is None else f"{rate}"


def _seconds(value: float | None) -> str:
    """'0.42 s' of a latency, or n/a where the report has none (null: no keyword detected)."""
    return NO_PERCENTAGE if value is None else f"{value} s"


def result_lines(rep: dict, shown: str, model: str, note: str, data: Path, snr: str, wall: float) -> list[str]:
    """The Markdown of bench/results/eval.md for kws-eval's JSON report ``rep``."""
    at = rep["at_manifest_thresholds"]
    tut = at["tutorial"]
    lines = [
        "## Streaming evaluation: FA/h vs FRR",
        "",
        f"Command: `{shown}`  ",
        f"Model: `{model}` {note}  ",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}; "
        f"edge recognizer used: {rep['edge_recognizer']}  ",
        f"Stream: {rep['duration_s'] / 60:.1f} min built from `{data}` (noise/ background at SNR {snr} dB, "
        f"speech/computer keywords, speech/not_keyword as unknown words): {at['keywords']} keywords, "
        f"{at['unknown_word_events']} unknown words, {at['keyword_free_hours']:.3f} keyword-free hours.  ",
        f"Time: {wall:.0f} s in all (model pass {rep['timing_s']['model']} s over {rep['timing_s']['hops']} hops, "
        f"smoothing sweep {rep['timing_s']['smoothing']} s).",
        "",
        f"At the manifest's thresholds {rep['thresholds']} (window {rep['smoothing']['average_window_ms']:g} ms): "
        f"matched {_pct(tut['matched_pct'])}, correctly {_pct(tut['correctly_matched_pct'])}, wrongly "
        f"{_pct(tut['wrongly_matched_pct'])}, false positives {_pct(tut['false_positive_pct'])} (+-1500 ms); "
        f"FA/h {_fa(at['fa_per_hour'])}, FRR {_frr(at['frr'])}, latency after keyword end median "
        f"{_seconds(at['latency_s']['median'])}, p90 {_seconds(at['latency_s']['p90'])}.",
        "",
        "| threshold | FA/h | FRR | correctly matched | false positives | latency median (s) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rep["curve"]:
        lines.append(f"| {r['threshold']} | {_fa(r['fa_per_hour'])} | {_frr(r['frr'])} | "
                     f"{_pct(r['tutorial']['correctly_matched_pct'])} | {_pct(r['tutorial']['false_positive_pct'])} | "
                     f"{NO_PERCENTAGE if r['latency_s']['median'] is None else r['latency_s']['median']} |")
    return lines + ["", "Curve: `bench/results/eval/fa_frr_curve.png`; full report: `bench/results/eval/eval.json`.",
                    ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="converted folder (manifest.json + .tflite) of a 'computer' model")
    ap.add_argument("--data", default=str(SHARED), help="the shared data folder (noise/, speech/)")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--snr", default="5:20")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--note", default="", help="a line about the model, printed in the results")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "speech" / "computer").is_dir():
        raise SystemExit(f"{data}/speech/computer is missing: this benchmark needs the shared real audio")
    cmd = [sys.executable, "-m", "kws.evaluation.eval_cli", "-m", args.model, "--keywords", str(data / "speech"),
           "--noise", str(data / "noise"), "--hours", str(args.hours), "--snr", args.snr, "--seed", str(args.seed),
           "--report", str(REPORT_DIR), "--json"]
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"kws-eval failed:\n{res.stderr[-3000:]}")
    wall = time.time() - t0
    rep = json.loads(res.stdout.strip().splitlines()[-1])
    shown = "python -m bench.bench_eval " + " ".join(a if " " not in a else repr(a) for a in ["--model", args.model,
                                                           "--hours", str(args.hours), "--snr", args.snr])
    lines = result_lines(rep, shown, args.model, args.note, data, args.snr, wall)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
