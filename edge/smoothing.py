"""Posterior smoothing: per-hop label scores in, detection events out.

RecognizeCommands averaging with a release rule (``firmware_notes/smoothing.md`` is the spec every
port follows): average the scores of the last ``average_window_ms``; report the top label when its
average exceeds its threshold, unless a detection is still held. A detection of L is held until
L's average has stayed below ``release_fraction * threshold(L)`` for ``release_ms``, and L is never
reported twice within ``suppression_ms``: one spoken word, however long, is one detection.
Every parameter is a time in ms, so the decisions do not depend on the hop. Pure: no audio, no
model, no clock — the caller passes the stream time. ``update`` allocates only its result, ``decide``
(the same decision as an index) nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .errors import KwsError
from .manifest import BACKGROUND_LABELS, Manifest, SmoothingConfig

NO_LABEL = -1
NO_DECISION = -2  # decide(): the averaged results do not span enough time yet
DROPPED = -3  # decide(): a result older than the newest queued one
READY = 0  # queue_result(): a decision is due on the window's average
# a window shorter than this fraction of average_window_ms gives no decision yet
MIN_WINDOW_FRACTION = 0.25
# stream times compared with this slack (ms), so 30.000000001 ms counts as one 30 ms hop (kws-eval
# keeps times in seconds: 1.03 s back in ms is 1030.0000000000002)
TIME_SLACK_MS = 1e-6
# results queued at first: enough for the window at the configured hop, grown if needed
EXTRA_QUEUE_ROWS = 2
_add_reduce = np.add.reduce


@dataclass(frozen=True)
class SmoothedResult:
    """The smoother's decision after one model result.

    ``label``/``score`` are the top label of the averaged window and its average (empty/0.0 when the
    window is too short); ``is_detection`` (alias ``is_new_command``) when that label is reported now."""

    time_ms: float
    label: str
    score: float
    is_new_command: bool
    is_detection: bool


class _ScoreQueue:
    """The (time, scores) results of the averaging window in preallocated ring arrays."""

    def __init__(self, num_labels: int, capacity: int):
        self.times = np.zeros(capacity, np.float64)
        self.rows = np.zeros((capacity, num_labels), np.float64)
        self.head = 0  # index of the oldest result
        self.count = 0
        self._sum = np.zeros(num_labels, np.float64)

    def clear(self) -> None:
        self.head = self.count = 0

    @property
    def oldest(self) -> float:
        return float(self.times[self.head])

    @property
    def newest(self) -> float:
        return float(self.times[(self.head + self.count - 1) % len(self.times)])

    def push(self, time_ms: float, scores: np.ndarray) -> None:
        if self.count == len(self.times):
            self._grow()
        j = (self.head + self.count) % len(self.times)
        self.times[j] = time_ms
        self.rows[j] = scores
        self.count += 1

    def drop_before(self, horizon: float) -> None:
        times, cap = self.times, len(self.times)
        while self.count and times[self.head] < horizon:
            self.head = (self.head + 1) % cap
            self.count -= 1

    def mean(self, out: np.ndarray) -> np.ndarray:
        """Average of the queued rows, oldest first, into ``out`` (np.add.reduce: np.sum's own
        reduction, without its Python wrapper)."""
        cap = len(self.times)
        first = min(self.count, cap - self.head)
        _add_reduce(self.rows[self.head:self.head + first], axis=0, out=out)
        if first < self.count:
            _add_reduce(self.rows[:self.count - first], axis=0, out=self._sum)
            out += self._sum
        out /= self.count
        return out

    def _grow(self) -> None:
        order = (self.head + np.arange(self.count)) % len(self.times)
        self.times = np.concatenate([self.times[order], np.zeros(self.count)])
        self.rows = np.concatenate([self.rows[order], np.zeros_like(self.rows)])
        self.head = 0


def never_decides(config: SmoothingConfig, hop_named: str = "") -> str | None:
    """Why a smoother with ``config`` fed one result every ``hop_ms`` could never decide (rule 2:
    the results of one average window never span the time a decision needs, e.g. a hop longer
    than the window), in one line; None when it can. The line starts with the hop as the caller's
    user set it: ``hop_named`` (a config's "smoothing.hop_ms 600"), else "hop 600 ms"."""
    need = max(config.minimum_span_ms, config.average_window_ms * MIN_WINDOW_FRACTION)
    span = math.floor(config.average_window_ms / config.hop_ms + TIME_SLACK_MS) * config.hop_ms
    if span + TIME_SLACK_MS >= need:
        return None
    return (f"{hop_named or f'hop {config.hop_ms:g} ms'}: results that far apart never span the {need:g} ms a decision needs "
            f"within the {config.average_window_ms:g} ms smoothing window, so nothing would ever be detected; "
            f"use a shorter hop")


def check_decides(config: SmoothingConfig) -> None:
    """KwsError with ``never_decides``'s line where a smoother with ``config`` could never decide (what
    every recognizer and kws-mine check before they run)."""
    problem = never_decides(config)
    if problem:
        raise KwsError(problem)


class PosteriorSmoother:
    """Averages per-hop scores over a time window and turns them into detection events."""

    def __init__(self, labels: Sequence[str], config: SmoothingConfig = SmoothingConfig(),
                 thresholds: Mapping[str, float] | None = None,
                 ignore_labels: Sequence[str] = BACKGROUND_LABELS):
        if len(labels) < 2:
            raise ValueError("need at least two labels")
        self.labels = tuple(labels)
        self.config = config
        thresholds = dict(thresholds or {})
        unknown = sorted(set(thresholds) - set(self.labels))
        if unknown:
            raise ValueError(f"thresholds for unknown labels: {', '.join(unknown)}")
        self.thresholds = np.array([thresholds.get(l, config.detection_threshold) for l in self.labels],
                                   np.float64)
        self.release_levels = self.thresholds * config.release_fraction
        self.ignore = np.array([l in ignore_labels for l in self.labels])
        self._min_span_ms = max(config.minimum_span_ms, config.average_window_ms * MIN_WINDOW_FRACTION)
        capacity = int(math.ceil(config.average_window_ms / config.hop_ms)) + EXTRA_QUEUE_ROWS
        self._queue = _ScoreQueue(len(self.labels), capacity)
        self._average = np.zeros(len(self.labels), np.float64)
        self._window_ms = config.average_window_ms
        self._suppression_ms = config.suppression_ms
        self.last_score = 0.0
        self.last_decision_fired = False
        self._last_times = np.zeros(len(self.labels), np.float64)
        self.reset()

    @classmethod
    def from_manifest(cls, manifest: Manifest, config: SmoothingConfig | None = None,
                      thresholds: Mapping[str, float] | None = None) -> "PosteriorSmoother":
        """A smoother with the manifest's labels, smoothing and per-label thresholds (each overridable)."""
        return cls(manifest.labels, config or manifest.smoothing,
                   manifest.thresholds if thresholds is None else thresholds, manifest.ignore_labels)

    def reset(self) -> None:
        """Forget queued results, the held detection and every label's last detection (a new stream)."""
        self._queue.clear()
        self._last_times.fill(-math.inf)
        self.last_label = NO_LABEL
        self.last_time_ms = -math.inf
        self.held_label = NO_LABEL
        self._below_since = math.nan

    def threshold_for(self, label: str) -> float:
        return float(self.thresholds[self.labels.index(label)])

    def update(self, scores: Sequence[float] | np.ndarray, time_ms: float) -> SmoothedResult | None:
        """Add one model result (probabilities per label, the stream time of its newest audio in ms).

        Returns None for a result older than the newest queued one (it is dropped)."""
        s = np.asarray(scores).reshape(-1)
        if s.shape[0] != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} scores, got {s.shape[0]}")
        top = self.decide(s, time_ms)
        if top == DROPPED:
            return None
        if top == NO_DECISION:
            return SmoothedResult(time_ms, "", 0.0, False, False)
        fires = self.last_decision_fired
        return SmoothedResult(time_ms, self.labels[top], self.last_score, fires, fires)

    def decide(self, scores: np.ndarray, time_ms: float) -> int:
        """``update`` without its result object (the recognizer's per-hop path): ``scores`` is a 1-D
        array of one score per label. Returns the top label's index (``last_score`` its average,
        ``last_decision_fired`` whether it is reported now), NO_DECISION while the window is too
        short, DROPPED for a result older than the newest queued one."""
        status = self.queue_result(scores, time_ms)
        if status != READY:
            if status == NO_DECISION:
                self.last_decision_fired = False
            return status
        return self.decide_on(self._queue.mean(self._average), time_ms)

    def queue_result(self, scores: np.ndarray, time_ms: float) -> int:
        """``decide``'s first half: queue one result and drop those older than the window. Returns
        READY where a decision is due on the window's average (``window_average``), NO_DECISION while
        the queued results span too little time, DROPPED for a result older than the newest queued one."""
        queue = self._queue
        if queue.count and time_ms < queue.newest:
            return DROPPED
        queue.push(float(time_ms), scores)
        queue.drop_before(time_ms - self._window_ms - TIME_SLACK_MS)
        if time_ms - queue.times[queue.head] + TIME_SLACK_MS < self._min_span_ms:
            return NO_DECISION
        return READY

    def window_average(self) -> np.ndarray:
        """The average of the queued results, per label (a buffer the next call overwrites)."""
        return self._queue.mean(self._average)

    def decide_on(self, average: np.ndarray, time_ms: float) -> int:
        """``decide``'s second half: the decision on one window average at ``time_ms``, which depends
        on the thresholds, the held detection and each label's last detection, never on the queue.
        Returns the top label's index (``last_score``, ``last_decision_fired`` as in ``decide``)."""
        if self.held_label != NO_LABEL:
            self._update_hold(average, time_ms)
        top = int(average.argmax())
        score = float(average[top])
        fires = (self.held_label == NO_LABEL and not self.ignore[top] and score > self.thresholds[top]
                 and time_ms - self._last_times[top] > self._suppression_ms + TIME_SLACK_MS)
        if fires:
            self.held_label = self.last_label = top
            self.last_time_ms = self._last_times[top] = float(time_ms)
            self._below_since = math.nan
        self.last_score = score
        self.last_decision_fired = bool(fires)
        return top

    def _update_hold(self, average: np.ndarray, time_ms: float) -> None:
        """Release the held detection once its label's average has stayed low for release_ms."""
        held = self.held_label
        if held == NO_LABEL:
            return
        if average[held] >= self.release_levels[held]:
            self._below_since = math.nan
            return
        if math.isnan(self._below_since):
            self._below_since = float(time_ms)
        if time_ms - self._below_since + TIME_SLACK_MS >= self.config.release_ms:
            self.held_label = NO_LABEL
            self._below_since = math.nan
