"""Expected false accepts where the keyword-free audio is too short to count them.

A target of 0.5 false accepts per hour cannot be seen on 0.9 h of negatives: every threshold above
the loudest false accept counts zero there, and the lowest of them is right at the edge of the cliff
(the next hour of speech will hold its own loudest near miss). Calibration therefore replaces each
observed zero with the count expected from the tail of the near misses: the per-episode peaks of a
label's averaged score where a detection would be false, fitted with an
exponential tail in logit space (the peaks-over-threshold method) on the upper half of them (at most
``TAIL_PEAKS``): the bulk near 0.5 decays slower than the tail and would overstate it.

Pure numpy: per-hop scores in, counts out. The averaging mirrors ``kws.edge.smoothing`` (the mean of
the results of the last ``average_window_ms``; one episode per label within ``suppression_ms``); the
hold/release rule is left out, so the count errs on the side of more false accepts.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kws.edge.smoothing import TIME_SLACK_MS

# the tail is fitted on the largest half of the near misses, at most this many
TAIL_PEAKS = 20
# fewer near misses than this: no fit, an observed zero stays zero
MIN_TAIL_PEAKS = 10
# an averaged score at or under this is not a near miss
PEAK_FLOOR = 0.05
# logit of scores clipped to [LOGIT_EPS, 1 - LOGIT_EPS] (float32 softmax outputs reach 1.0)
LOGIT_EPS = 1e-6
# the smallest tail scale (logit units): ties among the largest peaks must not make it zero
MIN_SCALE = 0.05


def logit(p: np.ndarray | Sequence[float] | float) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(p) - np.log1p(-p)


def window_average(times_s: np.ndarray, scores: np.ndarray, window_ms: float) -> np.ndarray:
    """(N, labels): at each hop the mean of the scores whose time lies in [t - window, t], as the
    edge smoother averages them."""
    t_ms = np.asarray(times_s, np.float64) * 1000.0
    # with the smoother's slack: a time that went through seconds is a hair off its ms
    first = np.searchsorted(t_ms, t_ms - window_ms - TIME_SLACK_MS, side="left")
    csum = np.concatenate([np.zeros((1, scores.shape[1])), np.cumsum(scores, axis=0, dtype=np.float64)])
    last = np.arange(1, len(t_ms) + 1)
    return (csum[last] - csum[first]) / (last - first)[:, None]


def near_misses(times_s: np.ndarray, scores: np.ndarray, labels: Sequence[str], label: str, window_ms: float,
                suppression_ms: float, correct_spans: Sequence[tuple[float, float]] = ()) -> np.ndarray:
    """Peak averaged score of ``label`` in each episode where it rises above PEAK_FLOOR, outside
    ``correct_spans`` (stream seconds where a detection of ``label`` would match a spoken ``label``);
    hops closer than ``suppression_ms`` belong to one episode. Episodes where another label stays on
    top count too: they are what the tail is fitted on where the model rarely comes close."""
    if not len(times_s):
        return np.zeros(0)
    avg = window_average(times_s, scores, window_ms)
    return episode_peaks(times_s, avg[:, list(labels).index(label)], suppression_ms, correct_spans)


def near_misses_by_label(parts: Sequence, labels: Sequence[str], keywords: Sequence[str], window_ms: float,
                         suppression_ms: float) -> dict[str, np.ndarray]:
    """``near_misses`` of every keyword over recordings with ``times``, ``scores`` and ``events``
    (ScoredAudio), concatenated; a keyword's own spoken words (``events``, +-TOLERANCE_S around their
    end) are not misses. Each recording's average is computed once for all keywords."""
    from .streaming_metrics import TOLERANCE_S, keyword_events

    out: dict[str, list[np.ndarray]] = {k: [np.zeros(0)] for k in keywords}
    for part in parts:
        if not len(part.times):
            continue
        avg = window_average(part.times, part.scores, window_ms)
        for k in keywords:
            spans = [(e.end_s - TOLERANCE_S, e.end_s + TOLERANCE_S) for e in keyword_events(part.events)
                     if e.label == k]
            out[k].append(episode_peaks(part.times, avg[:, list(labels).index(k)], suppression_ms, spans))
    return {k: np.concatenate(v) for k, v in out.items()}


def episodes(times_s: np.ndarray, column: np.ndarray, gap_s: float,
             floor: float = PEAK_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """(time, peak) of each episode of one label's scores: a run of hops above ``floor``, where hops
    no more than ``gap_s`` apart belong to one run."""
    s = np.asarray(column, np.float64)
    t = np.asarray(times_s, np.float64)
    hot = np.flatnonzero(s > floor)
    if not len(hot):
        return np.zeros(0), np.zeros(0)
    groups = np.split(hot, np.flatnonzero(np.diff(t[hot]) > gap_s) + 1)
    top = np.array([g[np.argmax(s[g])] for g in groups])
    return t[top], s[top]


def episode_peaks(times_s: np.ndarray, column: np.ndarray, suppression_ms: float,
                  correct_spans: Sequence[tuple[float, float]]) -> np.ndarray:
    """The peak of one label's averaged scores in each episode above PEAK_FLOOR, hops within
    ``suppression_ms`` (at least 1.5 hops) joined, outside ``correct_spans`` (see near_misses)."""
    s = np.array(column, np.float64)
    t = np.asarray(times_s, np.float64)
    for a, b in correct_spans:
        s[(t >= a) & (t <= b)] = 0.0
    hop_s = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    return episodes(t, s, max(suppression_ms / 1000.0, 1.5 * hop_s))[1]


def expected_counts(peaks: np.ndarray, thresholds: Sequence[float]) -> np.ndarray | None:
    """Expected number of near misses above each threshold: the empirical count where the peaks
    reach it, beyond that an exponential tail (in logit) fitted on the largest half of the peaks (at
    most TAIL_PEAKS) over the next one. None with fewer than MIN_TAIL_PEAKS peaks (nothing to fit)."""
    z = np.sort(logit(peaks))[::-1]
    if len(z) < MIN_TAIL_PEAKS:
        return None
    k = min(TAIL_PEAKS, len(z) // 2)
    u = z[k]
    scale = max(float(np.mean(z[:k] - u)), MIN_SCALE)
    zt = logit(thresholds)
    empirical = (z[None, :] > zt[:, None]).sum(axis=1).astype(np.float64)
    fitted = k * np.exp(-(zt - u) / scale)
    return np.where(zt > u, fitted, empirical)


def fill_zeros(observed: Sequence[float], expected: np.ndarray | None) -> list[float]:
    """Per-threshold false accepts for calibration: the observed count, and where it is zero the
    expected one (never more than the count at the next lower threshold, so the table stays
    monotone)."""
    out = [float(x) for x in observed]
    if expected is None:
        return out
    for j in range(len(out)):
        if out[j] == 0 and np.isfinite(expected[j]):
            out[j] = float(expected[j])
    for j in range(1, len(out)):  # non-increasing in the threshold
        if np.isfinite(out[j - 1]) and out[j] > out[j - 1]:
            out[j] = out[j - 1]
    return out
