"""The best any thresholds could do on bench_unseen's stream of the unseen test speakers, and where
the loudest false accepts come from.

    python -m bench.bench_stream_oracle --runs default-30ep,anywhere-30ep

For each run's converted model (bench_unseen's ``dist/``, int8 where kws-convert kept it): the test
speakers' stream exactly as bench_unseen's ``kws-eval`` builds it (seed 2, 0.5 h, Mycroft noise at
5-20 dB SNR), scored once by the edge recognizer, then for each averaging window:

* **oracle recall at zero false accepts**: every keyword's threshold set just above its loudest
  false-accept episode *on this very stream*. No calibration on other audio can choose better, so
  this bounds what ``kws-eval --calibrate`` can reach with this model;
* the median peak of the true keyword's averaged score over its spoken words;
* where the false-accept episodes above ``LOUD`` sit: the time from the end of the nearest spoken
  word (any word, keyword or ``_unknown_``) to the episode's peak. About 0 s: a whole word pressed
  against the window's newest edge; 0.5-1 s: a word whose start the window's oldest edge has cut.

Results: bench/results/stream_oracle.md, or ``--results`` (raw numbers in bench/out/unseen/<its name>.json); the
per-hop scores are cached next to each model.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from kws.edge.manifest import load_manifest
from kws.evaluation.fa_tail import episodes, window_average
from kws.evaluation.models import manifest_path_for
from kws.evaluation.oracle import best_possible, word_peaks
from kws.evaluation.scoring import stream_scores
from kws.evaluation.stream import build_stream, load_clips, load_noise
from kws.evaluation.streaming_metrics import SECONDS_PER_HOUR, TOLERANCE_S, keyword_free_seconds

from .bench_unseen import OUT, SNR, TEST_NOISE, _shown

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "stream_oracle.md"
STREAM_SEED = 2  # bench_unseen's test stream
STREAM_HOURS = 0.5
WINDOWS_MS = (300, 500, 750)
LOUD = 0.5  # false-accept episodes whose averaged peak passes this are located
EPISODE_GAP_S = 1.0  # hops of one label this close belong to one episode
# where a loud false accept sits, seconds after the nearest word's end
POSITION_BINS = ((-9.0, -0.25, "before a word"), (-0.25, 0.25, "at a word's end"),
                 (0.25, 1.0, "0.25-1 s after one"), (1.0, 9.0, "later"))


def test_stream_scores(run: Path, snr: str = SNR) -> tuple:
    """(manifest, keywords, times, scores, events, duration) of a run's converted model on the test
    speakers' stream (speech ``snr`` dB, LOW:HIGH, above the noise); scores cached in dist/."""
    dist = run / "dist"
    model = dist / ("model_int8.tflite" if (dist / "model_int8.tflite").is_file() else "model_float.tflite")
    mpath = manifest_path_for(str(model))
    man = load_manifest(mpath)
    keywords = [l for l in man.labels if l not in man.ignore_labels]
    lo, hi = (float(x) for x in snr.split(":"))
    rng = np.random.default_rng(STREAM_SEED)
    clips = load_clips(OUT / "stream_test", keywords, man.sample_rate)
    noises = load_noise(TEST_NOISE, man.sample_rate, rng)
    audio, events = build_stream(clips, noises, STREAM_HOURS * SECONDS_PER_HOUR, (lo, hi), man.sample_rate,
                                 STREAM_SEED)
    cache = dist / (f"oracle_scores_{model.stem}.npz" if snr == SNR else
                    f"oracle_scores_{model.stem}_snr{snr.replace(':', '-')}.npz")
    times, scores = cached_stream_scores(mpath, audio, cache)
    return man, keywords, times, scores, events, len(audio) / man.sample_rate


def cached_stream_scores(mpath: Path, audio: np.ndarray, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """``stream_scores`` of a built stream, read from ``cache`` (.npz) when a run before stored it there."""
    if cache.is_file():
        z = np.load(cache)
        return z["times"], z["scores"]
    times, scores = stream_scores(mpath, audio)
    np.savez(cache, times=times, scores=scores)
    return times, scores


def analyse(man, keywords, times, scores, events, duration) -> dict:
    labels = list(man.labels)
    ends = np.array([e.end_s for e in events])
    out = {"keywords": sum(e.label in keywords for e in events),
           "keyword_free_hours": round(keyword_free_seconds(events, duration) / SECONDS_PER_HOUR, 4),
           "windows": {}}
    for window in WINDOWS_MS:
        avg = window_average(times, scores, window)
        best = best_possible(times, scores, labels, keywords, events, window, man.smoothing.suppression_ms)
        true_peaks, positions = [], []
        for k in keywords:
            col = avg[:, labels.index(k)].copy()
            own = [e.end_s for e in events if e.label == k]
            true_peaks += word_peaks(times, col, own).tolist()
            for end in own:
                col[(times >= end - TOLERANCE_S) & (times <= end + TOLERANCE_S)] = 0.0  # left: false accepts
            for t in episodes(times, col, EPISODE_GAP_S, LOUD)[0]:
                d = t - ends
                positions.append(float(d[np.argmin(np.abs(d))]))
        counts = {name: int(sum(a <= x < b for x in positions)) for a, b, name in POSITION_BINS}
        out["windows"][str(window)] = {"oracle_recall": best["recall_at_zero_fa"],
                                       "median_true_peak": round(float(np.median(true_peaks)), 4),
                                       "loud_false_accepts": len(positions), "positions": counts,
                                       "per_label": best["per_label"]}
    return out


def render(results: dict, command: str) -> str:
    lines = ["## The best any thresholds could do on the unseen speakers' stream", "",
             f"Command: `{command}`. bench_unseen's "
             f"test-speaker stream ({STREAM_HOURS} h, Mycroft noise, seed {STREAM_SEED}; at {SNR} dB SNR as "
             "bench_unseen builds it, and where a row says so at 20 dB) through each "
             "run's converted model on the edge recognizer. Oracle recall: every keyword's threshold just above "
             "its loudest false-accept episode on this same stream, so zero false accepts there; no calibration "
             "on other audio can do better with that model. `ensemble`: the mean of the `--ensemble` models' per-hop "
             "scores (as if they ran side by side). Loud false accepts: episodes whose averaged score "
             f"passes {LOUD}, placed by the time from the nearest spoken word's end (keyword or `_unknown_`) "
             "to their peak.", "",
             "| run | SNR (dB) | window | oracle recall, 0 FA | median true-keyword peak | loud false-accept episodes | "
             + " | ".join(name for _, _, name in POSITION_BINS) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(POSITION_BINS)]
    for key, res in results.items():
        run, snr = key.rsplit("@", 1)
        for window, w in res["windows"].items():
            lines.append(f"| {run} | {snr} | {window} ms | {100 * w['oracle_recall']:.1f}% of {res['keywords']} | "
                         f"{w['median_true_peak']:.2f} | {w['loud_false_accepts']} | "
                         + " | ".join(str(w["positions"][name]) for _, _, name in POSITION_BINS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="default-30ep", help="bench_unseen run folders (bench/out/unseen/runs)")
    ap.add_argument("--ensemble", default="", help="comma-separated runs (of --runs) whose mean score is also scored")
    ap.add_argument("--snr", default=SNR, help="comma-separated LOW:HIGH ranges of the stream's SNR in dB")
    ap.add_argument("--results", default=str(RESULTS),
                    help="the Markdown table to write (a partial run elsewhere keeps the full table)")
    args = ap.parse_args()
    runs = [r for r in args.runs.split(",") if r]
    ensemble = [r for r in args.ensemble.split(",") if r]
    if set(ensemble) - set(runs):
        raise SystemExit(f"--ensemble {', '.join(sorted(set(ensemble) - set(runs)))}: not in --runs")
    results = {}
    for snr in [x for x in args.snr.split(",") if x]:
        scored = {}
        for name in runs:
            run = OUT / "runs" / name
            if not (run / "dist").is_dir():
                raise SystemExit(f"{run}: no dist/ (run bench_unseen with --headline for it first)")
            scored[name] = test_stream_scores(run, snr)
            results[f"{name}@{snr}"] = analyse(*scored[name])
        members = [scored[r] for r in ensemble]
        if len(members) > 1:
            man, keywords, times, _, events, duration = members[0]
            if any(len(m[2]) != len(times) for m in members):
                raise SystemExit("--ensemble: the runs' models hop differently")
            mean = np.mean([m[3] for m in members], axis=0)
            results[f"ensemble of {len(members)}@{snr}"] = analyse(man, keywords, times, mean, events, duration)
    command = ("python -m bench.bench_stream_oracle --runs " + ",".join(runs)
               + (f" --ensemble {args.ensemble}" if ensemble else "") + (f" --snr {args.snr}" if args.snr != SNR else "")
               + (f" --results {_shown(Path(args.results))}" if Path(args.results) != RESULTS else ""))
    (OUT / f"{Path(args.results).stem}.json").write_text(json.dumps(results, indent=1))
    Path(args.results).write_text(render(results, command))
    print(render(results, command))


if __name__ == "__main__":
    main()
