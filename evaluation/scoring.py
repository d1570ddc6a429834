"""Run the edge recognizer over a stream once, keep its per-hop raw scores, and re-run only the
pure posterior smoothing over them for any threshold / window (the threshold sweep and calibration).

The per-hop scores come from ``kws.edge.recognizer.Recognizer`` exactly as ``kws-listen`` computes
them (same frontend, ring buffer, hop and runtime), and the smoothing is
``kws.edge.smoothing.PosteriorSmoother``: what is measured here is what runs on the device.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.edge.audio import NO_SAMPLES, UNREADABLE
from kws.edge.errors import AudioError
from kws.edge.manifest import Manifest, SmoothingConfig
from kws.edge.recognizer import Recognizer, stream_time_ms
from kws.edge.smoothing import NO_LABEL, READY, PosteriorSmoother

from .streaming_metrics import Detection

STREAM_CHUNK_MS = 100.0


def stream_scores(model_path: Path, audio: np.ndarray, clf=None,
                  streaming: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(times_s (N,), scores (N, labels)) of every model run over the stream, one per hop, from the
    edge recognizer of ``model_path`` (a manifest or its folder: the default model; a .tflite: that
    one) fed in 100 ms chunks as a microphone would (with the streaming form of the model where the
    manifest lists one, unless ``streaming`` is False), then ``Recognizer.finish``'s
    silence: the last hops' times run up to one model window past the audio's end."""
    rec = Recognizer.from_manifest(model_path, keep_scores=True, streaming=streaming)
    chunk = int(rec.sample_rate * STREAM_CHUNK_MS / 1000)
    for i in range(0, len(audio), chunk):
        rec.process(audio[i:i + chunk])
    rec.finish()  # as kws-listen ends a file: the last second heard out, so a final word is decided on
    return rec.pop_scores()


@dataclass(frozen=True)
class WindowAverages:
    """The edge smoother's window averages over one recording's stored per-hop scores at one
    smoothing config, for the hops on which it decides (``PosteriorSmoother.queue_result`` READY).
    They depend on the window, never on the thresholds: a sweep over thresholds computes them once
    and replays only the decisions (``replay``)."""

    times_s: np.ndarray  # (n,) the hops' times, as stored
    times_ms: np.ndarray  # (n,) the stream times in ms the recognizer's smoother got
    averages: np.ndarray  # (n, labels) float64, each exactly the smoother's own average
    top: np.ndarray  # (n,) the top label of each average
    top_score: np.ndarray  # (n,) its average
    smoothing: SmoothingConfig


def window_averages(times: np.ndarray, scores: np.ndarray, manifest: Manifest,
                    smoothing: SmoothingConfig | None = None) -> WindowAverages:
    """``WindowAverages`` of stored per-hop scores (each hop at the very stream time in ms the
    recognizer's smoother got, so kws-listen fires the same)."""
    sm = smoothing or manifest.smoothing
    smoother = PosteriorSmoother.from_manifest(manifest, sm, {})
    kept, stamps, rows = [], [], []
    for i, (t, s) in enumerate(zip(times, scores)):
        time_ms = stream_time_ms(t, manifest.sample_rate)
        if smoother.queue_result(np.asarray(s).reshape(-1), time_ms) == READY:
            kept.append(i)
            stamps.append(time_ms)
            rows.append(smoother.window_average().copy())
    averages = np.array(rows, np.float64).reshape(len(rows), len(manifest.labels))
    top = averages.argmax(axis=1) if len(rows) else np.zeros(0, np.int64)
    return WindowAverages(times_s=np.asarray(times, np.float64)[kept], times_ms=np.array(stamps, np.float64),
                          averages=averages, top=top, top_score=averages[np.arange(len(rows)), top],
                          smoothing=sm)


def replay(avg: WindowAverages, manifest: Manifest, thresholds: dict[str, float] | None = None) -> list[Detection]:
    """The detections of the edge smoother on ``avg`` at ``thresholds`` (default: the manifest's),
    decided by ``PosteriorSmoother.decide_on`` itself. A hop changes the smoother's state only where
    it fires (its top label is a keyword over its threshold) or while a detection is held, so only
    those hops are decided on: the detections are those of every hop decided in turn."""
    smoother = PosteriorSmoother.from_manifest(manifest, avg.smoothing,
                                               manifest.thresholds if thresholds is None else thresholds)
    may_fire = np.flatnonzero(~smoother.ignore[avg.top] & (avg.top_score > smoother.thresholds[avg.top]))
    out: list[Detection] = []
    n, k = len(avg.times_ms), 0
    while k < len(may_fire):
        j = int(may_fire[k])
        while True:  # hop by hop from a hop that may fire for as long as a detection is held
            top = smoother.decide_on(avg.averages[j], avg.times_ms[j])
            if smoother.last_decision_fired:
                out.append(Detection(float(avg.times_s[j]), smoother.labels[top], float(smoother.last_score)))
            j += 1
            if j >= n or smoother.held_label == NO_LABEL:
                break
        k = int(np.searchsorted(may_fire, j))
    return out


def smooth(times: np.ndarray, scores: np.ndarray, manifest: Manifest,
           smoothing: SmoothingConfig | None = None, thresholds: dict[str, float] | None = None,
           averages: WindowAverages | None = None) -> list[Detection]:
    """Keyword detections of the edge smoother over stored per-hop scores: ``replay`` of their
    ``window_averages`` (pass ``averages`` where they were computed already, at ``smoothing``)."""
    if averages is None:
        averages = window_averages(times, scores, manifest, smoothing)
    return replay(averages, manifest, thresholds)


def with_window(smoothing: SmoothingConfig, window_ms: float) -> SmoothingConfig:
    return dataclasses.replace(smoothing, average_window_ms=float(window_ms))


def sweep(times, scores, manifest: Manifest, events, duration_s: float, thresholds: Sequence[float],
          smoothing: SmoothingConfig | None = None, averages: WindowAverages | None = None) -> list[dict]:
    """One streaming report per global threshold (every label at that threshold); ``averages``:
    the scores' ``window_averages`` at ``smoothing`` where they were computed already."""
    from .streaming_metrics import streaming_report

    keywords = [l for l in manifest.labels if l not in manifest.ignore_labels]
    if averages is None:
        averages = window_averages(times, scores, manifest, smoothing)
    rows = []
    for th in thresholds:
        dets = replay(averages, manifest, {l: float(th) for l in keywords})
        rep = streaming_report(dets, events, duration_s, keywords)
        rows.append({"threshold": round(float(th), 4), **rep})
    return rows


@dataclass(frozen=True)
class ScoredAudio:
    """Per-hop scores of one recording (a negatives file or a built stream) and its ground truth."""

    times: np.ndarray
    scores: np.ndarray
    duration_s: float
    events: tuple = ()
    source: str = ""


def keyword_free_hours(parts: Sequence[ScoredAudio]) -> float:
    """The recordings' keyword-free hours together, unrounded: the one figure every false-accept
    rate here is divided by, so calibration holds against its target the rate kws-eval reports."""
    from .streaming_metrics import SECONDS_PER_HOUR, keyword_free_seconds

    return sum(keyword_free_seconds(p.events, p.duration_s) for p in parts) / SECONDS_PER_HOUR


def negatives_false_accepts(parts: Sequence[ScoredAudio], manifest: Manifest, thresholds: dict[str, float],
                            smoothing: SmoothingConfig | None = None,
                            cache: dict[int, WindowAverages] | None = None) -> dict:
    """False accepts of the edge smoother over keyword-free recordings, each smoothed on its own
    (the smoother starts fresh per file) and counted by ``streaming_report``, as kws-eval counts
    them: {"false_accepts", "hours", "fa_per_hour", "per_label"}. ``cache``: the parts'
    ``window_averages`` at ``smoothing`` by index in ``parts``, filled as they are computed (one
    dict per smoothing config, for calls that differ only in their thresholds)."""
    from .streaming_metrics import streaming_report

    keywords = [l for l in manifest.labels if l not in manifest.ignore_labels]
    columns = [manifest.labels.index(l) for l in keywords]
    lowest = min(thresholds.get(l, manifest.threshold_for(l)) for l in keywords) if keywords else 1.0
    total, per_label = 0, dict.fromkeys(keywords, 0)
    for i, part in enumerate(parts):
        # an average never exceeds the peak: a recording whose keyword scores all stay at or under
        # every threshold cannot fire, so its smoothing is skipped (the result is the same)
        quiet = not len(part.scores) or float(part.scores[:, columns].max()) <= lowest
        if quiet and not part.events:
            dets = []
        else:
            averages = cache.get(i) if cache is not None else None
            if averages is None:
                averages = window_averages(part.times, part.scores, manifest, smoothing)
                if cache is not None:
                    cache[i] = averages
            dets = replay(averages, manifest, thresholds)
        rep = streaming_report(dets, list(part.events), part.duration_s, keywords)
        total += rep["false_accepts"]
        for label in keywords:
            per_label[label] += rep["per_label"][label]["false_accepts"]
    hours = keyword_free_hours(parts)
    return {"false_accepts": total, "hours": round(hours, 5),
            "fa_per_hour": round(total / hours, 4) if hours else None, "per_label": per_label}


def file_scores(model_path: Path, path: str | Path, streaming: bool = True) -> ScoredAudio:
    """``stream_scores`` for an audio file of any length: read in blocks, resampled to the model
    rate, fed to a fresh edge recognizer in 100 ms chunks (bounded memory)."""
    from kws.edge.audio import stream_audio

    rec = Recognizer.from_manifest(model_path, keep_scores=True, streaming=streaming)
    chunk = int(rec.sample_rate * STREAM_CHUNK_MS / 1000)
    total = 0
    for block in stream_audio(path, rec.sample_rate):
        total += len(block)
        for i in range(0, len(block), chunk):
            rec.process(block[i:i + chunk])
    if total == 0:  # as every other reader says it: hours of nothing would pass for keyword-free audio
        raise AudioError(f"{path}: {UNREADABLE} ({NO_SAMPLES})")
    rec.finish()  # a short negative clip's words are scored to the end, as kws-listen scores a file
    times, scores = rec.pop_scores()
    return ScoredAudio(times=times, scores=scores, duration_s=total / rec.sample_rate, source=str(path))
