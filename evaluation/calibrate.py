"""Threshold calibration: per-label thresholds (and a smoothing window from a small grid) that
keep false accepts per hour under a target at the lowest false-reject rate on a stream, and
writing them into the manifest atomically with a backup.

Where the keyword-free audio is too short to show the target (no false accept seen), the false
accepts counted are the ones expected from the tail of the near misses (``fa_tail``), so a target
below one per the audio's length still moves the thresholds."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.edge.errors import KwsError
from kws.edge.manifest import Manifest, atomic_write_bytes, load_manifest, save_manifest

from .fa_tail import expected_counts, fill_zeros, near_misses_by_label
from .scoring import (ScoredAudio, keyword_free_hours, negatives_false_accepts, smooth, sweep, window_averages,
                      with_window)
from .streaming_metrics import streaming_report

THRESHOLD_GRID = tuple(np.round(np.concatenate([np.arange(0.30, 0.899, 0.025), np.arange(0.90, 1.0, 0.01),
                                                [0.995, 0.998]]), 3))
WINDOW_GRID_MS = (300.0, 500.0, 750.0, 1000.0)
BACKUP_SUFFIX = ".bak"


def _greedy(tables: dict[str, dict], grid: Sequence[float], target_fa: float, free_h: float) -> dict[str, int]:
    """Per label an index into ``grid``: start strict, lower the label whose step saves the most
    misses per added false accept while the summed false accepts stay within the target."""
    idx = {label: len(grid) - 1 for label in tables}
    budget = target_fa * free_h
    while True:
        fa_now = sum(tables[l]["fa"][i] for l, i in idx.items())
        best, best_gain = None, 0.0
        for label, i in idx.items():
            miss, fa = tables[label]["miss"], tables[label]["fa"]
            for j in range(i - 1, -1, -1):  # look past plateaus where a step changes nothing
                d_miss, d_fa = miss[i] - miss[j], fa[j] - fa[i]
                if fa_now + d_fa > budget:
                    break
                gain = d_miss / (max(d_fa, 0) + 1e-3)
                if d_miss > 0 and gain > best_gain:
                    best, best_gain = (label, j), gain
        if best is None:
            return idx
        idx[best[0]] = best[1]


def _spend_budget(idx: dict[str, int], tables: dict[str, dict], target_fa: float, free_h: float,
                  labels: Sequence[str]) -> dict[str, int]:
    """Lower ``labels``' thresholds one grid step at a time, in turn, while the summed (expected) false
    accepts stay within the target and the keyword stream shows no new false accept of that label
    (``tables[label]["stream_fa"]``: noise, other words, one keyword taken for another): where the
    stream has no more misses to win (often synthesized words, which score higher than real ones),
    the rest of the budget buys recall on words it did not show, rather than being left unused."""
    idx = dict(idx)
    budget = target_fa * free_h
    moved = True
    while moved:
        moved = False
        for label in labels:
            i = idx[label]
            t = tables[label]
            if i == 0 or t["stream_fa"][i - 1] > t["stream_fa"][i]:
                continue
            total = sum(tables[l]["fa"][j] for l, j in idx.items()) - t["fa"][i] + t["fa"][i - 1]
            if total <= budget:
                idx[label] = i - 1
                moved = True
    return idx


def _shared_index(totals: Sequence[float], target_fa: float, free_h: float) -> int:
    """The lowest grid index whose summed (expected) false accepts stay within the target; the
    strictest one where none does (the re-measure then gives up on this window)."""
    ok = [j for j, x in enumerate(totals) if x <= target_fa * free_h]
    return min(ok) if ok else len(totals) - 1


class _SharedPlan:
    """A shared threshold's bookkeeping for one smoothing window: the keywords' false accepts seen
    at each grid threshold (every keyword at it), summed, and where none is seen the number expected
    from all keywords' near misses pooled."""

    def __init__(self, keywords: Sequence[str], fa_tables: dict, peaks: dict, grid: Sequence[float]):
        self.pooled = expected_counts(np.concatenate([peaks[l] for l in keywords]), grid) if keywords else None
        self.totals = fill_zeros([sum(fa_tables[l][j] for l in keywords) for j in range(len(grid))], self.pooled)

    def counted(self, seen: dict, j: int) -> float:
        """False accepts re-measured with the shared threshold at grid index ``j``, counted as
        ``totals`` counts them."""
        total = float(sum(seen.values()))
        return float(self.pooled[j]) if not total and self.pooled is not None else total


def calibrate(times, scores, manifest: Manifest, events, duration_s: float, target_fa: float,
              grid: Sequence[float] = THRESHOLD_GRID, windows: Sequence[float] = WINDOW_GRID_MS,
              negatives: Sequence[ScoredAudio] = (), tail: bool = True, shared: bool = False) -> dict:
    """The best operating point: {"thresholds", "average_window_ms", "report", "negatives", "expected"};
    ``report`` is the exact streaming report re-measured with the chosen per-label thresholds.

    Without ``negatives`` the false accepts are those of the stream itself. With them (long
    keyword-free recordings, e.g. real speech) the false accepts per hour are counted on the
    negatives alone, where the model will be used, and the stream only gives the false-reject
    rate; ``negatives`` then holds their count (``negatives_false_accepts``).

    With ``tail`` a label with no false accept seen at a threshold counts the number expected there
    from its near misses (``fa_tail``), and the target must hold for that expected rate;
    ``expected`` gives it: {"fa_per_hour", "per_label", "near_misses"}. The thresholds of labels with a
    fitted tail are then lowered while the expected rate stays within the target (``_spend_budget``).

    With ``shared`` the keywords share one threshold: the lowest whose summed false accepts stay
    within the target, where none is seen the number expected from all keywords' near misses pooled
    (one tail fitted on ten labels' near misses instead of ten on a tenth each; ``_SharedPlan``).
    Thresholds chosen per label fit the calibration stream's own few near misses; on speakers never
    heard the shared one found as many words as per-label thresholds at twice the target, or more,
    for six of eight models, and far fewer for one whose single keyword had the loudest near
    misses (README, "Calibrating for voices never heard")."""
    keywords = [l for l in manifest.labels if l not in manifest.ignore_labels]
    best = None
    for window in sorted(set(windows) | {manifest.smoothing.average_window_ms}):
        sm = with_window(manifest.smoothing, window)
        # the window's averages, computed once: the thresholds tried below only replay decisions on them
        stream_averages, negative_averages = window_averages(times, scores, manifest, sm), {}
        rows = sweep(times, scores, manifest, events, duration_s, grid, sm, stream_averages)
        if negatives:
            free_h, fa_tables = _negative_tables(negatives, manifest, keywords, grid, sm, target_fa,
                                                 negative_averages)
        else:
            free_h = rows[0]["keyword_free_hours"]
            fa_tables = {l: [r["per_label"][l]["false_accepts"] for r in rows] for l in keywords}
        # where false accepts are counted: on the negatives, else on the stream
        where = negatives or [ScoredAudio(times=times, scores=scores, duration_s=duration_s, events=tuple(events))]
        hours = keyword_free_hours(where)  # unrounded, as the reported rate divides by them
        peaks = (near_misses_by_label(where, manifest.labels, keywords, window, sm.suppression_ms) if tail
                 else dict.fromkeys(keywords, np.zeros(0)))
        expected = {l: expected_counts(peaks[l], grid) for l in keywords}
        plan = _SharedPlan(keywords, fa_tables, peaks, grid) if shared and keywords else None
        if plan:
            idx = dict.fromkeys(keywords, _shared_index(plan.totals, target_fa, free_h))
        else:
            tables = {l: {"fa": fill_zeros(fa_tables[l], expected[l]),
                          "miss": [r["per_label"][l]["keywords"] - r["per_label"][l]["detected"] for r in rows],
                          "stream_fa": [r["per_label"][l]["false_accepts"] for r in rows]}
                      for l in keywords}
            idx = _greedy(tables, grid, target_fa, free_h)
            if tail:  # only labels whose false accepts the tail can count: below the last one seen, zero is no estimate
                idx = _spend_budget(idx, tables, target_fa, free_h,
                                    [l for l in keywords if expected[l] is not None])
        while True:  # labels interact through suppression: re-measure, tighten until the target holds
            th = {l: float(grid[i]) for l, i in idx.items()}
            rep = streaming_report(smooth(times, scores, manifest, sm, th, stream_averages), events, duration_s,
                                   keywords)
            neg = negatives_false_accepts(negatives, manifest, th, sm, negative_averages) if negatives else None
            seen = neg["per_label"] if neg else {l: rep["per_label"][l]["false_accepts"] for l in keywords}
            if plan:
                by_label = {l: float(seen[l]) for l in keywords}
                fa_now = plan.counted(seen, idx[keywords[0]]) / hours if hours else None
            else:
                by_label = {l: float(seen[l]) if seen[l] or expected[l] is None else float(expected[l][idx[l]])
                            for l in keywords}
                fa_now = sum(by_label.values()) / hours if hours else None
            if fa_now is None or fa_now <= target_fa:
                break
            if plan:  # the shared threshold one step up
                if idx[keywords[0]] == len(grid) - 1:
                    rep = None
                    break
                idx = dict.fromkeys(keywords, idx[keywords[0]] + 1)
                continue
            worst = max(keywords, key=lambda l: (by_label[l], -idx[l]))
            if idx[worst] == len(grid) - 1:
                rep = None
                break
            idx[worst] += 1
        if rep is None:
            continue
        key = (rep["frr"] if rep["frr"] is not None else 1.0, fa_now or 0.0, -window)
        if best is None or key < best[0]:
            exp = {"fa_per_hour": round(fa_now, 4) if fa_now is not None else None,
                   "per_label": {l: round(v, 4) for l, v in by_label.items()},
                   "near_misses": {l: int(len(peaks[l])) for l in keywords}, "tail": tail, "shared": shared}
            best = (key, {"thresholds": th, "average_window_ms": window, "report": rep, "negatives": neg,
                          "expected": exp})
    if best is None:
        from kws.edge.errors import KwsError

        where = "the negatives" if negatives else "this stream"
        raise KwsError(f"no threshold up to {grid[-1]} meets {target_fa} false accepts per hour on {where}"
                       + (" (counting the false accepts expected from the near misses)" if tail else ""))
    return best[1]


def _negative_tables(negatives: Sequence[ScoredAudio], manifest: Manifest, keywords: Sequence[str],
                     grid: Sequence[float], smoothing, target_fa: float,
                     cache: dict | None = None) -> tuple[float, dict[str, list[float]]]:
    """(hours, per-label false accepts at each grid threshold) on the negatives, measured from the
    strictest threshold down and stopped below the first threshold where every label alone exceeds
    the target's budget: lower ones are marked unusable (infinite), which the greedy never picks.
    Long negatives make every smoothing pass costly; the chosen point is re-measured exactly."""
    tables = {l: [float("inf")] * len(grid) for l in keywords}
    hours = 0.0
    for j in range(len(grid) - 1, -1, -1):
        rep = negatives_false_accepts(negatives, manifest, dict.fromkeys(keywords, float(grid[j])), smoothing, cache)
        hours = rep["hours"]
        for label in keywords:
            tables[label][j] = rep["per_label"][label]
        if all(rep["per_label"][l] > target_fa * hours for l in keywords):
            break
    return hours, tables


def keywords_off(result: dict) -> list[str]:
    """Keywords with spoken words in the calibration stream of which none is detected at the chosen
    thresholds. Where no lower threshold meets the target a keyword stays at the top of the grid,
    which its words rarely reach (an int8 model's scores stop at 255/256, under 0.998: never), so it
    is in effect switched off; kws-eval says so."""
    return [l for l, r in result["report"]["per_label"].items() if r["keywords"] and not r["detected"]]


def calibrated_fa(result: dict) -> tuple[float | None, float]:
    """(false accepts per hour, hours) the calibration was chosen for: on the negatives when it had
    them, else on the stream's keyword-free time."""
    if result.get("negatives"):
        return result["negatives"]["fa_per_hour"], result["negatives"]["hours"]
    return result["report"]["fa_per_hour"], result["report"]["keyword_free_hours"]


def write_calibration(manifest_path: Path, manifest: Manifest, result: dict, target_fa: float,
                      hours: float, negatives_sources: Sequence[str] = (), negatives_trained_on: int = 0,
                      model_file: str = "") -> Path:
    """Write thresholds, smoothing window and the measured operating point into the manifest,
    atomically, after copying the old one to ``manifest.json.bak``. ``model_file`` names the model
    whose scores chose them (int8 and float share the manifest: the thresholds fit one of them)."""
    rep = result["report"]
    fa, fa_hours = calibrated_fa(result)
    cal = {"model_file": model_file, "fa_per_hour": fa, "frr": rep["frr"], "hours": round(hours, 4),
           "keyword_free_hours": rep["keyword_free_hours"], "keywords": rep["keywords"],
           "target": target_fa, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "average_window_ms": result["average_window_ms"]}
    if result.get("negatives"):
        neg = result["negatives"]
        cal.update({"fa_measured_on": "negatives", "negatives_hours": neg["hours"],
                    "negatives_false_accepts": neg["false_accepts"], "negatives": list(negatives_sources),
                    "negatives_files_trained_on": negatives_trained_on,
                    "stream_fa_per_hour": rep["fa_per_hour"]})
    else:
        cal["fa_measured_on"] = "stream"
    cal["keywords_off"] = keywords_off(result)
    cal["shared_threshold"] = bool((result.get("expected") or {}).get("shared"))
    cal["chosen_for"] = (f"{target_fa:g} FA/h on {fa_hours:.3f} h of "
                         + ("negatives" if result.get("negatives") else "keyword-free stream"))
    exp = result.get("expected")
    if exp and exp.get("tail"):
        cal.update({"fa_per_hour_expected": exp["fa_per_hour"], "near_misses": exp["near_misses"]})
        if exp["fa_per_hour"] != fa:  # the tail counted where nothing was seen
            cal["chosen_for"] += ", counting the false accepts expected from the near misses"
    new = manifest.with_updates(thresholds=dict(result["thresholds"]),
                                smoothing=with_window(manifest.smoothing, result["average_window_ms"]),
                                calibration=cal)
    # the manifest read at the start must still be there: a kws-convert (or another calibration) that
    # wrote it meanwhile would be undone by this stale copy, and its models would no longer match
    try:
        current = load_manifest(manifest_path)
    except KwsError:
        current = None
    if current != manifest:
        raise KwsError(f"{manifest_path}: changed while calibrating (converted or calibrated again meanwhile); "
                       "nothing was written: run kws-eval --calibrate again")
    atomic_write_bytes(manifest_path.with_name(manifest_path.name + BACKUP_SUFFIX), manifest_path.read_bytes())
    return save_manifest(new, manifest_path)
