"""The best any thresholds could do on one stream: every keyword's threshold set just above its
loudest false accept on that very stream, and the share of its words still detected there.

The thresholds are fitted to the audio they are scored on, so the figure is an upper bound on
what calibration on other audio can reach with the same model: when it is far below the target,
the model (not the calibration) is what has to change. Pure numpy over the per-hop scores; a
word counts as found when its label's averaged score (``fa_tail.window_average``) passes the
threshold within +-TOLERANCE_S of its end; the smoother's hold and suppression rules are left out.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .fa_tail import episode_peaks, window_average
from .streaming_metrics import TOLERANCE_S, keyword_events


def word_peaks(times_s: np.ndarray, column: np.ndarray, ends_s: Sequence[float]) -> np.ndarray:
    """The highest averaged score of one label within +-TOLERANCE_S of each of its words' ends."""
    out = []
    for end in ends_s:
        near = (times_s >= end - TOLERANCE_S) & (times_s <= end + TOLERANCE_S)
        out.append(float(column[near].max()) if near.any() else 0.0)
    return np.array(out)


def best_possible(times_s: np.ndarray, scores: np.ndarray, labels: Sequence[str], keywords: Sequence[str],
                  events: Sequence, window_ms: float, suppression_ms: float) -> dict:
    """{"recall_at_zero_fa", "average_window_ms", "per_label": {label: {"threshold", "found",
    "keywords"}}}: per keyword the loudest false-accept episode's peak (0 where there is none) and
    how many of its words pass it."""
    times_s = np.asarray(times_s, np.float64)
    avg = window_average(times_s, scores, window_ms)
    spoken = keyword_events(events)
    per_label, found, total = {}, 0, 0
    for label in keywords:
        col = avg[:, list(labels).index(label)]
        ends = [e.end_s for e in spoken if e.label == label]
        spans = [(e - TOLERANCE_S, e + TOLERANCE_S) for e in ends]
        false = episode_peaks(times_s, col, suppression_ms, spans)
        loudest = float(false.max()) if len(false) else 0.0
        hits = int((word_peaks(times_s, col, ends) > loudest).sum())
        per_label[label] = {"threshold": round(loudest, 4), "found": hits, "keywords": len(ends)}
        found, total = found + hits, total + len(ends)
    return {"recall_at_zero_fa": round(found / total, 4) if total else None,
            "average_window_ms": float(window_ms), "per_label": per_label}


def best_over_windows(times_s, scores, labels, keywords, events, windows_ms: Sequence[float],
                      suppression_ms: float) -> dict:
    """``best_possible`` at the window (of ``windows_ms``) where it finds the most words."""
    results = [best_possible(times_s, scores, labels, keywords, events, w, suppression_ms) for w in windows_ms]
    return max(results, key=lambda r: (r["recall_at_zero_fa"] or 0.0, -r["average_window_ms"]))
