"""kws-synth throughput: clips per second for 10 words x 500 clips on this machine.

    flock /tmp/kws-bench.lock python -m bench.bench_synth [--jobs 2] [--per-word 500]

Writes bench/results/synth.md with the command, the machine (cores, CPU model, load at the start)
and the wall time of the whole kws-synth process (start-up included).
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "synth.md"
WORDS = "yes,no,up,down,left,right,on,off,stop,go"
SEED = 1
TARGET_S = 60.0
TARGET_CLIPS_PER_WORD = 500


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--per-word", type=int, default=TARGET_CLIPS_PER_WORD)
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "kws.synth.cli", "--words", WORDS, "--per-word", str(args.per_word),
               "--negatives", "0", "--jobs", str(args.jobs), "--out", f"{tmp}/set", "-q", "--seed", str(SEED)]
        t0 = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True, check=True)
        seconds = time.time() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # kws-synth and all its workers
    cpu_s = usage.ru_utime + usage.ru_stime
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    n = 10 * args.per_word
    summary = res.stdout.strip().replace(tmp, "$TMP")
    verdict = "met" if seconds < TARGET_S else "missed"
    text = (f"## Synthesis (kws-synth)\n\n"
            f"Command: `flock /tmp/kws-bench.lock python -m bench.bench_synth --jobs {args.jobs} --per-word "
            f"{args.per_word}`, which runs `kws-synth --words {WORDS} --per-word {args.per_word} --negatives 0 "
            f"--jobs {args.jobs} --seed {SEED} -q` (every engine installed: espeak-ng, flite, festival).\n\n"
            f"Machine: {platform.machine()}, {os.cpu_count()} cores (nproc), {cpu_model()}; 1-minute load "
            f"average {load:.2f} at the start, {load_end:.2f} at the end (the machine is shared: a load above "
            f"~2 means other work took CPU from this run).\n\n"
            f"| clips | jobs | wall seconds (whole process) | clips/s | CPU seconds (all processes) |\n"
            f"|---:|---:|---:|---:|---:|\n"
            f"| {n} | {args.jobs} | {seconds:.1f} | {n / seconds:.0f} | {cpu_s:.1f} |\n\n"
            f"Tool summary: `{summary}`\n\n"
            f"Target: 10 words x {TARGET_CLIPS_PER_WORD} clips in under {TARGET_S:.0f} s on 2 cores: {verdict} "
            f"at {n} clips. The committed version before this one took 74.2 s (festival at ~210 ms a call); now "
            f"espeak-ng runs in-process through libespeak-ng and festival renders a whole shard per process "
            f"(batch mode).\n")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
