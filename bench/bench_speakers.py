"""How accuracy on speakers never heard grows with the number of speakers trained on.

    python -m bench.bench_speakers                       # 6, 12, 18 and 22 training speakers
    python -m bench.bench_speakers --speakers 12,18 --recipe anywhere_kwcut
    python -m bench.bench_speakers --crossfit            # validation speakers folded into training

The Arabic Speech Commands set of bench_unseen, one recipe (a bench_unseen variant, default
``anywhere_kwcut``, the stream recipe), 30 epochs, the same seed. N training speakers: the first N
(by id) of the dataset's 18 training speakers; above 18, validation speakers join training in id
order and the remaining ones validate. The 6 test speakers never change. Measured per N: clip
accuracy on the test speakers (Keras, from the run's metrics.json) and, through the converted
model on the edge recognizer, the best any thresholds could do on bench_unseen's test-speaker
stream (bench_stream_oracle's bound: per keyword, the threshold just above its loudest false
accept there). Calibrated numbers are not comparable across N (the validation speakers change
above 18), so none are given. Results: bench/results/speakers.md (raw: bench/out/unseen/speakers.json).
``--crossfit``: half the validation speakers in training, thresholds from the other half (``crossfit``);
results in bench/results/speakers_crossfit.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
from pathlib import Path
from typing import Sequence

from kws.trainer.config import DEFAULT_GROUP_PATTERN
from kws.trainer.dataset import group_of

from .bench_stream_oracle import analyse, test_stream_scores
from .bench_unseen import (LISTS, OUT, REPO, VARIANTS, _shown, calibrate_and_stream, convert, prepare,
                           train_variant)

RESULTS = REPO / "bench" / "results" / "speakers.md"
CROSSFIT_RESULTS = REPO / "bench" / "results" / "speakers_crossfit.md"
STREAM_HOURS = 0.5
EPOCHS = 30
BOUND_WINDOW_MS = "300"
SPEAKER = re.compile(DEFAULT_GROUP_PATTERN)  # the dataset's file names: <speaker>_nohash_<take>


def _speaker(rel: str) -> str:
    return group_of(rel, SPEAKER)


def validation_speakers(data: Path) -> list[str]:
    """The dataset's validation speakers, by id."""
    return sorted({_speaker(r) for r in (data / LISTS[0]).read_text().split()})


def data_with(data: Path, n_train: int, joined: Sequence[str] | None = None) -> Path:
    """A folder of links to ``data`` whose training split holds ``n_train`` speakers (see the module
    docstring), or the dataset's training speakers and the validation speakers ``joined``, with
    its own validation_list.txt and testing_list.txt. Cached in bench/out."""
    out = OUT / "speakers" / (f"data_{n_train}" if joined is None else "data_join_" + "_".join(joined))
    if (out / ".complete").is_file():
        return out
    validation = (data / LISTS[0]).read_text().split()
    testing = (data / LISTS[1]).read_text().split()
    held = {_speaker(r) for r in validation + testing}
    files = sorted(str(p.relative_to(data)) for p in data.glob("*/*.wav") if not p.parent.name.startswith("_"))
    train_speakers = sorted({_speaker(r) for r in files} - held)
    val_speakers = validation_speakers(data)
    if joined is not None:
        n_train = len(train_speakers) + len(joined)
    if n_train > len(train_speakers) + len(val_speakers) - 1:
        raise SystemExit(f"--speakers {n_train}: at most {len(train_speakers) + len(val_speakers) - 1} "
                         "(one validation speaker must stay)")
    extra = max(0, n_train - len(train_speakers))
    keep = set(train_speakers[:n_train]) | set(val_speakers[:extra] if joined is None else joined)
    validation = [r for r in validation if _speaker(r) not in keep]
    keep |= {_speaker(r) for r in validation + testing}
    for rel in files:
        if _speaker(rel) in keep:
            link = out / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(data / rel)
    noise = out / "_background_noise_"
    if not noise.is_symlink():
        noise.symlink_to(data / "_background_noise_")
    (out / LISTS[0]).write_text("".join(r + "\n" for r in validation))
    (out / LISTS[1]).write_text("".join(r + "\n" for r in testing))
    (out / ".complete").touch()
    return out


def measure(recipe: str, n_train: int) -> dict:
    data = data_with(prepare(), n_train)
    res = train_variant(data, f"{recipe}_spk{n_train}", VARIANTS[recipe], EPOCHS)
    run = Path(res["run"])
    convert(run)
    bound = analyse(*test_stream_scores(run))["windows"][BOUND_WINDOW_MS]
    test = res["metrics"]["test"]
    worst = ((test.get("by_speaker") or {}).get("worst") or [None])[0]
    return {"speakers": n_train, "run": str(run), "split_speakers": res["speakers"],
            "test_accuracy": test["accuracy"], "test_count": test["count"],
            "worst_speaker": [worst["speaker"], worst["accuracy"]] if worst else None,
            "oracle_recall": bound["oracle_recall"], "loud_false_accepts": bound["loud_false_accepts"],
            "median_true_peak": bound["median_true_peak"]}


def stream_of(speakers: Sequence[str]) -> Path:
    """A folder of links to the validation stream's clips (bench_unseen's) of ``speakers`` only."""
    out = OUT / "speakers" / ("stream_" + "_".join(speakers))
    if (out / ".complete").is_file():
        return out
    for clip in sorted((OUT / "stream_validation").glob("*/*.wav")):
        if _speaker(clip.name) in speakers:
            link = out / clip.parent.name / clip.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(clip.resolve())
    (out / ".complete").touch()
    return out


def calibrated_on(run: Path, speakers: Sequence[str]) -> dict:
    """``run``'s int8 model (a copy of its kws-convert folder) calibrated on a stream of the
    validation ``speakers`` and measured on the test speakers' stream and running speech (cached)."""
    convert(run)
    dist = OUT / "speakers" / "crossfit" / f"{run.name}_cal_{'_'.join(speakers)}"
    cached = dist / "bench_stream.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    shutil.rmtree(dist, ignore_errors=True)
    shutil.copytree(run / "dist", dist, ignore=shutil.ignore_patterns("*.npz", "*.cc", "*.h", "bench_*", "*.bak"))
    out = calibrate_and_stream(dist, stream_of(speakers), STREAM_HOURS)
    cached.write_text(json.dumps(out))
    return out


def crossfit(recipe: str) -> list[dict]:
    """The validation speakers in two halves: per half, the recipe trained on the training speakers
    alone and on them with the other half, both calibrated on a stream of this half and measured on
    the test speakers' stream: what folding validation speakers into training does to the
    calibrated stream numbers, with calibration still on speakers no model heard."""
    data = prepare()
    val = validation_speakers(data)
    halves = [val[:len(val) // 2], val[len(val) // 2:]]
    base = train_variant(data, recipe, VARIANTS[recipe], EPOCHS)
    rows = []
    for held in halves:
        joined = [s for s in val if s not in held]
        res = train_variant(data_with(data, 0, joined=joined), f"{recipe}_join{'_'.join(joined)}",
                            VARIANTS[recipe], EPOCHS)
        for trained in (base, res):
            run, metrics = Path(trained["run"]), trained["metrics"]["test"]
            n_train = trained["speakers"]["per_split"]["training"]
            stream = calibrated_on(run, held)
            cal = stream["calibration"].get("calibration", {})
            test = stream["test_stream"]["at_manifest_thresholds"]
            speech = stream["running_speech"]["at_manifest_thresholds"]
            rows.append({"calibrated_on": held, "training_speakers": n_train, "run": str(run),
                         "test_accuracy": metrics["accuracy"], "test_count": metrics["count"],
                         "thresholds": cal.get("thresholds"), "calibration_frr": cal.get("frr"),
                         "recall": 1 - test["frr"], "fa_per_hour": test["fa_per_hour"],
                         "false_accepts": test.get("false_accepts"),
                         "speech_fa_per_hour": speech["fa_per_hour"], "speech_false_accepts": speech["false_accepts"]})
    return rows


def _opening(title: str, command: str, recipe: str) -> list[str]:
    """A results file's heading and the start of its first paragraph: command, machine, recipe."""
    return [f"## {title}", "",
            f"Command: `{command}` ({platform.machine()}, 2 cores). Recipe `{recipe}` "
            f"({', '.join(f'`{s}`' for s in VARIANTS[recipe]) or 'the defaults'}), {EPOCHS} epochs, seed 1. "]


def render_crossfit(rows: list[dict], recipe: str, command: str) -> str:
    lines = _opening("Validation speakers folded into training, thresholds from the others", command, recipe)
    lines[-1] += ("The dataset's 6 validation speakers in two halves of 3. Per half: the model trained on the 18 "
                  "training speakers and the model trained on them and the other half (21), each int8 model "
                  f"calibrated by `kws-eval --calibrate --target-fa-per-hour 1` on a {STREAM_HOURS:g} h stream of "
                  "this half's clips (Mycroft noise, 5:20 dB SNR; no model heard these speakers) and measured at "
                  "those thresholds on bench_unseen's test-speaker stream (the 6 test speakers, 0.5 h) and on "
                  "the held-out running speech.")
    lines += ["", "| calibrated on | training speakers | clips, 6 unseen speakers (Keras) | calibration FRR | "
              "test stream: recall at the thresholds | FA/h there (n) | running speech FA/h (n) |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {', '.join(r['calibrated_on'])} | {r['training_speakers']} | "
                     f"{100 * r['test_accuracy']:.2f}% (n={r['test_count']}) | {100 * r['calibration_frr']:.1f}% | "
                     f"{100 * r['recall']:.1f}% | {r['fa_per_hour']:.2f} ({r['false_accepts']}) | "
                     f"{r['speech_fa_per_hour']:.1f} ({r['speech_false_accepts']}) |")
    return "\n".join(lines) + "\n"


def render(rows: list[dict], recipe: str, command: str) -> str:
    lines = _opening("Unseen speakers against the number of training speakers", command, recipe)
    lines[-1] += ("Training speakers: the first N of the dataset's 18 (by id); above 18, validation speakers "
                  "join in id order. Test: the dataset's 6 test speakers, never heard. Bound: the best any "
                  f"thresholds could do on bench_unseen's test-speaker stream ({BOUND_WINDOW_MS} ms window, "
                  "`bench_stream_oracle`), through the int8 model on the edge recognizer.")
    lines += ["", "| training speakers | clips, 6 unseen speakers (Keras) | worst speaker | stream bound, 0 FA | "
              "loud near misses | median true-keyword peak |", "|---|---|---|---|---|---|"]
    for r in rows:
        worst = f"{r['worst_speaker'][0]} {100 * r['worst_speaker'][1]:.2f}%" if r["worst_speaker"] else ""
        lines.append(f"| {r['speakers']} | {100 * r['test_accuracy']:.2f}% (n={r['test_count']}) | {worst} | "
                     f"{100 * r['oracle_recall']:.1f}% | {r['loud_false_accepts']} | {r['median_true_peak']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speakers", default="6,12,18,22", help="comma-separated numbers of training speakers")
    ap.add_argument("--recipe", default="anywhere_kwcut", choices=sorted(VARIANTS), help="bench_unseen variant")
    ap.add_argument("--crossfit", action="store_true",
                    help="fold half of the validation speakers into training, calibrate on the other half")
    ap.add_argument("--results", default=None, help="default: bench/results/speakers.md (speakers_crossfit.md)")
    args = ap.parse_args()
    if args.crossfit:
        default, rows = CROSSFIT_RESULTS, crossfit(args.recipe)
        command, render_rows = f"python -m bench.bench_speakers --crossfit --recipe {args.recipe}", render_crossfit
    else:
        default = RESULTS
        rows = [measure(args.recipe, int(n)) for n in args.speakers.split(",") if n.strip()]
        command, render_rows = f"python -m bench.bench_speakers --speakers {args.speakers} --recipe {args.recipe}", render
    results = Path(args.results or default)
    if results != default:
        command += f" --results {_shown(results)}"
    text = render_rows(rows, args.recipe, command)
    (OUT / f"{results.stem}.json").write_text(json.dumps(rows, indent=1))
    results.write_text(text)
    print(text)

if __name__ == "__main__":
    main()
