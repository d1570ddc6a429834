"""How an ensemble's members' scores are merged: the mean (kws.edge.ensemble's only merge) against a
weighted mean, the geometric mean, the mean of the logits and the minimum, on issue 13's streams.

    python -m bench.bench_fusion --members embedding_negatives@dist_dynamic,anywhere_kwcut

The members are bench_unseen's converted runs (``NAME@DIST``: the run's ``DIST`` kws-convert folder,
default ``dist``), the first member's hops set the ensemble's (as in ``kws ensemble``). Their per-hop
scores on the validation speakers' stream (seed 1, 0.5 h), the test speakers' stream (seed 2, 0.5 h)
and the held-out running speech come from bench_calibration_rules' cache. For each merge the
members' scores are merged at the first member's hops (each other member's latest row, as
``hold_latest_mean`` holds them), thresholds and window are chosen as ``kws-eval --calibrate
--no-tail --target-fa-per-hour 1`` chooses them on the validation stream, and the table gives what
they find on the test stream and fire on in the running speech. Nothing is retrained.

Results: bench/results/ensemble_fusion.md (raw numbers in bench/out/unseen/ensemble_fusion.json).
"""
from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from kws.edge.ensemble import label_columns
from kws.edge.manifest import load_manifest
from kws.evaluation.calibrate import WINDOW_GRID_MS, calibrate
from kws.evaluation.fa_tail import window_average
from kws.evaluation.models import manifest_path_for
from kws.evaluation.oracle import best_over_windows
from kws.evaluation.scoring import ScoredAudio, negatives_false_accepts, smooth, with_window
from kws.evaluation.streaming_metrics import streaming_report

from . import bench_calibration_rules as cr
from . import bench_unseen as bu

RESULTS = bu.REPO / "bench" / "results" / "ensemble_fusion.md"
TARGET_FA_PER_HOUR = 1.0
LOUDEST_SHOWN = 2  # loudest false accepts listed per keyword
OWN_WORD_S = (0.5, 1.5)  # a keyword's averaged score this long before / after one of its own words is that word's
LOG_FLOOR = 1e-6  # scores clipped here before a log, so a 0 or 1 stays finite
MERGES = {
    # key: (table heading, what it is)
    "mean": ("mean (kws ensemble)", "the members' scores averaged label by label: kws.edge.ensemble's merge."),
    "weighted_0.6": ("weighted 0.6 / 0.4", "the first member's scores weighted 0.6, the second's 0.4."),
    "weighted_0.4": ("weighted 0.4 / 0.6", "the first member's scores weighted 0.4, the second's 0.6."),
    "geometric": ("geometric mean", "the geometric mean of the members' scores (a label both rate high stays "
                                    "high; one member's low score pulls it down)."),
    "logit": ("mean of logits", "the members' scores averaged as log-odds and turned back into a probability."),
    "minimum": ("minimum", "the lowest of the members' scores for each label (both must agree)."),
}


def member_model(spec: str) -> Path:
    """The converted model of ``NAME[@DIST]``: int8 where kws-convert kept it."""
    name, _, folder = spec.partition("@")
    dist = bu.OUT / "runs" / f"{name}-30ep" / (folder or "dist")
    return dist / ("model_int8.tflite" if (dist / "model_int8.tflite").is_file() else "model_float.tflite")


def scored(model: Path) -> tuple[ScoredAudio, ScoredAudio, ScoredAudio]:
    """(validation stream, test stream, running speech) scored by ``model``, from the cache."""
    cr._model = lambda run: model  # bench_calibration_rules names its model by the run; point it here
    return (cr.scored_stream(model.parent, "stream_validation", cr.VALIDATION_SEED, cr.TEST_HOURS),
            cr.scored_stream(model.parent, "stream_test", cr.TEST_SEED, cr.TEST_HOURS),
            cr.scored_speech(model.parent))


def held_rows(base: ScoredAudio, other: ScoredAudio, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``other``'s latest row at or before each of ``base``'s hops (columns reordered), and which hops
    have one."""
    latest = np.searchsorted(other.times, base.times, side="right") - 1
    return other.scores[np.maximum(latest, 0)][:, columns], latest >= 0


def merge(stack: np.ndarray, how: str) -> np.ndarray:
    """Members x hops x labels scores merged into hops x labels."""
    if how == "mean":
        return stack.mean(0)
    if how.startswith("weighted_"):
        w = float(how.split("_", 1)[1])
        return w * stack[0] + (1 - w) * stack[1]
    if how == "geometric":
        return np.exp(np.log(np.clip(stack, LOG_FLOOR, 1.0)).mean(0))
    if how == "logit":
        p = np.clip(stack, LOG_FLOOR, 1 - LOG_FLOOR)
        return 1 / (1 + np.exp(-(np.log(p) - np.log1p(-p)).mean(0)))
    if how == "minimum":
        return stack.min(0)
    raise ValueError(how)


def merged(parts: list[ScoredAudio], manifests: list, how: str) -> ScoredAudio:
    """The members' scores merged at the first member's hops where every member has scored."""
    base, labels = parts[0], manifests[0].labels
    rows, keep = [base.scores], np.ones(len(base.times), bool)
    for part, man in zip(parts[1:], manifests[1:]):
        held, has = held_rows(base, part, label_columns(labels, man.labels))
        rows.append(held)
        keep &= has
    scores = merge(np.stack([r[keep] for r in rows]).astype(np.float64), how).astype(np.float32)
    return ScoredAudio(times=base.times[keep], scores=scores, duration_s=base.duration_s, events=base.events,
                       source=base.source)


def loudest_false_accepts(part: ScoredAudio, labels: list[str], keywords: list[str], window_ms: float) -> dict:
    """Per keyword, its loudest averaged scores away from its own words (one per second at most): the
    score, the nearest spoken word (keyword or ``_unknown_``) and seconds from that word's end."""
    avg = window_average(part.times, part.scores, window_ms)
    events = list(part.events)
    starts = np.array([e.start_s for e in events])
    ends = np.array([e.end_s for e in events])
    out = {}
    for kw in keywords:
        col = avg[:, labels.index(kw)].copy()
        for e in events:
            if e.label == kw:
                col[(part.times >= e.start_s - OWN_WORD_S[0]) & (part.times <= e.end_s + OWN_WORD_S[1])] = 0.0
        found = []
        for j in np.argsort(col)[::-1]:
            if len(found) == LOUDEST_SHOWN:
                break
            if any(abs(part.times[j] - part.times[k]) < 1.0 for k in found):
                continue
            found.append(int(j))
        rows = []
        for j in found:
            t = part.times[j]
            k = int(np.argmin(np.minimum(abs(starts - t), abs(ends - t))))
            rows.append({"score": round(float(col[j]), 3), "word": events[k].label,
                         "after_end_s": round(float(t - ends[k]), 2)})
        out[kw] = rows
    return out


def measure(members: list[str], how: str) -> dict:
    models = [member_model(m) for m in members]
    manifests = [load_manifest(manifest_path_for(str(m))) for m in models]
    man = manifests[0]
    keywords = [label for label in man.labels if label not in man.ignore_labels]
    per_member = [scored(m) for m in models]
    val, test, speech = (merged([p[i] for p in per_member], manifests, how) for i in range(3))
    res = calibrate(val.times, val.scores, man, list(val.events), val.duration_s, TARGET_FA_PER_HOUR, tail=False)
    sm, th = with_window(man.smoothing, res["average_window_ms"]), res["thresholds"]
    rep = streaming_report(smooth(test.times, test.scores, man, sm, th), list(test.events), test.duration_s,
                           keywords)
    neg = negatives_false_accepts([speech], man, th, sm)
    bound = best_over_windows(test.times, test.scores, man.labels, keywords, list(test.events), WINDOW_GRID_MS,
                              man.smoothing.suppression_ms)
    out = {"bound": bound["recall_at_zero_fa"], "validation_recall": 1 - res["report"]["frr"],
           "test_recall": 1 - rep["frr"], "test_fa": rep["false_accepts"], "test_free_h": rep["keyword_free_hours"],
           "speech_fa": neg["false_accepts"], "speech_h": neg["hours"], "window_ms": res["average_window_ms"],
           "thresholds": th, "bound_per_label": bound["per_label"],
           "loudest": loudest_false_accepts(test, man.labels, keywords, bound["average_window_ms"])}
    print(f"{how}: recall {100 * out['test_recall']:.1f}%, test FA {out['test_fa']}, speech FA {out['speech_fa']}",
          file=sys.stderr, flush=True)
    return out


def render(raw: dict, command: str) -> str:
    members = raw["members"]
    lines = [f"## Merging two members' scores: {' + '.join(members)}", "",
             f"Command: `{command}` (x86_64, 2 cores). The members' per-hop scores on issue 13's streams, merged "
             f"at the first member's hops ({members[0]}'s) by each rule; thresholds and window chosen as `kws-eval "
             "--calibrate --no-tail --target-fa-per-hour 1` chooses them on the 6 validation speakers' stream (0.5 h, "
             "seed 1), then used on the 6 unseen test speakers' stream (0.5 h, seed 2, 0.26 keyword-free h) and on "
             "36 min of held-out English running speech. `bound`: the best any thresholds could do on the test "
             "stream with no false accept there. Nothing is retrained.", "",
             "| merge | bound | validation recall | test recall | false accepts (test stream) | false accepts "
             "(running speech) | window |", "|---|---|---|---|---|---|---|"]
    for how, r in raw["merges"].items():
        lines.append(f"| {MERGES[how][0]} | {100 * r['bound']:.1f}% | {100 * r['validation_recall']:.1f}% | "
                     f"{100 * r['test_recall']:.1f}% | {r['test_fa']} in {r['test_free_h']:.2f} h | "
                     f"{r['speech_fa']} in {r['speech_h']:.2f} h | {r['window_ms']:g} ms |")
    lines += [""] + [f"- {MERGES[how][0]}: {MERGES[how][1]}" for how in raw["merges"]]
    if "mean" in raw["merges"]:
        r = raw["merges"]["mean"]
        lines += ["", "Where the mean's bound loses words: per keyword, the words the best thresholds find on the test "
                  "stream and the loudest averaged scores away from the keyword's own words (what those thresholds "
                  "must stay above), with the nearest spoken word and the time from its end.", "",
                  "| keyword | found at the bound | loudest false accepts (score, nearest word, s after its end) |",
                  "|---|---|---|"]
        for kw, b in r["bound_per_label"].items():
            loud = "; ".join(f"{x['score']:.2f}, {x['word']}, {x['after_end_s']:+.2f} s" for x in r["loudest"][kw])
            lines.append(f"| {kw} | {b['found']} / {b['keywords']} | {loud} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", default="embedding_negatives@dist_dynamic,anywhere_kwcut",
                    help="two comma-separated NAME[@DIST] runs (NAME-30ep under bench_unseen's runs)")
    ap.add_argument("--merges", default=",".join(MERGES), help=f"comma-separated, of: {', '.join(MERGES)}")
    ap.add_argument("--jobs", type=int, default=2, help="merges measured at once (one core each)")
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args()
    members = [m for m in args.members.split(",") if m]
    merges = [m for m in args.merges.split(",") if m]
    if len(members) != 2 or set(merges) - set(MERGES):
        raise SystemExit("--members: two runs; --merges: of " + ", ".join(MERGES))
    for m in members:
        if not member_model(m).is_file():
            raise SystemExit(f"{member_model(m)}: no converted model; run bench_unseen (and bench_embedding_quant)")
    bu.running_speech_stream()
    for m in members:  # score each stream once, before the workers read the cache
        scored(member_model(m))
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(measure, [members] * len(merges), merges))
    raw = {"members": members, "merges": dict(zip(merges, done))}
    (bu.OUT / f"{Path(args.results).stem}.json").write_text(json.dumps(raw, indent=1) + "\n")
    command = "python -m bench.bench_fusion " + " ".join(sys.argv[1:])
    Path(args.results).write_text(render(raw, command.strip()))
    print(Path(args.results).read_text())


if __name__ == "__main__":
    main()
