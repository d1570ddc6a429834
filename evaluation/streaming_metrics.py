"""Streaming quality from detections and ground truth (pure functions, no I/O):

* the TF test_streaming_accuracy percentages (matched, correctly matched, wrongly matched,
  false positives; all relative to the number of ground-truth keywords, +-TOLERANCE_S; None
  where there is no keyword);
* false accepts per hour of keyword-free audio and the false-reject rate, overall and per label;
* detection latency after the end of the keyword's speech.

A detection matches a still-unmatched keyword whose speech end is within TOLERANCE_S of it: first
every detection that can be paired with a word of its own label is (correct matches), then the rest
with words of another label (wrong matches); each pass pairs as many as any assignment could, the
nearest where several do (two words close together are both found by their two detections).

A false accept is a keyword detection that did not find a spoken word of its own label: every
detection kws-listen would act on although that word was not said. So it is an unmatched detection
(on noise, on an ``_unknown_`` word, or a second detection of a word already found) or a wrong match
(a spoken word of another label taken for this one; that word also counts as missed in the
false-reject rate). Overall and per label they are the same detections, so the counts of all the
detected labels add up to the overall one, and calibration, which sums the per-label counts,
targets what is reported.
The tutorial's percentages keep its own definitions: a wrong match is "wrongly matched", not a
false positive.

Keyword-free time is the stream minus, for every keyword, the span where a detection would have
matched it; FA/h is all the false accepts over its hours (the field's "per hour of non-keyword
audio"). Two kinds of false accept lie inside those spans, at times the hours leave out: a repeat
(an unmatched detection within TOLERANCE_S of a spoken word of its own label that another detection
found: the smoother fired again after its refractory time, and kws-listen acts twice) and a false
accept on another keyword (a wrong match, or an unmatched detection near a word of another label).
They are counted, as kws-listen acts on them, and the report gives how many of each
(``false_accept_kinds``) beside those in keyword-free time, so a rate that repeats drive (the
smoother's release and suppression at work) is told apart from one of noise and other words.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from kws.edge.errors import KwsError
from kws.edge.manifest import BACKGROUND_LABELS, SILENCE_LABEL

from .stream import Event

TOLERANCE_S = 1.5
SECONDS_PER_HOUR = 3600.0
NO_RATE = "n/a"  # a rate the stream cannot give: FA/h without keyword-free time, FRR without keywords
# the precision reports print false accepts per hour at (kws-eval, kws-mine): 1/100, one false accept
# in 100 h; their JSON keeps them exact
FA_DECIMALS = 2


@dataclass(frozen=True)
class Detection:
    time_s: float
    label: str
    score: float


def keyword_events(events: Sequence[Event]) -> list[Event]:
    return [e for e in events if e.label not in BACKGROUND_LABELS]


def keyword_free_seconds(events: Sequence[Event], duration_s: float, tol: float = TOLERANCE_S) -> float:
    """Seconds of the stream outside every keyword's matching span [end - tol, end + tol] (spans
    clipped to the stream; never more than ``duration_s``)."""
    spans = sorted((max(0.0, e.end_s - tol), min(duration_s, e.end_s + tol)) for e in keyword_events(events))
    spans = [(a, b) for a, b in spans if b > a]
    covered, cur_a, cur_b = 0.0, None, None
    for a, b in spans:
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                covered += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        covered += cur_b - cur_a
    return max(0.0, duration_s - covered)


def pair_in_time(det_times: Sequence[float], ends: Sequence[float], tol: float) -> list[tuple[int, int]]:
    """(detection index, word index) pairs, each detection within ``tol`` of its word's end, as many
    as any assignment makes and, among those, the least summed distance (both lists sorted). In time
    order the pairs never cross, so a dynamic programme over (detection, first free word) finds
    them; a detection only reaches the few words within ``tol`` of it."""
    d = np.asarray(det_times, np.float64)
    e = np.asarray(ends, np.float64)
    n = len(d)
    if not n or not len(e):
        return []
    lo = np.searchsorted(e, d - tol, side="left")
    hi = np.searchsorted(e, d + tol, side="right")
    # best[i][j - lo[i]]: (pairs, -distance) of detections i.. with words j.. free (lo[i] <= j <= hi[i])
    best: list[list[tuple[int, float]]] = [[] for _ in range(n + 1)]
    take: list[list[int]] = [[] for _ in range(n)]

    def after(i: int, j: int) -> tuple[int, float]:
        if i == n:
            return (0, 0.0)
        return best[i][max(j, lo[i]) - lo[i]]

    for i in range(n - 1, -1, -1):
        row, choice = [], []
        for j in range(lo[i], hi[i] + 1):
            top, pick = after(i + 1, j), -1
            for w in range(j, hi[i]):
                count, dist = after(i + 1, w + 1)
                cand = (count + 1, dist - abs(e[w] - d[i]))
                if cand > top:
                    top, pick = cand, w
            row.append(top)
            choice.append(pick)
        best[i], take[i] = row, choice
    pairs, j = [], int(lo[0])
    for i in range(n):
        w = take[i][max(j, lo[i]) - lo[i]]
        if w >= 0:
            pairs.append((i, w))
            j = w + 1
    return pairs


def match(detections: Sequence[Detection], events: Sequence[Event], tol: float = TOLERANCE_S):
    """Pair detections with keyword events (see the module docstring); returns (pairs [(det, event)]
    in time order, unmatched detections)."""
    dets = sorted((d for d in detections if d.label not in BACKGROUND_LABELS), key=lambda d: d.time_s)
    free_words = sorted(keyword_events(events), key=lambda e: e.end_s)
    pairs = []
    for same_label in (True, False):  # correct matches first, then words taken for another
        for label in (dict.fromkeys(d.label for d in dets) if same_label else [None]):
            ds = [d for d in dets if label is None or d.label == label]
            ws = [w for w in free_words if label is None or w.label == label]
            found = [(ds[a], ws[b]) for a, b in pair_in_time([x.time_s for x in ds], [w.end_s for w in ws], tol)]
            pairs += found
            taken_d, taken_w = {id(x) for x, _ in found}, {id(w) for _, w in found}
            dets = [x for x in dets if id(x) not in taken_d]
            free_words = [w for w in free_words if id(w) not in taken_w]
    return sorted(pairs, key=lambda p: p[0].time_s), dets


def false_accept_kinds(matched_wrong: Sequence[Detection], unmatched: Sequence[Detection],
                       events: Sequence[Event], tol: float = TOLERANCE_S) -> dict[str, int]:
    """How many false accepts lie where (see the module docstring): "repeats" (unmatched, within
    ``tol`` of a spoken word of their own label), "on_other_keywords" (wrong matches, and unmatched
    ones within ``tol`` of a word of another label only), "in_keyword_free_time" (the rest)."""
    ends = [(e.label, e.end_s) for e in keyword_events(events)]

    def near(d: Detection, same: bool) -> bool:
        return any((label == d.label) == same and abs(d.time_s - end) <= tol for label, end in ends)

    repeats = sum(near(d, True) for d in unmatched)
    other = len(matched_wrong) + sum(not near(d, True) and near(d, False) for d in unmatched)
    return {"in_keyword_free_time": len(unmatched) + len(matched_wrong) - repeats - other,
            "repeats": repeats, "on_other_keywords": other}


def streaming_report(detections: Sequence[Detection], events: Sequence[Event], duration_s: float,
                     labels: Sequence[str] | None = None, tol: float = TOLERANCE_S) -> dict:
    """All streaming metrics for one set of detections (see the module docstring)."""
    kws = keyword_events(events)
    pairs, fas = match(detections, events, tol)
    n = len(kws)
    correct = [(d, e) for d, e in pairs if d.label == e.label]
    wrong = len(pairs) - len(correct)
    wrong_dets = [d for d, e in pairs if d.label != e.label]
    false = fas + wrong_dets  # see the module docstring
    free_s = keyword_free_seconds(events, duration_s, tol)
    if not 0.0 <= free_s <= duration_s:
        raise KwsError(f"keyword-free time {free_s:.1f} s is outside the stream's {duration_s:.1f} s: "
                       f"the labels do not fit the stream")
    free_h = free_s / SECONDS_PER_HOUR
    latencies = np.array([d.time_s - e.end_s for d, e in correct])
    labels = [l for l in (labels or sorted({e.label for e in kws})) if l not in BACKGROUND_LABELS]
    per_label = {}
    for label in labels:
        n_l = sum(e.label == label for e in kws)
        hit_l = sum(e.label == label for _, e in correct)
        fa_l = sum(d.label == label for d in false)
        per_label[label] = {"keywords": n_l, "detected": hit_l,
                            "frr": round(1 - hit_l / n_l, 6) if n_l else None,
                            "false_accepts": fa_l,
                            "fa_per_hour": round(fa_l / free_h, 4) if free_h else None}
    pct = (lambda k: round(100.0 * k / n, 3) if n else None)  # relative to the keywords: none, no percentage
    silences = sum(e.label == SILENCE_LABEL for e in events)
    return {
        "keywords": n,
        "non_keyword_events": len(events) - n,  # the two below together
        "unknown_word_events": len(events) - n - silences,
        "silence_events": silences,
        "duration_s": round(duration_s, 3),
        "keyword_free_hours": round(free_h, 5),
        "detections": sum(d.label not in BACKGROUND_LABELS for d in detections),
        "tutorial": {"matched_pct": pct(len(pairs)), "correctly_matched_pct": pct(len(correct)),
                     "wrongly_matched_pct": pct(wrong), "false_positive_pct": pct(len(fas))},
        "false_accepts": len(false),
        "false_accept_kinds": false_accept_kinds(wrong_dets, fas, events, tol),
        "fa_per_hour": round(len(false) / free_h, 4) if free_h else None,
        "frr": round(1 - len(correct) / n, 6) if n else None,
        "latency_s": {"median": round(float(np.median(latencies)), 4) if len(latencies) else None,
                      "p90": round(float(np.percentile(latencies, 90)), 4) if len(latencies) else None},
        "per_label": per_label,
    }


def fa_rate_text(rate: float | None) -> str:
    """False accepts per hour as reports print them (FA_DECIMALS), or NO_RATE where there is none."""
    return NO_RATE if rate is None else f"{rate:.{FA_DECIMALS}f}"
