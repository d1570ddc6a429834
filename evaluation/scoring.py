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
from kws.edge.smoothing import PosteriorSmoother

from .streaming_metrics import Detection

STREAM_CHUNK_MS = 100.0


def stream_scores(manifest_path: Path, audio: np.ndarray, clf=None,
                  streaming: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(times_s (N,), scores (N, labels)) of every model run over the stream, one per hop, from the
    edge recognizer fed in 100 ms chunks as a microphone would (with the streaming form of the model
    where the manifest lists one, unless ``streaming`` is False), then ``Recognizer.finish``'s
    silence: the last hops' times run up to one model window past the audio's end."""
    rec = Recognizer.from_manifest(manifest_path, keep_scores=True, streaming=streaming)
    chunk = int(rec.sample_rate * STREAM_CHUNK_MS / 1000)
    for i in range(0, len(audio), chunk):
        rec.process(audio[i:i + chunk])
    rec.finish()  # as kws-listen ends a file: the last second heard out, so a final word is decided on
    return rec.pop_scores()


def smooth(times: np.ndarray, scores: np.ndarray, manifest: Manifest,
           smoothing: SmoothingConfig | None = None, thresholds: dict[str, float] | None = None) -> list[Detection]:
    """Keyword detections of the edge smoother over stored per-hop scores (each hop at the very stream
    time in ms the recognizer's smoother got, so kws-listen fires the same)."""
    smoother = PosteriorSmoother.from_manifest(manifest, smoothing or manifest.smoothing,
                                               manifest.thresholds if thresholds is None else thresholds)
    out = []
    for t, s in zip(times, scores):
        res = smoother.update(s, stream_time_ms(t, manifest.sample_rate))
        if res is not None and res.is_detection:
            out.append(Detection(float(t), res.label, float(res.score)))
    return out


def with_window(smoothing: SmoothingConfig, window_ms: float) -> SmoothingConfig:
    return dataclasses.replace(smoothing, average_window_ms=float(window_ms))


def sweep(times, scores, manifest: Manifest, events, duration_s: float, thresholds: Sequence[float],
          smoothing: SmoothingConfig | None = None) -> list[dict]:
    """One streaming report per global threshold (every label at that threshold)."""
    from .streaming_metrics import streaming_report

    keywords = [l for l in manifest.labels if l not in manifest.ignore_labels]
    rows = []
    for th in thresholds:
        dets = smooth(times, scores, manifest, smoothing, {l: float(th) for l in keywords})
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


def negatives_false_accepts(parts: Sequence[ScoredAudio], manifest: Manifest, thresholds: dict[str, float],
                            smoothing: SmoothingConfig | None = None) -> dict:
    """False accepts of the edge smoother over keyword-free recordings, each smoothed on its own
    (the smoother starts fresh per file) and counted by ``streaming_report``, as kws-eval counts
    them: {"false_accepts", "hours", "fa_per_hour", "per_label"}."""
    from .streaming_metrics import SECONDS_PER_HOUR, streaming_report

    keywords = [l for l in manifest.labels if l not in manifest.ignore_labels]
    columns = [manifest.labels.index(l) for l in keywords]
    lowest = min(thresholds.get(l, manifest.threshold_for(l)) for l in keywords) if keywords else 1.0
    total, per_label, seconds = 0, dict.fromkeys(keywords, 0), 0.0
    for part in parts:
        # an average never exceeds the peak: a recording whose keyword scores all stay at or under
        # every threshold cannot fire, so its smoothing is skipped (the result is the same)
        quiet = not len(part.scores) or float(part.scores[:, columns].max()) <= lowest
        dets = [] if quiet and not part.events else smooth(part.times, part.scores, manifest, smoothing, thresholds)
        rep = streaming_report(dets, list(part.events), part.duration_s, keywords)
        total += rep["false_accepts"]
        seconds += rep["keyword_free_hours"] * SECONDS_PER_HOUR
        for label in keywords:
            per_label[label] += rep["per_label"][label]["false_accepts"]
    hours = seconds / SECONDS_PER_HOUR
    return {"false_accepts": total, "hours": round(hours, 5),
            "fa_per_hour": round(total / hours, 4) if hours else None, "per_label": per_label}


def file_scores(manifest_path: Path, path: str | Path, streaming: bool = True) -> ScoredAudio:
    """``stream_scores`` for an audio file of any length: read in blocks, resampled to the model
    rate, fed to a fresh edge recognizer in 100 ms chunks (bounded memory)."""
    from kws.edge.audio import stream_audio

    rec = Recognizer.from_manifest(manifest_path, keep_scores=True, streaming=streaming)
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
