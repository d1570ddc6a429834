"""Paired A/B of kws-listen on one core: an earlier kws (installed with ``pip install --no-deps --target
DIR`` from that commit, put first on PYTHONPATH) and this checkout's, alternating run by run, so both
see the same machine load (on a shared machine the load moves more between two bench_edge runs than
the change being measured). Per side: median CPU s, wall s and peak RSS of ``--runs`` runs.

    git worktree add --detach /tmp/kws-base <commit> && pip install --no-deps --target /tmp/base-kws /tmp/kws-base
    python -m bench.bench_edge_ab --base-site /tmp/base-kws --base-model models/demo/dist \\
        --model /tmp/demo30/dist --runtime litert --seconds 900 --runs 3

``--runtime tflite-runtime`` runs .venv-edge's kws-listen. ``--cold-libraries`` drops that venv's
shared libraries from the page cache first and runs each side once unmeasured (bench_edge).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from bench.bench_edge import RUNTIMES, drop_library_cache, measured, write_long_wav


def run(bin_dir: Path, runtime: str, model: str, wav: Path, env: dict, summary: Path) -> dict:
    cmd = [str(bin_dir / "kws-listen"), "-m", model, "--wav", str(wav), "--runtime", runtime, "--threads", "1",
           "--json", "-q", "--summary-json", str(summary)]
    r = measured(bin_dir / "python", cmd, env=env)
    if r["rc"] != 0:
        raise SystemExit(f"kws-listen failed: {r['stderr'][-1500:]}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-site", required=True, help="folder holding the earlier kws package (pip --target)")
    ap.add_argument("--base-model", required=True, help="model folder the earlier kws runs")
    ap.add_argument("--model", required=True, help="model folder this checkout runs")
    ap.add_argument("--runtime", default="litert", choices=[r for _, _, r in RUNTIMES])
    ap.add_argument("--seconds", type=float, default=900.0, help="length of the noise WAV")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cold-libraries", action="store_true")
    args = ap.parse_args()
    bin_dir = next(b for _, b, r in RUNTIMES if r == args.runtime)
    sides = {"before": ({**os.environ, "PYTHONPATH": str(Path(args.base_site).resolve())}, args.base_model),
             "after": ({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, args.model)}
    with tempfile.TemporaryDirectory(prefix="kws-bench-ab-") as tmp:
        wav = Path(tmp) / "noise.wav"
        write_long_wav(wav, args.seconds / 3600)
        if args.cold_libraries:
            drop_library_cache([bin_dir.parent])
            for env, model in sides.values():
                run(bin_dir, args.runtime, model, wav, env, Path(tmp) / "s.json")
        load = [os.getloadavg()[0]]
        results: dict[str, list[dict]] = {k: [] for k in sides}
        for _ in range(args.runs):
            for name, (env, model) in sides.items():
                results[name].append(run(bin_dir, args.runtime, model, wav, env, Path(tmp) / "s.json"))
        load.append(os.getloadavg()[0])
    out = {"runtime": args.runtime, "seconds": args.seconds, "runs": args.runs,
           "load_1min": [round(min(load), 1), round(max(load), 1)]}
    for name, rows in results.items():
        cpu = statistics.median(r["cpu"] for r in rows)
        out[name] = {"model": sides[name][1], "cpu_s": round(cpu, 3), "rtf": round(cpu / args.seconds, 5),
                     "wall_s": round(statistics.median(r["wall"] for r in rows), 3),
                     "peak_rss_mib": round(statistics.median(r["rss"] for r in rows), 1),
                     "cpu_all": [round(r["cpu"], 3) for r in rows]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
