"""The embedding family's int8 speech embedding quantized two ways (``convert.embedding_quantization``,
``kws-convert --embedding-quantization``), against the float embedding:

* ``full``: int8 weights and int8 activations, each activation range calibrated on 400 mel windows of
  the run's training windows;
* ``dynamic``: int8 weights; the runtime quantizes each layer's input as it runs (float in and out).

    python -m bench.bench_embedding_quant --run embedding_negatives_seed2 --pair-with anywhere_kwcut_wd

1. Agreement and speed, per embedding file: relative error (||e - e_keras|| / ||e_keras||) and
   cosine against the Keras float embedding on every mel window of a stream of the unseen test
   speakers' clips in Mycroft noise (5-20 dB SNR) and of one held-out running-speech file; ms per mel
   window (one embedding, batch 1, one thread) with ai-edge-litert here and with tflite-runtime 2.14
   in .venv-edge (the Pi's runtime); file size. ``kws-listen --wav`` on 60 s of held-out running
   speech through each pipeline with both runtimes: per-hop time and real-time factor.
2. Through the product: ``kws-convert --embedding-quantization S --out RUN/dist_S``, then the model
   alone and ``kws ensemble`` with ``--pair-with``, each calibrated by ``kws-eval --calibrate
   --no-tail`` on the validation speakers' stream and measured on the test speakers' stream and the
   held-out running speech (bench_ensemble's measure; bench_unseen's streams).

Results: bench/results/embedding_quantization.md (raw: bench/out/unseen/embedding_quantization.json).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import bench_ensemble as be
from . import bench_unseen as bu

RESULTS = bu.REPO / "bench" / "results" / "embedding_quantization.md"
SCHEMES = ("full", "dynamic")
STREAM_CLIPS = 60  # test clips per noisy stream
STREAMS = 5
TIMING_WINDOWS = 300
TIMER = """
import sys, time, numpy as np
if sys.argv[3] == "tflite-runtime":
    from tflite_runtime.interpreter import Interpreter
else:
    from ai_edge_litert.interpreter import Interpreter
x = np.load(sys.argv[2])
it = Interpreter(model_path=sys.argv[1], num_threads=1); it.allocate_tensors()
i = it.get_input_details()[0]
scale, zero = i["quantization"]
for k, w in enumerate(x):
    if k == 10: t0 = time.perf_counter()
    w = w[None]
    if i["dtype"] == np.int8: w = np.clip(np.round(w / scale) + zero, -128, 127).astype(np.int8)
    it.set_tensor(i["index"], w.astype(i["dtype"])); it.invoke()
print(1000 * (time.perf_counter() - t0) / (len(x) - 10))
"""


def eval_windows() -> np.ndarray:
    """Mel windows of STREAMS noisy streams of unseen test speakers' clips and one held-out running-speech file."""
    from kws.edge.audio import load_audio
    from kws.edge.embedding_frontend import embedding_windows
    from kws.trainer.embedding_data import Embedder

    mel = Embedder("auto").mel
    clips = sorted((bu.OUT / "stream_test").glob("*/*.wav"))
    noises = [load_audio(f, 16000)[0] for f in sorted(bu.TEST_NOISE.glob("*.wav"))]
    parts = []
    for seed in range(STREAMS):
        rng = np.random.default_rng(seed)
        pieces = []
        for f in rng.choice(clips, STREAM_CLIPS, replace=False):
            pieces += [load_audio(f, 16000)[0], np.zeros(int(16000 * rng.uniform(0.3, 1.0)), np.float32)]
        speech = np.concatenate(pieces)
        noise = np.resize(noises[rng.integers(len(noises))], len(speech))
        gain = np.sqrt(np.mean(speech ** 2) / (np.mean(noise ** 2) + 1e-12) / 10 ** (rng.uniform(5, 20) / 10))
        parts.append(embedding_windows(mel.stream((speech + gain * noise).astype(np.float32))))
    talk = sorted(bu.RUNNING_SPEECH.glob("*.flac"))[-1]  # in the held-out 40%
    parts.append(embedding_windows(mel.stream(load_audio(talk, 16000)[0])))
    return np.concatenate(parts)


def _ms(proc: subprocess.CompletedProcess) -> float | None:
    """The timer's ms per window, or None where it failed."""
    return float(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None


def agreement(dists: dict[str, Path]) -> dict[str, dict]:
    """Relative error, cosine, size and speed of each embedding file against the Keras embedding."""
    from kws.edge.runtime import TFLiteModel
    from kws.trainer.embedding_data import Embedder

    windows = eval_windows()
    reference = Embedder("auto").embed(windows)
    timing = bu.OUT / "embedding_quant_timing.npy"
    np.save(timing, windows[:TIMING_WINDOWS])
    files = {f"{s} (int8 pipeline)": d / "embedding_int8.tflite" for s, d in dists.items()}
    files["float"] = dists[SCHEMES[0]] / "embedding_float.tflite"
    out = {}
    for name, path in files.items():
        model = TFLiteModel(path, num_threads=1)
        got = model.predict_batch(windows).reshape(reference.shape)
        cos = np.sum(reference * got, 1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(got, axis=1) + 1e-9)
        litert = subprocess.run([sys.executable, "-c", TIMER, str(path), str(timing), "ai-edge-litert"],
                                capture_output=True, text=True)
        edge = subprocess.run([str(bu.REPO / ".venv-edge" / "bin" / "python"), "-c", TIMER, str(path), str(timing),
                               "tflite-runtime"], capture_output=True, text=True)
        out[name] = {"file": path.name, "size_bytes": path.stat().st_size, "windows": int(len(windows)),
                     "rel_error": float(np.linalg.norm(reference - got) / np.linalg.norm(reference)),
                     "cosine_mean": float(cos.mean()), "cosine_p1": float(np.percentile(cos, 1)),
                     "ms_litert": _ms(litert), "ms_tflite_runtime": _ms(edge)}
        print(name, out[name], file=sys.stderr, flush=True)
    return out


LISTEN_SECONDS = 60  # of held-out running speech
LISTEN_RUNTIMES = (("litert-c", ".venv"), ("tflite-runtime", ".venv-edge"))


def listen_cost(dists: dict[str, Path]) -> dict[str, dict]:
    """``kws-listen --wav`` on LISTEN_SECONDS of held-out running speech through each int8 pipeline and
    the float one: its --summary-json per-hop time and real-time factor, per runtime."""
    wav, _ = bu.running_speech_stream()
    out = {}
    pipelines = {f"{s} int8": (dists[s], "int8") for s in dists}
    pipelines["float"] = (dists[SCHEMES[0]], "float")
    for name, (dist, key) in pipelines.items():
        for runtime, venv in LISTEN_RUNTIMES:
            summary = bu.OUT / "embedding_quant_listen.json"
            bu._run([str(bu.REPO / venv / "bin" / "kws-listen"), "-m", str(dist / f"model_{key}.tflite"), "--wav",
                     str(wav), "--duration", str(LISTEN_SECONDS), "--runtime", runtime, "--threads", "1",
                     "--summary-json", str(summary), "-q"], f"kws-listen {name} {runtime}")
            out[f"{name}|{runtime}"] = json.loads(summary.read_text())
            print(name, runtime, out[f"{name}|{runtime}"], file=sys.stderr, flush=True)
    return out


def convert(run: str, scheme: str) -> Path:
    """``kws-convert --embedding-quantization scheme`` of bench_unseen's run into RUN/dist_SCHEME."""
    src = bu.OUT / "runs" / f"{run}-{be.EPOCHS}ep"
    out = src / f"dist_{scheme}"
    if not (out / "manifest.json").is_file():
        bu._run([sys.executable, "-m", "kws.converters.cli", "-m", str(src), "--out", str(out), "-q",
                 "--embedding-quantization", scheme], f"kws-convert {scheme}")
    return out


def alone(run: str, scheme: str) -> dict:
    dist = convert(run, scheme)
    return bu.calibrate_and_stream(dist, bu.OUT / "stream_validation", be.HOURS, model=str(dist),
                                   calibrate_options=be.RULES["no_tail"])


def render(raw: dict) -> str:
    commands = raw["commands"]
    lines = [f"## The embedding's int8: full integer or dynamic range ({raw['run']}"
             + (f", paired with {raw['pair_with']})" if raw["pair_with"] else ")"), "",
             f"Command: `{commands['streams']}` (x86_64, 2 cores)"
             + (f"; agreement and speed measured again on a quiet machine with `{commands['agreement']}`"
                if commands["agreement"] != commands["streams"] else "") + f". Agreement: every mel window of {STREAMS} streams of "
             f"{STREAM_CLIPS} unseen test-speaker clips in Mycroft noise (5-20 dB SNR) and of one held-out "
             "running-speech file, against the Keras float embedding. ms per window: one embedding, batch 1, "
             "one thread, ai-edge-litert here and tflite-runtime 2.14 in .venv-edge.", "",
             "| embedding | file size | relative error | cosine mean / 1st percentile | ms per window (ai-edge-litert) "
             "| ms per window (tflite-runtime 2.14) |", "|---|---|---|---|---|---|"]
    for name, a in raw["agreement"].items():
        ms = {k: f"{a[k]:.2f}" if a[k] is not None else "failed" for k in ("ms_litert", "ms_tflite_runtime")}
        lines.append(f"| {name} | {a['size_bytes'] / 1024:.0f} KiB | {100 * a['rel_error']:.1f}% | "
                     f"{a['cosine_mean']:.4f} / {a['cosine_p1']:.4f} | {ms['ms_litert']} | {ms['ms_tflite_runtime']} |")
    if "listen" in raw:
        lines += ["", f"`kws-listen --wav` on {LISTEN_SECONDS} s of held-out running speech, one thread, "
                  "`--summary-json`: processing per 80 ms hop (mel frames, embedding, head, smoothing) and the "
                  "real-time factor.", "", "| pipeline | runtime | ms per hop (mean / p99) | real-time factor |",
                  "|---|---|---|---|"]
        for key, d in raw["listen"].items():
            name, runtime = key.split("|")
            lines.append(f"| {name} | {d['runtime'] or runtime} | {d['hop_mean_ms']:.2f} / {d['hop_p99_ms']:.2f} | "
                         f"{d['real_time_factor']:.4f} |")
    lines += ["", "Streams (issue 13's target: 95% of the words at 1 false accept per hour or fewer): `kws-eval "
              "--calibrate --no-tail --target-fa-per-hour 1` on the 6 validation speakers' stream (0.5 h, seed 1), "
              "then `kws-eval` on the 6 unseen test speakers' stream (0.5 h, seed 2) and 36 min of held-out running "
              "speech. `scoring s per audio s`: kws-eval's model time over the test stream's length, two jobs at "
              "once.", "",
              "| model | recall (test speakers) | false accepts (test stream, keyword-free h) | false accepts "
              "(running speech, h) | scoring s per audio s |", "|---|---|---|---|---|"]
    for name, r in raw["streams"].items():
        test, speech = r["test_stream"]["at_manifest_thresholds"], r["running_speech"]["at_manifest_thresholds"]
        rtf = r["test_stream"]["timing_s"]["model"] / r["test_stream"]["duration_s"]
        lines.append(f"| {name} | {100 * (1 - test['frr']):.1f}% | {test['false_accepts']} in "
                     f"{test['keyword_free_hours']:.2f} h | {speech['false_accepts']} in "
                     f"{speech['keyword_free_hours']:.2f} h | {rtf:.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="embedding_negatives_seed2", help="bench_unseen embedding-family run")
    ap.add_argument("--pair-with", default="anywhere_kwcut_wd", help="bench_unseen run for the ensembles ('' for none)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--results", default=str(RESULTS))
    ap.add_argument("--render", action="store_true", help="only rewrite the Markdown from the raw JSON")
    ap.add_argument("--agreement-only", action="store_true",
                    help="measure agreement and speed again (on a quiet machine) and keep the raw JSON's streams")
    args = ap.parse_args()
    raw_path = bu.OUT / f"{Path(args.results).stem}.json"
    command = " ".join(["python -m bench.bench_embedding_quant", *sys.argv[1:]])
    if args.render:
        Path(args.results).write_text(render(json.loads(raw_path.read_text())))
        return
    dists = {s: convert(args.run, s) for s in SCHEMES}
    raw = {"run": args.run, "pair_with": args.pair_with, "agreement": agreement(dists),
           "listen": listen_cost(dists)}
    if args.agreement_only:
        old = json.loads(raw_path.read_text())
        raw.update(streams=old["streams"], commands={"streams": old["commands"]["streams"], "agreement": command})
        raw_path.write_text(json.dumps(raw, indent=1))
        Path(args.results).write_text(render(raw))
        return
    bu.running_speech_stream()
    jobs = {f"{args.run} alone, {s} int8": (alone, (args.run, s)) for s in SCHEMES}
    if args.pair_with:
        for s in SCHEMES:
            jobs[f"{args.pair_with} + {args.run}, {s} int8"] = (be.measure, (f"{args.pair_with}+{args.run}@dist_{s}", "no_tail"))
        jobs[f"{args.pair_with} + {args.run}, float embedding and head"] = (
            be.measure, (f"{args.pair_with}+{args.run}@dist_{SCHEMES[0]}:float", "no_tail"))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(lambda job: job[0](*job[1]), jobs.values()))
    raw["streams"] = dict(zip(jobs, done))
    raw["commands"] = {"streams": command, "agreement": command}
    raw_path.write_text(json.dumps(raw, indent=1))
    Path(args.results).write_text(render(raw))
    print(Path(args.results).read_text())


if __name__ == "__main__":
    main()
