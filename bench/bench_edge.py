"""Edge benchmark: kws-listen on one core with the default int8 model, for ai-edge-litert (.venv: its C
API, kws-listen's default, and its Python interpreter) and tflite-runtime 2.14 (.venv-edge); optionally
microWakeWord's runtime on the same audio.

    python -m bench.bench_edge --model models/demo/dist --keywords data/demo [--model-file NAME]
                               [--hours 1] [--micro-wakeword]

Measures, per runtime: real-time factor streaming a long WAV (default 1 hour): the kws-listen
process's CPU time (user + system) per second of audio, pinned to one core, so other load on the
machine does not inflate it; per-hop processing time p50/p99 (wall clock, so a loaded machine inflates
it); peak RSS of the kws-listen process; start-up to first inference (a whole kws-listen run on a 1 s
WAV: imports, model load, 25 hops, exit; wall and CPU); and detection latency after the end of a
keyword (kws-eval on a stream built from --keywords). ``--model-file`` picks one model file of the
folder (e.g. a streaming model beside the int8 one). ``--micro-wakeword`` installs pymicro-wakeword
into a throwaway venv (bench only, never a kws dependency) and streams the same long WAV through its
``alexa`` model. Writes bench/results/edge.md (``python -m bench.collect`` puts it into BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
RESULTS = ROOT / "results" / "edge.md"
RUNTIMES = (("ai-edge-litert C API (libLiteRt.so, the default)", REPO / ".venv" / "bin", "litert-c"),
            ("ai-edge-litert Python interpreter", REPO / ".venv" / "bin", "litert"),
            ("tflite-runtime", REPO / ".venv-edge" / "bin", "tflite-runtime"))
LONG_RUNTIMES = ("litert-c", "litert")  # the ones streamed for --hours (tflite-runtime: --slow-hours)
STARTUP_RUNS = 5
SAMPLE_RATE = 16000
MWW_MODEL = "alexa"
MWW_PACKAGE = "pymicro-wakeword"
MWW_RUNNER = ROOT / "mww_runner.py"
KIB_PER_MIB = 1024
BLOCK_S = 60  # the long WAV is written a minute at a time


def write_long_wav(path: Path, hours: float, seed: int = 0) -> None:
    """Pink-ish noise with a quiet tone burst every few seconds: speech-like load for the frontend."""
    import wave

    import numpy as np

    rng = np.random.default_rng(seed)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        left = int(round(hours * 3600 * SAMPLE_RATE))
        while left > 0:
            n = min(left, SAMPLE_RATE * BLOCK_S)
            left -= n
            noise = np.cumsum(rng.normal(0, 1, n))
            noise -= np.convolve(noise, np.ones(400) / 400, mode="same")
            noise *= 0.02 / (noise.std() + 1e-9)
            w.writeframes((np.clip(noise, -1, 1) * 32767).astype("<i2").tobytes())


def write_wavs_apart(jobs: list[tuple[Path, float]]) -> None:
    """write_long_wav in a child process: this process never maps numpy's libraries, so that
    drop_library_cache can drop them (the page cache keeps every page some process maps)."""
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
            "from bench.bench_edge import write_long_wav;"
            "[write_long_wav(Path(p), float(h)) for p, h in zip(sys.argv[2::2], sys.argv[3::2])]")
    subprocess.run([sys.executable, "-c", code, str(REPO)] + [str(x) for job in jobs for x in job], check=True)


def one_core() -> list[str]:
    return ["taskset", "-c", "0"] if shutil.which("taskset") else []


# A small wrapper process runs each measured command and reports its child's wall time, CPU time and
# peak RSS: Linux carries a process's peak RSS across fork and exec, so a command started straight from
# this (numpy-holding) process would report this process's RSS as its own.
MEASURE = ("import resource, subprocess, sys, json, time;"
           "t = time.perf_counter(); p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True);"
           "w = time.perf_counter() - t; u = resource.getrusage(resource.RUSAGE_CHILDREN);"
           "print(json.dumps([p.returncode, w, u.ru_utime + u.ru_stime, u.ru_maxrss, p.stdout[-4000:]]))")


def measured(python: Path, cmd: list[str], env: dict | None = None) -> dict:
    """Run ``cmd`` on one core under the wrapper: rc, wall and CPU seconds, peak RSS (MiB), stdout's end."""
    out = subprocess.run(one_core() + [str(python), "-c", MEASURE] + cmd, capture_output=True, text=True, check=True,
                         env=env)
    rc, wall, cpu, rss_kb, stdout = json.loads(out.stdout.strip().splitlines()[-1])
    return {"rc": rc, "wall": wall, "cpu": cpu, "rss": rss_kb / KIB_PER_MIB, "stdout": stdout, "stderr": out.stderr}


def drop_library_cache(venvs: list[Path]) -> int:
    """posix_fadvise(DONTNEED) on every shared library of ``venvs``: their pages leave the page cache,
    as after a reboot. Peak RSS counts the library pages a process maps, and a page already in the
    cache is mapped along with its faulting neighbours (fault-around), so the same kws-listen run (1 s
    WAV, the demo model with 30 ms steps, before issue 15's start-up trims) peaked at 57.2 MiB right
    after `pip install` wrote its libraries and at 51.1 MiB once they were read back from disk. Only
    these files are touched. A page that some process maps stays cached: the caller must not have
    these venvs' libraries loaded (this script keeps numpy out of its own process for that)."""
    count = 0
    for venv in venvs:
        for path in venv.rglob("*.so*"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                # pages not yet written back (a venv pip has just written) stay in the cache whatever
                # DONTNEED says: write them first (measured: a fresh .venv's numpy libraries stayed cached
                # and its kws-listen peaked ~6 MiB higher)
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count


# What a process takes before any kws code: Python, numpy, the runtime and one interpreter of the
# step model (one invoke); kws-listen adds click, its modules, the frontend, buffers and the WAV reader.
FLOOR = ("import sys, numpy, importlib; it = importlib.import_module(sys.argv[1]).Interpreter("
         "model_path=sys.argv[2], num_threads=1); it.allocate_tensors(); it.invoke()")
FLOOR_MODULES = {"litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}
# the same through the C API: kws.edge.litert_c (with kws.edge's errors and manifest modules) and one run
FLOOR_C = ("import sys, numpy; from kws.edge import litert_c; cm = litert_c.CompiledModel(sys.argv[2]); cm.run()")


def floor(bin_dir: Path, runtime: str, model_file: Path) -> dict:
    """Median peak RSS (MiB) and CPU of STARTUP_RUNS runs of FLOOR on one core."""
    code, module = (FLOOR_C, "-") if runtime == "litert-c" else (FLOOR, FLOOR_MODULES[runtime])
    runs = [measured(bin_dir / "python", [str(bin_dir / "python"), "-c", code, module,
                                          str(model_file)]) for _ in range(STARTUP_RUNS)]
    return {"rss": statistics.median(r["rss"] for r in runs), "cpu": statistics.median(r["cpu"] for r in runs)}


def run_listen(bin_dir: Path, runtime: str, model: str, wav: Path, summary: Path) -> dict:
    """One kws-listen --wav run in its own process: its summary, wall and CPU seconds, peak RSS (MiB)."""
    r = measured(bin_dir / "python", [str(bin_dir / "kws-listen"), "-m", model, "--wav", str(wav), "--runtime",
                                      runtime, "--threads", "1", "--json", "-q", "--summary-json", str(summary)])
    if r["rc"] != 0:
        raise SystemExit(f"kws-listen failed ({runtime}): {r['stderr'][-2000:]}")
    return {"summary": json.loads(summary.read_text()), "wall": r["wall"], "cpu": r["cpu"], "rss": r["rss"]}


def micro_wakeword(wav: Path, venv: Path | None, tmp: Path) -> dict:
    """pymicro-wakeword's alexa model over the same WAV, in a throwaway venv (made here unless given)."""
    if venv is None:
        venv = tmp / "mww-venv"
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", MWW_PACKAGE], capture_output=True,
                             text=True) if made.returncode == 0 else made
        if pip.returncode != 0:
            return {"error": f"pip install {MWW_PACKAGE} failed: {(pip.stderr.strip() or 'no output')[-300:]}"}
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.metadata as m;"
                              f"print(m.version('{MWW_PACKAGE}'))"], capture_output=True, text=True).stdout.strip()
    python = venv / "bin" / "python"
    r = measured(python, [str(python), str(MWW_RUNNER), str(wav), "--model", MWW_MODEL])
    if r["rc"] != 0 or not r["stdout"].strip():
        return {"error": "the runner failed"}
    inner = json.loads(r["stdout"].strip().splitlines()[-1])
    return {**inner, "process_cpu_s": r["cpu"], "peak_rss_mib": r["rss"], "version": version}


def latency(model: str, keywords: str, hours: float) -> dict:
    cmd = one_core() + [str(REPO / ".venv" / "bin" / "kws-eval"), "-m", model, "--keywords", keywords,
                        "--hours", str(hours), "--snr", "10:20", "--seed", "1", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "kws-eval failed"}
    rep = json.loads(out.stdout)["at_manifest_thresholds"]
    return {"median_s": rep["latency_s"]["median"], "keywords": rep["keywords"], "frr": rep["frr"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/demo/dist", help="converted folder (manifest.json + models)")
    ap.add_argument("--model-file", help="model file in that folder to run (default: the manifest's int8)")
    ap.add_argument("--keywords", default="data/demo", help="label folders for the latency stream")
    ap.add_argument("--hours", type=float, default=1.0, help="length of the RTF stream")
    ap.add_argument("--slow-hours", type=float, default=0.25, help="stream length for tflite-runtime, whose "
                    "x86 int8 kernels are several times slower (its RTF does not depend on the length)")
    ap.add_argument("--latency-hours", type=float, default=0.1)
    ap.add_argument("--micro-wakeword", action="store_true", help=f"also run {MWW_PACKAGE}'s {MWW_MODEL} model "
                    "on the long WAV (installed into a throwaway venv)")
    ap.add_argument("--mww-venv", type=Path, help="an existing venv holding pymicro-wakeword (skips the install)")
    ap.add_argument("--cold-libraries", action="store_true", help="first drop the shared libraries of .venv and "
                    ".venv-edge from the page cache (as after a reboot; see drop_library_cache), then run "
                    "kws-listen once on 1 s unmeasured, so peak RSS does not depend on when pip wrote them")
    args = ap.parse_args()
    if not Path(args.model, "manifest.json").is_file():
        raise SystemExit(f"{args.model}/manifest.json missing: run make demo (or kws-convert) first")
    model = str(Path(args.model, args.model_file)) if args.model_file else args.model
    if not Path(model).exists():
        raise SystemExit(f"{model}: no such model file")
    tmp = Path(tempfile.mkdtemp(prefix="kws-bench-edge-"))
    load = [os.getloadavg()[0]]
    try:
        long_wav, slow_wav, short_wav = tmp / "long.wav", tmp / "slow.wav", tmp / "one_second.wav"
        t0 = time.time()
        write_wavs_apart([(long_wav, args.hours), (slow_wav, min(args.hours, args.slow_hours)),
                          (short_wav, 1 / 3600)])
        print(f"wrote {args.hours} h test WAV in {time.time() - t0:.0f} s", file=sys.stderr)
        as_found = {}
        if args.cold_libraries:
            for name, bin_dir, runtime in RUNTIMES:
                if (bin_dir / "kws-listen").exists():
                    as_found[name] = run_listen(bin_dir, runtime, model, short_wav, tmp / "found.json")["rss"]
            dropped = drop_library_cache(sorted({bin_dir.parent for _, bin_dir, _ in RUNTIMES if bin_dir.exists()}))
            print(f"dropped {dropped} shared libraries from the page cache", file=sys.stderr)
        rows = []
        floors = {}
        step_file = step_model_file(args.model) if not args.model_file else None
        for name, bin_dir, runtime in RUNTIMES:
            if not (bin_dir / "kws-listen").exists():
                rows.append((name, None))
                continue
            wav = long_wav if runtime in LONG_RUNTIMES else slow_wav
            if args.cold_libraries:
                run_listen(bin_dir, runtime, model, short_wav, tmp / "warm.json")  # reads the libraries back
            result = run_listen(bin_dir, runtime, model, wav, tmp / "s.json")
            starts = [run_listen(bin_dir, runtime, model, short_wav, tmp / "s1.json") for _ in range(STARTUP_RUNS)]
            version = subprocess.run([str(bin_dir / "python"), "-c", "from kws.edge.runtime import pick_runtime;"
                                      f"print(pick_runtime('{runtime}').version)"],
                                     capture_output=True, text=True).stdout.strip()
            result.update(startup=statistics.median(r["wall"] for r in starts),
                          startup_cpu=statistics.median(r["cpu"] for r in starts))
            rows.append((f"{name} {version}", result))
            if step_file is not None:
                floors[f"{name} {version}"] = floor(bin_dir, runtime, step_file)
            load.append(os.getloadavg()[0])
            print(name, json.dumps(rows[-1][1]), file=sys.stderr)
        manifest = json.loads(Path(args.model, "manifest.json").read_text())
        float_file = manifest["models"].get("float", {}).get("file")
        if not args.model_file and float_file and (REPO / ".venv" / "bin" / "kws-listen").exists():
            # the same model in float on LiteRT (C API), whose x86 int8 kernels are slower than its float ones
            result = run_listen(REPO / ".venv" / "bin", "litert-c", str(Path(args.model, float_file)), slow_wav,
                                tmp / "f.json")
            starts = [run_listen(REPO / ".venv" / "bin", "litert-c", str(Path(args.model, float_file)), short_wav,
                                 tmp / "f1.json") for _ in range(STARTUP_RUNS)]
            result.update(startup=statistics.median(r["wall"] for r in starts),
                          startup_cpu=statistics.median(r["cpu"] for r in starts))
            rows.append((f"ai-edge-litert C API, `{float_file}` (float)", result))
            print("float", json.dumps(result), file=sys.stderr)
        mww = micro_wakeword(long_wav, args.mww_venv, tmp) if args.micro_wakeword else None
        if mww is not None:
            print("micro-wakeword", json.dumps(mww), file=sys.stderr)
        lat = latency(model, args.keywords, args.latency_hours) if Path(args.keywords).is_dir() else \
            {"error": f"{args.keywords} missing"}
        load.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_results(args, model, rows, lat, mww, load, floors, as_found)


def step_model_file(folder: str) -> Path | None:
    """The int8 step model the manifest lists (what kws-listen runs), or None."""
    manifest = json.loads(Path(folder, "manifest.json").read_text())
    entry = (manifest.get("streaming") or {}).get("models", {}).get("int8")
    return Path(folder, entry["file"]) if entry else None


def write_results(args, model: str, rows, lat, mww, load: list[float], floors: dict | None = None,
                  as_found: dict | None = None) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    manifest = json.loads(Path(args.model, "manifest.json").read_text())
    key = next((k for k, e in manifest["models"].items() if e["file"] == args.model_file), "int8") \
        if args.model_file else "int8"
    entry = manifest["models"][key]
    command = (f"python -m bench.bench_edge --model {args.model} --keywords {args.keywords} --hours {args.hours:g} "
               f"--slow-hours {args.slow_hours:g} --latency-hours {args.latency_hours:g}")
    command += f" --model-file {args.model_file}" if args.model_file else ""
    command += " --micro-wakeword" if args.micro_wakeword else ""
    command += " --cold-libraries" if args.cold_libraries else ""
    lines = [
        "## Edge: `kws-listen` on one core",
        "",
        f"Command: `{command}`",
        f"on {os.cpu_count()} x {cpu}, pinned to one core with `taskset -c 0`, `--threads 1`. Model: "
        f"`{entry['file']}` ({entry['size_bytes'] / 1024:.1f} KiB, {len(manifest['labels'])} labels)"
        + (f", run in its streaming form (`{manifest['streaming']['models']['int8']['file']}`, "
           f"{manifest['streaming']['step_frames']} frames per step) where the manifest lists one and "
           f"`--model-file` does not pick another" if (manifest.get("streaming") or {}).get("models", {}).get("int8")
           else "") + ", hop "
        f"{manifest['smoothing']['hop_ms']:g} ms. Stream: 16 kHz noise from a WAV file, {args.hours:g} h for "
        f"LiteRT (both) and microWakeWord, {min(args.hours, args.slow_hours):g} h for tflite-runtime and the float "
        f"model. Load average (1 min) during the "
        f"run: {min(load):.1f} to {max(load):.1f} on {os.cpu_count()} cores.",
        "",
        "| runtime | RTF (process CPU / audio) | per hop p50 / p99 (wall) | peak RSS | start-up to first "
        "inference (wall / CPU) |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows:
        if r is None:
            lines.append(f"| {name} | not installed | | | |")
            continue
        s = r["summary"]
        lines.append(f"| {name} | {r['cpu'] / s['audio_s']:.4f} ({r['cpu']:.0f} s CPU for {s['audio_s'] / 3600:.2f} h) "
                     f"| {s['hop_p50_ms']:.2f} / {s['hop_p99_ms']:.2f} ms | {r['rss']:.1f} MiB | "
                     f"{r['startup']:.2f} s / {r['startup_cpu']:.2f} s |")
    if mww is not None:
        if "error" in mww:
            lines.append(f"| microWakeWord ({MWW_PACKAGE}) | not measured: {mww['error']} | | | |")
        else:
            lines.append(f"| microWakeWord: {MWW_PACKAGE} {mww['version']}, `{mww['model']}` | "
                         f"{mww['process_cpu_s'] / mww['audio_s']:.4f} ({mww['process_cpu_s']:.0f} s CPU; "
                         f"loop alone {mww['loop_cpu_s'] / mww['audio_s']:.4f}) | {mww['step_p50_ms']:.3f} / "
                         f"{mww['step_p99_ms']:.2f} ms per 10 ms feature step | {mww['peak_rss_mib']:.1f} MiB | "
                         f"CPU {mww['startup_cpu_s']:.2f} s (import + model load) |")
    for name, f in (floors or {}).items():
        what = ("kws.edge.litert_c (with kws.edge's errors and manifest modules)" if "C API" in name
                else "no kws code")
        lines.append(f"| floor, {name}: Python + numpy + the runtime + the step model (one invoke), {what} | "
                     f"| | {f['rss']:.1f} MiB | CPU {f['cpu']:.2f} s |")
    lines += ["", "Targets (issue 15): RTF at most 0.004 with ai-edge-litert and 0.02 with tflite-runtime 2.14, peak RSS at most 40 MiB, start-up to first inference at most "
              "0.3 s, median detection latency at most 0.3 s after the word ends; the C API rows are what kws-listen runs by "
              "default where ai-edge-litert is installed, the Python interpreter rows are `--runtime litert`. Start-up is a whole `kws-listen --wav` run on a 1 s file "
              f"(median of {STARTUP_RUNS}): an upper bound on start-up to first inference; on a loaded machine "
              "its wall time includes waiting for the core, its CPU time does not.", ""]
    if mww is not None and "error" not in mww:
        lines += [f"microWakeWord runs a streaming model (state inside the .tflite, a new 10 ms feature frame per "
                  f"step, the model every 3 frames) through the TFLite C library bundled in its wheel; "
                  f"{mww['detections']} detection(s) of its wake word on this noise. Its RSS is the whole "
                  f"process, Python included.", ""]
    if "error" in lat:
        lines.append(f"Detection latency: not measured ({lat['error']}).")
    else:
        lines.append(f"Detection latency after the end of the keyword (kws-eval, {args.latency_hours:g} h stream built "
                     f"from `{args.keywords}` at 10-20 dB SNR, manifest thresholds): median "
                     f"{lat['median_s']:.2f} s over {lat['keywords']} keywords (FRR there {lat['frr']:.1%}; the clips "
                     f"include training clips, so the FRR is not an accuracy claim).")
    if args.cold_libraries:
        lines += ["", "Peak RSS counts the shared-library pages a process maps; a page already in the page "
                  "cache is mapped with its neighbours, so it depends on how the libraries got there. "
                  "`--cold-libraries` dropped the two venvs' libraries from the cache first (as after a "
                  "reboot) and ran kws-listen once unmeasured. Before that, with the libraries as the "
                  "machine had them cached, a 1 s run peaked at " + ", ".join(
                      f"{v:.1f} MiB ({k})" for k, v in (as_found or {}).items()) + "."]
    lines += ["", "The same WAV through the Python API (`Recognizer.process`) costs the same per hop; the "
              "process adds start-up and WAV reading.", ""]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
