"""Paired kws-listen runs of two runtimes of the same venv, alternating, each after the venv's libraries
were dropped from the page cache and read back by one unmeasured run (as bench_edge --cold-libraries):
peak RSS and process CPU per run, and their medians.

    python -m bench.edge_runtime_ab --model /tmp/demo30/dist --seconds 1 --runs 5
    python -m bench.edge_runtime_ab --model /tmp/demo30/dist --seconds 900 --runs 3

This process never loads numpy (the WAV is written by a child), so that the drop reaches numpy's libraries.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from bench.bench_edge import REPO, drop_library_cache, run_listen, write_wavs_apart


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of the noise WAV")
    ap.add_argument("--runs", type=int, default=3, help="runs per runtime")
    ap.add_argument("--runtimes", default="litert-c,litert", help="comma-separated kws-listen --runtime values")
    args = ap.parse_args()
    bin_dir = REPO / ".venv" / "bin"
    with tempfile.TemporaryDirectory(prefix="kws-edge-ab-") as tmp:
        wav = Path(tmp) / "noise.wav"
        write_wavs_apart([(wav, args.seconds / 3600)])
        load = [os.getloadavg()[0]]
        results: dict[str, list[dict]] = {}
        for _ in range(args.runs):
            for runtime in args.runtimes.split(","):
                drop_library_cache([REPO / ".venv"])
                run_listen(bin_dir, runtime, args.model, wav, Path(tmp) / "warm.json")
                results.setdefault(runtime, []).append(run_listen(bin_dir, runtime, args.model, wav,
                                                                  Path(tmp) / "run.json"))
                load.append(os.getloadavg()[0])
    print(f"{args.seconds:g} s of noise, {args.runs} runs each, load average {min(load):.1f} to {max(load):.1f}")
    for runtime, runs in results.items():
        rss = statistics.median(r["rss"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        print(f"{runtime}: peak RSS {[round(r['rss'], 1) for r in runs]} median {rss:.1f} MiB; CPU "
              f"{[round(r['cpu'], 3) for r in runs]} median {cpu:.3f} s (RTF {cpu / args.seconds:.4f})")


if __name__ == "__main__":
    main()
