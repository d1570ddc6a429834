"""kws-synth throughput: clips per second for 10 words x 500 clips on this machine.

    python -m bench.bench_synth [--jobs 2] [--per-word 500]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "synth.md"
WORDS = "yes,no,up,down,left,right,on,off,stop,go"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--per-word", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "kws.synth.cli", "--words", WORDS, "--per-word", str(args.per_word),
               "--negatives", "0", "--jobs", str(args.jobs), "--out", f"{tmp}/set", "-q", "--seed", "1"]
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        seconds = time.time() - t0
    n = 10 * args.per_word
    text = (f"## Synthesis (kws-synth)\n\nCommand: `python -m bench.bench_synth --jobs {args.jobs} --per-word "
            f"{args.per_word}` on {platform.machine()}, {os.cpu_count()} cores.\n\n"
            f"| clips | jobs | wall seconds (incl. start-up) | clips/s |\n|---:|---:|---:|---:|\n"
            f"| {n} | {args.jobs} | {seconds:.1f} | {n / seconds:.0f} |\n\n"
            f"Tool summary: `{res.stdout.strip()}`\n\nTarget: 10 words x 500 clips in under 60 s on 2 cores.\n")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
