"""kws-eval's "best any thresholds could do on this stream" (evaluation/oracle.py): each keyword's
threshold just above its loudest false accept on the stream itself, and the words still found."""
import numpy as np

from kws.evaluation.oracle import best_over_windows, best_possible
from kws.evaluation.stream import Event

LABELS = ("_silence_", "_unknown_", "a", "b")
HOP_S = 0.1


def _stream(peaks_a, false_a, peaks_b):
    """100 s of _unknown_ with 'a' words (ends at 10, 20, ... s) and 'b' words (ends at 15, 25, ...)
    scoring the given peaks for 4 hops (a 300 ms window holds 4), and false 'a' episodes at 75, 85, 95 s."""
    times = np.arange(1, 1001) * HOP_S
    s = np.zeros((len(times), 4))
    s[:, 1] = 1.0
    events = []
    for i, p in enumerate(peaks_a):
        end = 10.0 * (i + 1)
        s[int(end / HOP_S) - 4:int(end / HOP_S), [2, 1]] = p, 1 - p
        events.append(Event("a", end - 0.5, end))
    for i, p in enumerate(peaks_b):
        end = 10.0 * (i + 1) + 5
        s[int(end / HOP_S) - 4:int(end / HOP_S), [3, 1]] = p, 1 - p
        events.append(Event("b", end - 0.5, end))
    for t, p in zip((75.0, 85.0, 95.0), false_a):
        s[int(t / HOP_S) - 4:int(t / HOP_S), [2, 1]] = p, 1 - p
    events.append(Event("_unknown_", 84.5, 85.0))
    return times, s, sorted(events, key=lambda e: e.end_s)


def test_each_keyword_is_held_just_above_its_loudest_false_accept():
    times, s, events = _stream([0.95, 0.9, 0.7, 0.6, 0.5], [0.3, 0.65, 0.2], [0.8, 0.4])
    best = best_possible(times, s, LABELS, ("a", "b"), events, 300.0, 1000.0)
    # 'a': its loudest false accept (0.65 at 85 s) keeps 0.95, 0.9 and 0.7; 'b' has none, so both count
    assert best["per_label"]["a"] == {"threshold": 0.65, "found": 3, "keywords": 5}
    assert best["per_label"]["b"] == {"threshold": 0.0, "found": 2, "keywords": 2}
    assert best["recall_at_zero_fa"] == round(5 / 7, 4)


def test_a_longer_window_dilutes_short_peaks_and_the_best_window_is_reported():
    times, s, events = _stream([0.95, 0.9], [0.5], [0.8])
    short = best_possible(times, s, LABELS, ("a", "b"), events, 300.0, 1000.0)
    long = best_possible(times, s, LABELS, ("a", "b"), events, 1000.0, 1000.0)
    assert short["recall_at_zero_fa"] == 1.0
    # 0.3 s of score averaged over 1 s: words and false accepts alike drop to about a third
    assert long["per_label"]["a"]["threshold"] < 0.2
    assert best_over_windows(times, s, LABELS, ("a", "b"), events, (1000.0, 300.0), 1000.0)["average_window_ms"] == 300.0
