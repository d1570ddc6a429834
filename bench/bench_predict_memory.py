"""Memory benchmark: peak RSS of ``kws-predict`` on long audio (issue 14 item 7: it used to stack every
sliding window of a file at once, 6.1 GB for 10 minutes) and on a tiny WAV declaring an absurd rate.

    python -m bench.bench_predict_memory --model models/demo/dist

Writes 10-minute and 1-hour 16 kHz WAVs (and the 10 minutes as FLAC), runs ``kws-predict -m MODEL
FILE --json`` on each in its own process and records the peak RSS of that process (ru_maxrss of
the child), its wall time and its answer; then a 244-byte WAV declaring 1 Hz. Writes
bench/results/predict_memory.md. Target: peak RSS <= 200 MB on 1 h of audio.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kws.evaluation.predict import WINDOW_BATCH

from .bench_edge import write_long_wav

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
RESULTS = ROOT / "results" / "predict_memory.md"
KWS_PREDICT = REPO / ".venv" / "bin" / "kws-predict"
TARGET_MIB = 200 * 1000 * 1000 / 2 ** 20  # 200 MB
TINY_WAV_BYTES = 244
DECLARED_RATE = 1  # Hz, the absurd header


def measure(model: str, audio: Path) -> dict:
    """Exit status, wall seconds, peak RSS (MiB) and last output line of one kws-predict process."""
    code = ("import resource, subprocess, sys, json, time;"
            "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
            "w = time.perf_counter() - t;"
            "print(json.dumps([p.returncode, w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
            " ((p.stdout.strip().splitlines() or [''])[-1] if p.returncode == 0 else"
            "  (p.stderr.strip().splitlines() or [''])[0])]))")
    out = subprocess.run([sys.executable, "-c", code, str(KWS_PREDICT), "-m", model, str(audio), "--json"],
                         capture_output=True, text=True, check=True)
    rc, wall, rss_kb, last = json.loads(out.stdout.strip().splitlines()[-1])
    return {"rc": rc, "wall_s": wall, "rss_mib": rss_kb / 1024, "answer": last}


def tiny_wav_declaring(rate: int, path: Path) -> None:
    """A TINY_WAV_BYTES-long 16-bit mono WAV whose header says ``rate`` Hz."""
    data = bytes(TINY_WAV_BYTES - 44)
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
              struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data)))
    path.write_bytes(header + data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/demo/dist", help="converted folder (manifest.json + int8 model)")
    ap.add_argument("--hours", type=float, default=1.0, help="length of the long file")
    args = ap.parse_args()
    if not Path(args.model, "manifest.json").is_file():
        raise SystemExit(f"{args.model}/manifest.json missing: run make demo (or kws-convert) first")
    tmp = Path(tempfile.mkdtemp(prefix="kws-bench-predict-"))
    try:
        import soundfile as sf

        ten_min, long_wav, flac, tiny = tmp / "10min.wav", tmp / "long.wav", tmp / "10min.flac", tmp / "tiny.wav"
        t0 = time.time()
        write_long_wav(ten_min, 10 / 60)
        write_long_wav(long_wav, args.hours)
        data, rate = sf.read(ten_min, dtype="int16")
        sf.write(flac, data, rate, format="FLAC")
        tiny_wav_declaring(DECLARED_RATE, tiny)
        print(f"wrote the test files in {time.time() - t0:.0f} s", file=sys.stderr)
        rows = []
        for name, path in (("10 min WAV (16 kHz int16)", ten_min), ("10 min FLAC", flac),
                           (f"{args.hours:g} h WAV (16 kHz int16)", long_wav),
                           (f"{TINY_WAV_BYTES}-byte WAV declaring {DECLARED_RATE} Hz", tiny)):
            print(f"kws-predict {name} ...", file=sys.stderr)
            rows.append((name, path.stat().st_size, measure(args.model, path)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    long_rss = rows[2][2]["rss_mib"]
    manifest = json.loads(Path(args.model, "manifest.json").read_text())
    int8 = Path(args.model, manifest["models"]["int8"]["file"])
    lines = ["## Memory: `kws-predict` on long audio", "",
             f"Command: `python -m bench.bench_predict_memory --model {args.model} --hours {args.hours:g}` on "
             f"{platform.machine()}, Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the "
             f"end (a shared machine: wall times are indicative). Model: `{int8.name}` "
             f"({int8.stat().st_size / 1024:.1f} KiB, {len(manifest['labels'])} labels, ai-edge-litert). "
             "Each row is one `kws-predict -m MODEL FILE "
             "--json` process; peak RSS is that process's ru_maxrss. The file streams through the reader in blocks "
             f"and the sliding windows (100 ms hop) are scored {WINDOW_BATCH} at a time, so memory does not grow with "
             "length.",
             "", "| input | file size | peak RSS | wall time | exit | answer |", "|---|---|---|---|---|---|"]
    for name, size, r in rows:
        answer = r["answer"]
        if r["rc"] == 0:
            obj = json.loads(answer)
            answer = f"{obj['label']} {obj['score']:.2f}"
        lines.append(f"| {name} | {size / 1e6:.2f} MB | {r['rss_mib']:.0f} MiB | {r['wall_s']:.1f} s | {r['rc']} | "
                     f"{answer.replace('|', '/')} |")
    verdict = "met" if long_rss <= TARGET_MIB else "**missed**"
    lines += ["", f"Target: peak RSS <= 200 MB ({TARGET_MIB:.0f} MiB) on 1 h of audio: {verdict} "
              f"({long_rss:.0f} MiB). Before this change the same command peaked at 6.1 GB on 10 minutes "
              "(issue 14, item 7), and the 1 Hz file took 1.1 GB.", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
