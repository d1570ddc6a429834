"""Run every benchmark that has what it needs, then rebuild docs/BENCHMARKS.md.

    python -m bench.run_all            (make bench)

Needs the demo data (make demo) for the training benchmark.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO_DATA = REPO / "data" / "demo"


def main() -> None:
    steps = [["-m", "bench.bench_synth"]]
    if DEMO_DATA.is_dir():
        steps.append(["-m", "bench.bench_train", "--data", str(DEMO_DATA)])
    else:
        print(f"skipping bench_train: {DEMO_DATA} missing (run make demo first)", file=sys.stderr)
    for step in steps:
        subprocess.run([sys.executable, *step], cwd=REPO, check=True)
    subprocess.run([sys.executable, "-m", "bench.collect"], cwd=REPO, check=True)


if __name__ == "__main__":
    main()
