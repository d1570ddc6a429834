"""The posterior smoother on hand-made score sequences: averaging in time, the release rule (one
spoken word is one detection), and the same detections at every hop."""
from __future__ import annotations

import numpy as np
import pytest

from kws.edge.manifest import SmoothingConfig, upgrade_smoothing_keys
from kws.edge.smoothing import NO_LABEL, PosteriorSmoother, never_decides

LABELS = ("_silence_", "_unknown_", "yes", "no")
HOP_MS = 40
RAMP_MS = 80  # how fast a synthetic keyword score rises and falls


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


def bumps_score(t_ms: float, bumps: list[tuple[str, float, float]], peak: float = 0.95) -> np.ndarray:
    """Synthetic model output at stream time t: each (label, from_ms, to_ms) raises that label to
    ``peak`` with RAMP_MS linear edges; the rest of the probability goes to _silence_."""
    s = np.zeros(len(LABELS))
    for label, start, end in bumps:
        rise = np.clip((t_ms - start) / RAMP_MS, 0.0, 1.0)
        fall = np.clip((end - t_ms) / RAMP_MS, 0.0, 1.0)
        s[LABELS.index(label)] = max(s[LABELS.index(label)], peak * min(rise, fall))
    s[1] = 0.02
    s[0] = max(0.0, 1.0 - s.sum())
    return s / s.sum()


def detect(bumps, hop_ms: float, until_ms: float, config: SmoothingConfig | None = None,
           start_ms: float = 1000.0) -> list[tuple[float, str]]:
    """Detections of the smoother fed the synthetic scores every hop_ms from start_ms (the first
    whole clip) to until_ms."""
    sm = PosteriorSmoother(LABELS, config or SmoothingConfig(hop_ms=hop_ms))
    out = []
    for t in np.arange(start_ms, until_ms, hop_ms):
        res = sm.update(bumps_score(float(t), bumps), float(t))
        if res.is_detection:
            out.append((float(t), res.label))
    return out


# --- averaging in time ---------------------------------------------------------------------------

def test_a_sustained_keyword_fires_once_after_a_minimum_window():
    sm = PosteriorSmoother(LABELS, SmoothingConfig(average_window_ms=500, minimum_span_ms=80))
    dets = run(sm, hops("_silence_", 400) + hops("yes", 800) + hops("_silence_", 800))
    assert [d[1] for d in dets] == ["yes"]
    # it needs the window's average above 0.7: with 0.95 for yes and ~0.017 for silence per hop,
    # 10 of the 13 results in 500 ms must be "yes" (the tenth "yes" hop, at 1400 + 9 * 40 ms)
    assert dets[0][0] == 1400 + 9 * HOP_MS


def test_no_decision_before_the_minimum_span_or_a_quarter_window():
    sm = PosteriorSmoother(LABELS, SmoothingConfig(average_window_ms=500, minimum_span_ms=80))
    assert [sm.update(one_hot("yes"), t).label for t in (0, 40, 80)] == ["", "", ""]  # span < 125 ms
    fourth = sm.update(one_hot("yes"), 160)
    assert fourth.is_detection and fourth.label == "yes" and fourth.score == pytest.approx(0.95)
    with pytest.raises(ValueError, match="minimum_span_ms .300. must not exceed average_window_ms .100."):
        SmoothingConfig(average_window_ms=100, minimum_span_ms=300)


def test_minimum_count_of_old_manifests_means_the_same_at_their_hop():
    assert upgrade_smoothing_keys({"minimum_count": 3, "hop_ms": 40}) == {"minimum_span_ms": 80.0, "hop_ms": 40}
    assert upgrade_smoothing_keys({"minimum_count": 5, "hop_ms": 10})["minimum_span_ms"] == 40.0
    assert SmoothingConfig.from_dict({"minimum_count": 3}).minimum_span_ms == 80.0  # default hop 40
    with pytest.raises(ValueError, match="not both"):
        SmoothingConfig.from_dict({"minimum_count": 3, "minimum_span_ms": 80})
    with pytest.raises(ValueError, match="minimum_count must be a whole number >= 1"):
        SmoothingConfig.from_dict({"minimum_count": 0})
    # the count rule itself: a short window, so only the count (4 results at 40 ms) holds back
    cfg = SmoothingConfig.from_dict({"minimum_count": 4, "hop_ms": 40, "average_window_ms": 200})
    sm = PosteriorSmoother(LABELS, cfg)
    labels = [sm.update(one_hot("yes"), t).label for t in range(0, 160, 40)]
    assert labels == ["", "", "", "yes"]


def test_old_results_leave_the_window():
    sm = PosteriorSmoother(LABELS, SmoothingConfig(average_window_ms=500))
    run(sm, hops("yes", 400))
    # 2 s later only the new results are in the window: its average is all "no"
    res = None
    for i in range(13):
        res = sm.update(one_hot("no"), 3400 + i * HOP_MS)
    assert res.label == "no" and res.score == pytest.approx(0.95)


@pytest.mark.parametrize("hop_ms", [10, 20, 30, 40])
def test_the_same_audio_gives_the_same_detections_at_every_hop(hop_ms):
    """Every smoothing parameter is a time: the detections of one score curve sampled every 10, 20,
    30 or 40 ms agree, their times within one hop of the 10 ms run's."""
    bumps = [("yes", 2000, 2500), ("no", 5000, 5900), ("yes", 8000, 10500),  # a 2.5 s word
             ("no", 13000, 13500), ("no", 14200, 14700),  # a word said twice, 1.2 s apart
             ("yes", 17000, 17300)]  # too short to lift the 500 ms average over 0.7
    reference = detect(bumps, 10, 20000)
    assert [label for _, label in reference] == ["yes", "no", "yes", "no", "no"]
    got = detect(bumps, hop_ms, 20000)
    assert [label for _, label in got] == [label for _, label in reference]
    for (t, _), (t_ref, _) in zip(got, reference):
        assert abs(t - t_ref) <= hop_ms


def test_a_hop_that_does_not_divide_the_window_still_decides_in_time():
    # 30 ms hops: the 80 ms minimum span needs 3 hops (90 ms), the 125 ms quarter window 5 (150 ms)
    sm = PosteriorSmoother(LABELS, SmoothingConfig(hop_ms=30))
    labels = [sm.update(one_hot("yes"), t).label for t in range(0, 180, 30)]
    assert labels == ["", "", "", "", "", "yes"]


# --- one spoken word, one detection ----------------------------------------------------------------

@pytest.mark.parametrize("word_ms", [600, 2000, 4000])
def test_a_long_word_heard_in_successive_windows_counts_once(word_ms):
    assert [label for _, label in detect([("yes", 2000, 2000 + word_ms)], HOP_MS, 9000)] == ["yes"]


def test_a_lower_release_level_rides_out_a_dip_in_a_long_word():
    # the score of a 3 s word drops for 200 ms in its middle: the 500 ms average dips under the
    # threshold, but not under half of it for 200 ms, so a model with release_fraction 0.5 holds on
    bumps = [("yes", 2000, 3400), ("yes", 3600, 5000)]
    cfg = SmoothingConfig(release_fraction=0.5, release_ms=200)
    assert [label for _, label in detect(bumps, HOP_MS, 8000, cfg)] == ["yes"]


def test_two_real_repetitions_are_both_reported():
    for gap_ms in (1200, 1500, 2500):
        bumps = [("no", 2000, 2500), ("no", 2000 + gap_ms, 2500 + gap_ms)]
        dets = detect(bumps, HOP_MS, 9000)
        assert [label for _, label in dets] == ["no", "no"], gap_ms
        assert dets[1][0] - dets[0][0] == pytest.approx(gap_ms, abs=HOP_MS)


def test_a_word_repeated_without_a_pause_is_one_detection():
    # 0.6 s apart with their scores touching: to the model one long word
    bumps = [("no", 2000, 2600), ("no", 2600, 3200)]
    assert [label for _, label in detect(bumps, HOP_MS, 8000)] == ["no"]


def test_the_refractory_time_keeps_a_label_from_firing_twice_soon():
    # released after 1.2 s, but the label's own refractory time (2 s) holds it back
    bumps = [("no", 2000, 2500), ("no", 3200, 3700)]
    cfg = SmoothingConfig(suppression_ms=2000)
    assert [label for _, label in detect(bumps, HOP_MS, 9000, cfg)] == ["no"]
    # a different label is not subject to it
    bumps = [("no", 2000, 2500), ("yes", 3200, 3700)]
    assert [label for _, label in detect(bumps, HOP_MS, 9000, cfg)] == ["no", "yes"]


def test_a_different_word_straight_after_waits_for_the_release_and_is_not_lost():
    sm = PosteriorSmoother(LABELS, SmoothingConfig(suppression_ms=5000))
    dets = run(sm, hops("yes", 600) + hops("no", 1000))
    assert [d[1] for d in dets] == ["yes", "no"]
    # "yes" averages under 0.7 once 4 of the 13 hops are "no" and is released 100 ms later, before
    # "no" averages over 0.7 (10 of 13 hops): "no" comes when it would have come alone
    assert dets[1][0] == 1000 + 600 + (10 - 1) * HOP_MS
    # released only under 0.35 (9 of 13 hops "no") held for 200 ms: "no" waits for that
    sm = PosteriorSmoother(LABELS, SmoothingConfig(release_fraction=0.5, release_ms=200))
    dets = run(sm, hops("yes", 600) + hops("no", 1000))
    assert [d[1] for d in dets] == ["yes", "no"]
    assert dets[1][0] == 1000 + 600 + (9 - 1) * HOP_MS + 200


def test_the_hold_and_the_last_detection_are_visible_and_reset():
    sm = PosteriorSmoother(LABELS, SmoothingConfig())
    run(sm, hops("yes", 800))
    assert sm.held_label == sm.last_label == LABELS.index("yes")
    run(sm, hops("_silence_", 800), start_ms=1800)
    assert sm.held_label == NO_LABEL and sm.last_label == LABELS.index("yes")
    sm.reset()
    assert sm.held_label == sm.last_label == NO_LABEL
    assert [d[1] for d in run(sm, hops("yes", 800), start_ms=0)] == ["yes"]


def test_background_labels_never_report_nor_hold():
    sm = PosteriorSmoother(LABELS, SmoothingConfig())
    assert run(sm, hops("_unknown_", 2000)) == []
    assert sm.held_label == NO_LABEL
    sm.reset()
    assert run(sm, hops("yes", 2000), p=0.6) == []  # average 0.6 < 0.7


# --- thresholds, input checks -------------------------------------------------------------------------

def test_per_label_thresholds_replace_the_default_and_scale_the_release():
    strict = PosteriorSmoother(LABELS, SmoothingConfig(detection_threshold=0.5, release_fraction=0.5),
                               thresholds={"yes": 0.9})
    assert run(strict, hops("yes", 1000), p=0.8) == []
    strict.reset()
    assert [d[1] for d in run(strict, hops("no", 1000), p=0.8)] == ["no"]
    assert strict.threshold_for("yes") == 0.9 and strict.threshold_for("no") == 0.5
    assert strict.release_levels.tolist() == [0.25, 0.25, 0.45, 0.25]
    with pytest.raises(ValueError, match="unknown labels: maybe"):
        PosteriorSmoother(LABELS, thresholds={"maybe": 0.5})


@pytest.mark.parametrize("field, value", [("release_fraction", 0.0), ("release_fraction", 1.5),
                                          ("release_ms", -1.0), ("minimum_span_ms", -1.0)])
def test_bad_release_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        SmoothingConfig(**{field: value})


def test_out_of_order_results_are_dropped():
    sm = PosteriorSmoother(LABELS, SmoothingConfig())
    assert sm.update(one_hot("yes"), 1000) is not None
    assert sm.update(one_hot("yes"), 960) is None


def test_the_queue_grows_past_its_first_size_and_averages_the_same():
    # results far denser than the configured hop: more than the preallocated rows in the window
    sm = PosteriorSmoother(LABELS, SmoothingConfig(hop_ms=40, average_window_ms=500))
    for i in range(100):
        res = sm.update(one_hot("yes" if i % 2 else "no"), i * 5.0)
    assert res.score == pytest.approx((0.95 + 0.05 / 3) / 2)


def test_scores_of_the_wrong_length_are_an_error():
    sm = PosteriorSmoother(LABELS)
    with pytest.raises(ValueError, match="expected 4 scores, got 3"):
        sm.update([0.1, 0.2, 0.7], 0)


@pytest.mark.parametrize("hop_ms", [10, 20, 50])
def test_times_that_went_through_seconds_give_the_same_averages_and_detections(hop_ms):
    # kws-eval keeps hop times in seconds and smooths them back in ms (1.03 s -> 1030.0000000000002):
    # the result exactly one window old stays in the average, and a label exactly suppression_ms
    # after its last detection stays quiet, as in kws-listen, which counts the ms exactly
    rng = np.random.default_rng(4)
    config = SmoothingConfig(hop_ms=hop_ms, detection_threshold=0.3, release_ms=0, suppression_ms=500)
    exact, via_seconds = PosteriorSmoother(LABELS, config), PosteriorSmoother(LABELS, config)
    fired = 0
    for k in range(3000):
        t = 1000 + k * hop_ms
        scores = rng.dirichlet(np.full(len(LABELS), 0.3))
        a, b = exact.update(scores, t), via_seconds.update(scores, (t / 1000.0) * 1000.0)
        assert (a.label, a.score, a.is_detection) == (b.label, pytest.approx(a.score, abs=1e-12), b.is_detection), t
        fired += a.is_detection
    assert fired > 10


@pytest.mark.parametrize("hop_ms, window_ms, span_ms, decides", [
    (40, 500, 80, True), (500, 500, 80, True), (300, 500, 80, True), (501, 500, 80, False),
    (1000, 500, 80, False), (300, 500, 480, False), (40, 500, 480, True), (30, 500, 480, True),
])
def test_a_hop_whose_results_never_span_a_decision_is_named(hop_ms, window_ms, span_ms, decides):
    config = SmoothingConfig(hop_ms=hop_ms, average_window_ms=window_ms, minimum_span_ms=span_ms)
    assert (never_decides(config) is None) == decides
    # what never_decides says is what the smoother does over a minute of results
    sm = PosteriorSmoother(LABELS, config)
    results = [sm.update(one_hot("yes"), 1000.0 + k * hop_ms) for k in range(int(60000 / hop_ms))]
    assert any(r.label for r in results) == decides


def _reference_detections(times_s, scores, manifest, smoothing, thresholds):
    """Every hop through ``PosteriorSmoother.update`` in turn: what the recognizer decides live."""
    from kws.edge.recognizer import stream_time_ms

    smoother = PosteriorSmoother.from_manifest(manifest, smoothing, thresholds)
    out = []
    for t, s in zip(times_s, scores):
        res = smoother.update(s, stream_time_ms(t, manifest.sample_rate))
        if res is not None and res.is_detection:
            out.append((float(t), res.label, float(res.score)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_offline_replay_decides_exactly_as_the_smoother_fed_every_hop(seed):
    """kws-eval's sweep and calibration compute each window's averages once and replay only the hops
    that can change the smoother's state; its detections must be the live smoother's, to the bit."""
    from kws.edge.frontend import FrontendConfig
    from kws.edge.manifest import Manifest
    from kws.evaluation.scoring import replay, smooth, window_averages

    rng = np.random.default_rng(seed)
    labels = ("_silence_", "_unknown_", "a", "b", "c")
    manifest = Manifest(labels=labels, frontend=FrontendConfig())
    hop_s = (0.02, 0.03, 0.04, 0.08, 0.1, 0.05)[seed]
    times = np.round(np.arange(1.0, 240.0, hop_s), 6)
    if seed % 2:  # a gap (a file boundary), and results out of order, which the smoother drops
        times[len(times) // 3:] += 3.7
        times[len(times) // 2] = times[len(times) // 2 - 5]
    raw = rng.random((len(times), len(labels))) ** 4  # mostly low scores, with bursts below
    for start in rng.integers(0, len(times) - 60, 120):
        word = rng.integers(2, len(labels))
        length = int(rng.integers(5, 40))
        raw[start:start + length, word] += rng.uniform(2, 30)
    scores = raw / raw.sum(axis=1, keepdims=True)
    smoothing = SmoothingConfig(average_window_ms=float(rng.choice([300, 500, 800])), hop_ms=hop_s * 1000,
                                suppression_ms=float(rng.choice([0, 500, 1500])),
                                release_fraction=float(rng.choice([0.5, 1.0])), release_ms=float(rng.choice([0, 200])),
                                minimum_span_ms=80.0)
    averages = window_averages(times, scores, manifest, smoothing)
    seen = 0
    for th in (0.3, 0.5, 0.62, 0.8, 0.95):
        thresholds = {"a": th, "b": min(0.99, th + 0.1), "c": max(0.05, th - 0.2)}
        expected = _reference_detections(times, scores, manifest, smoothing, thresholds)
        got = [(d.time_s, d.label, d.score) for d in replay(averages, manifest, thresholds)]
        assert got == expected
        assert [(d.time_s, d.label, d.score) for d in smooth(times, scores, manifest, smoothing, thresholds)] == expected
        seen += len(expected)
    assert seen > 50  # the streams hold detections at every threshold tried, held ones and released ones
