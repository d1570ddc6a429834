"""The posterior smoother: RecognizeCommands rules (TFLite Micro variant) on hand-made score sequences."""
from __future__ import annotations

import numpy as np
import pytest

from kws.edge.manifest import SmoothingConfig
from kws.edge.smoothing import PosteriorSmoother

LABELS = ("_silence_", "_unknown_", "yes", "no")
HOP_MS = 40


def one_hot(label: str, p: float = 0.95) -> np.ndarray:
    s = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1))
    s[LABELS.index(label)] = p
    return s


def run(smoother: PosteriorSmoother, labels_per_hop: list[str], p: float = 0.95, start_ms: int = 1000):
    """Feed one result per hop; return [(time_ms, label)] of detections."""
    out = []
    for i, label in enumerate(labels_per_hop):
        t = start_ms + i * HOP_MS
        res = smoother.update(one_hot(label, p), t)
        if res is not None and res.is_detection:
            out.append((t, res.label))
    return out


def hops(label: str, ms: int) -> list[str]:
    return [label] * (ms // HOP_MS)


def test_a_sustained_keyword_fires_once_after_a_minimum_window():
    sm = PosteriorSmoother(LABELS, SmoothingConfig(average_window_ms=500, minimum_count=3, suppression_ms=1500))
    dets = run(sm, hops("_silence_", 400) + hops("yes", 800) + hops("_silence_", 800))
    assert [d[1] for d in dets] == ["yes"]
    # it needs the window's average above 0.7: with 0.95 for yes and ~0.017 for silence per hop,
    # 10 of the 13 results in 500 ms must be "yes" (the tenth "yes" hop, at 1400 + 9 * 40 ms)
    assert dets[0][0] == 1400 + 9 * HOP_MS


def test_no_decision_before_minimum_count_or_a_quarter_window():
    cfg = SmoothingConfig(average_window_ms=500, minimum_count=3)
    sm = PosteriorSmoother(LABELS, cfg)
    first = sm.update(one_hot("yes"), 0)
    second = sm.update(one_hot("yes"), 40)
    assert (first.label, second.label) == ("", "")  # fewer than 3 results
    third = sm.update(one_hot("yes"), 80)
    assert third.label == ""  # 3 results but they span 80 ms < 125 ms
    fourth = sm.update(one_hot("yes"), 160)
    assert fourth.is_detection and fourth.label == "yes"


def test_the_same_word_twice_with_silence_between_fires_twice():
    # the TFLite Micro re-fire rule: TF's C++ RecognizeCommands would drop the second "yes"
    sm = PosteriorSmoother(LABELS, SmoothingConfig(suppression_ms=1500))
    seq = hops("_silence_", 400) + hops("yes", 600) + hops("_silence_", 600) + hops("yes", 600)
    assert [d[1] for d in run(sm, seq)] == ["yes", "yes"]


def test_a_held_word_fires_again_only_after_the_suppression_time():
    sm = PosteriorSmoother(LABELS, SmoothingConfig(suppression_ms=1000))
    dets = run(sm, hops("yes", 3000))
    times = [t for t, _ in dets]
    assert len(dets) == 3
    assert all(b - a > 1000 for a, b in zip(times, times[1:]))
    assert all(b - a <= 1000 + HOP_MS for a, b in zip(times, times[1:]))


def test_a_different_word_fires_without_waiting_for_suppression():
    sm = PosteriorSmoother(LABELS, SmoothingConfig(suppression_ms=5000))
    assert [d[1] for d in run(sm, hops("yes", 600) + hops("no", 600))] == ["yes", "no"]


def test_background_labels_never_report_but_below_threshold_nothing_fires():
    sm = PosteriorSmoother(LABELS, SmoothingConfig())
    assert run(sm, hops("_unknown_", 2000)) == []
    sm.reset()
    assert run(sm, hops("yes", 2000), p=0.6) == []  # average 0.6 < 0.7


def test_per_label_thresholds_replace_the_default():
    strict = PosteriorSmoother(LABELS, SmoothingConfig(detection_threshold=0.5), thresholds={"yes": 0.9})
    assert run(strict, hops("yes", 1000), p=0.8) == []
    strict.reset()
    assert [d[1] for d in run(strict, hops("no", 1000), p=0.8)] == ["no"]
    assert strict.threshold_for("yes") == 0.9 and strict.threshold_for("no") == 0.5
    with pytest.raises(ValueError, match="unknown labels: maybe"):
        PosteriorSmoother(LABELS, thresholds={"maybe": 0.5})


def test_out_of_order_results_are_dropped_and_reset_forgets_everything():
    sm = PosteriorSmoother(LABELS, SmoothingConfig())
    assert sm.update(one_hot("yes"), 1000) is not None
    assert sm.update(one_hot("yes"), 960) is None
    run(sm, hops("yes", 800), start_ms=1040)
    assert sm.last_label == LABELS.index("yes")
    sm.reset()
    assert sm.last_label == -1
    assert [d[1] for d in run(sm, hops("yes", 800), start_ms=0)] == ["yes"]


def test_old_results_leave_the_window():
    sm = PosteriorSmoother(LABELS, SmoothingConfig(average_window_ms=500, minimum_count=3))
    run(sm, hops("yes", 400))
    # 2 s later only the new results are in the window: its average is all "no"
    res = None
    for i in range(13):
        res = sm.update(one_hot("no"), 3400 + i * HOP_MS)
    assert res.label == "no" and res.score == pytest.approx(0.95)


def test_scores_of_the_wrong_length_are_an_error():
    sm = PosteriorSmoother(LABELS)
    with pytest.raises(ValueError, match="expected 4 scores, got 3"):
        sm.update([0.1, 0.2, 0.7], 0)
