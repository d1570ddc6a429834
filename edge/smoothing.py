"""Posterior smoothing: per-hop label scores in, detection events out.

RecognizeCommands semantics in the TensorFlow Lite Micro variant (``firmware_notes/smoothing.md`` is
the spec every port follows): average the scores of the last ``average_window_ms``; fire when the
top label's average exceeds its threshold and it differs from the last label that fired or
``suppression_ms`` has passed. Background labels "fire" silently, so a keyword can fire again after
silence. Pure: no audio, no model, no clock — the caller passes the stream time.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .manifest import BACKGROUND_LABELS, SILENCE_LABEL, Manifest, SmoothingConfig

NO_LABEL = -1
# a window shorter than this fraction of average_window_ms gives no decision yet
MIN_WINDOW_FRACTION = 0.25


@dataclass(frozen=True)
class SmoothedResult:
    """The smoother's decision after one model result.

    ``label``/``score`` are the top label of the averaged window and its average (empty/0.0 when the
    window is too short); ``is_new_command`` is true when that label fired now; ``is_detection`` when
    it fired and is not a background label (what users call a detection)."""

    time_ms: float
    label: str
    score: float
    is_new_command: bool
    is_detection: bool


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
        self.ignore = np.array([l in ignore_labels for l in self.labels])
        self._silence = self.labels.index(SILENCE_LABEL) if SILENCE_LABEL in self.labels else NO_LABEL
        self._times: deque[float] = deque()
        self._scores: deque[np.ndarray] = deque()
        self.reset()

    @classmethod
    def from_manifest(cls, manifest: Manifest, config: SmoothingConfig | None = None,
                      thresholds: Mapping[str, float] | None = None) -> "PosteriorSmoother":
        """A smoother with the manifest's labels, smoothing and per-label thresholds (each overridable)."""
        return cls(manifest.labels, config or manifest.smoothing,
                   manifest.thresholds if thresholds is None else thresholds, manifest.ignore_labels)

    def reset(self) -> None:
        """Forget queued results and the last detection (a new stream)."""
        self._times.clear()
        self._scores.clear()
        self.last_label = NO_LABEL
        self.last_time_ms = -math.inf

    def threshold_for(self, label: str) -> float:
        return float(self.thresholds[self.labels.index(label)])

    def update(self, scores: Sequence[float] | np.ndarray, time_ms: float) -> SmoothedResult | None:
        """Add one model result (probabilities per label, the stream time of its newest audio in ms).

        Returns None for a result older than the newest queued one (it is dropped)."""
        s = np.asarray(scores, np.float64).reshape(-1)
        if s.shape[0] != len(self.labels):
            raise ValueError(f"expected {len(self.labels)} scores, got {s.shape[0]}")
        if self._times and time_ms < self._times[-1]:
            return None
        self._times.append(float(time_ms))
        self._scores.append(s)
        horizon = time_ms - self.config.average_window_ms
        while self._times[0] < horizon:
            self._times.popleft()
            self._scores.popleft()
        count = len(self._times)
        if (count < self.config.minimum_count
                or time_ms - self._times[0] < self.config.average_window_ms * MIN_WINDOW_FRACTION):
            return SmoothedResult(time_ms, "", 0.0, False, False)
        average = np.sum(self._scores, axis=0) / count
        top = int(np.argmax(average))
        score = float(average[top])
        if self.last_label == NO_LABEL or self.last_label == self._silence:
            since_last = math.inf
        else:
            since_last = time_ms - self.last_time_ms
        fires = score > self.thresholds[top] and (top != self.last_label
                                                  or since_last > self.config.suppression_ms)
        if fires:
            self.last_label = top
            self.last_time_ms = float(time_ms)
        return SmoothedResult(time_ms, self.labels[top], score, fires, fires and not bool(self.ignore[top]))
