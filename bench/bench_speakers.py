"""How accuracy on speakers never heard grows with the number of speakers trained on.

    python -m bench.bench_speakers                       # 6, 12, 18 and 22 training speakers
    python -m bench.bench_speakers --speakers 12,18 --recipe anywhere_kwcut

The Arabic Speech Commands set of bench_unseen, one recipe (a bench_unseen variant, default
``anywhere_kwcut``, the stream recipe), 30 epochs, the same seed. N training speakers: the first N
(by id) of the dataset's 18 training speakers; above 18, validation speakers join training in id
order and the remaining ones validate. The 6 test speakers never change. Measured per N: clip
accuracy on the test speakers (Keras, from the run's metrics.json) and, through the converted
model on the edge recognizer, the best any thresholds could do on bench_unseen's test-speaker
stream (bench_stream_oracle's bound: per keyword, the threshold just above its loudest false
accept there). Calibrated numbers are not comparable across N (the validation speakers change
above 18), so none are given. Results: bench/results/speakers.md (raw: bench/out/unseen/speakers.json).
"""
from __future__ import annotations

import argparse
import json
import platform
import re
from pathlib import Path

from kws.trainer.config import DEFAULT_GROUP_PATTERN
from kws.trainer.dataset import group_of

from .bench_stream_oracle import analyse, test_stream_scores
from .bench_unseen import LISTS, OUT, REPO, VARIANTS, _shown, convert, prepare, train_variant

RESULTS = REPO / "bench" / "results" / "speakers.md"
EPOCHS = 30
BOUND_WINDOW_MS = "300"
SPEAKER = re.compile(DEFAULT_GROUP_PATTERN)  # the dataset's file names: <speaker>_nohash_<take>


def _speaker(rel: str) -> str:
    return group_of(rel, SPEAKER)


def data_with(data: Path, n_train: int) -> Path:
    """A folder of links to ``data`` whose training split holds ``n_train`` speakers (see the module
    docstring), with its own validation_list.txt and testing_list.txt. Cached in bench/out."""
    out = OUT / "speakers" / f"data_{n_train}"
    if (out / ".complete").is_file():
        return out
    validation = (data / LISTS[0]).read_text().split()
    testing = (data / LISTS[1]).read_text().split()
    held = {_speaker(r) for r in validation + testing}
    files = sorted(str(p.relative_to(data)) for p in data.glob("*/*.wav") if not p.parent.name.startswith("_"))
    train_speakers = sorted({_speaker(r) for r in files} - held)
    val_speakers = sorted({_speaker(r) for r in validation})
    if n_train > len(train_speakers) + len(val_speakers) - 1:
        raise SystemExit(f"--speakers {n_train}: at most {len(train_speakers) + len(val_speakers) - 1} "
                         "(one validation speaker must stay)")
    extra = max(0, n_train - len(train_speakers))
    keep = set(train_speakers[:n_train]) | set(val_speakers[:extra])
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


def render(rows: list[dict], recipe: str, command: str) -> str:
    lines = ["## Unseen speakers against the number of training speakers", "",
             f"Command: `{command}` ({platform.machine()}, 2 cores). Recipe `{recipe}` "
             f"({', '.join(f'`{s}`' for s in VARIANTS[recipe]) or 'the defaults'}), {EPOCHS} epochs, seed 1. "
             "Training speakers: the first N of the dataset's 18 (by id); above 18, validation speakers "
             "join in id order. Test: the dataset's 6 test speakers, never heard. Bound: the best any "
             f"thresholds could do on bench_unseen's test-speaker stream ({BOUND_WINDOW_MS} ms window, "
             "`bench_stream_oracle`), through the int8 model on the edge recognizer.", "",
             "| training speakers | clips, 6 unseen speakers (Keras) | worst speaker | stream bound, 0 FA | "
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
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args()
    rows = [measure(args.recipe, int(n)) for n in args.speakers.split(",") if n.strip()]
    command = (f"python -m bench.bench_speakers --speakers {args.speakers} --recipe {args.recipe}"
               + (f" --results {_shown(Path(args.results))}" if Path(args.results) != RESULTS else ""))
    (OUT / f"{Path(args.results).stem}.json").write_text(json.dumps(rows, indent=1))
    Path(args.results).write_text(render(rows, args.recipe, command))
    print(render(rows, args.recipe, command))


if __name__ == "__main__":
    main()
