"""Run a model over a stream once, keep its per-hop raw scores, and re-run only the pure
posterior smoothing over them for any threshold / window (the threshold sweep and calibration).

The per-hop scores come from the edge Recognizer (``kws.edge.recognizer``) exactly as
``kws-listen`` computes them, and the smoothing from ``kws.edge.smoothing``. Where those modules
are not in this install yet, an equivalent local path is used (frontend frames -> model every
hop; RecognizeCommands with TFLite Micro semantics) and ``EDGE_PATH`` says so.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.edge.frontend import Frontend
from kws.edge.manifest import SILENCE_LABEL, Manifest, SmoothingConfig, load_manifest

from .streaming_metrics import Detection

STREAM_CHUNK_MS = 100.0


def edge_available() -> bool:
    try:
        import kws.edge.recognizer  # noqa: F401
        import kws.edge.smoothing  # noqa: F401
    except ImportError:
        return False
    return True


def stream_scores(manifest_path: Path, audio: np.ndarray, clf=None) -> tuple[np.ndarray, np.ndarray]:
    """(times_s (N,), scores (N, labels)) of every model run over the stream, one per hop."""
    if edge_available():
        return _edge_scores(manifest_path, audio)
    from .models import load_classifier

    clf = clf or load_classifier(manifest_path)
    return _local_scores(clf, load_manifest(manifest_path).smoothing.hop_ms, audio)


def _edge_scores(manifest_path: Path, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from kws.edge.recognizer import Recognizer

    rec = Recognizer.from_manifest(manifest_path)
    sr = rec.manifest.sample_rate if hasattr(rec, "manifest") else load_manifest(manifest_path).sample_rate
    chunk = int(sr * STREAM_CHUNK_MS / 1000)
    times, scores = [], []
    for i in range(0, len(audio), chunk):
        rec.process(audio[i:i + chunk])
        for t, s in _drain_raw(rec):
            times.append(t)
            scores.append(s)
    return np.asarray(times, np.float64), np.asarray(scores, np.float32).reshape(len(times), -1)


def _drain_raw(rec):
    """Per-hop raw scores the recognizer computed since the last call, as (time_s, scores)."""
    raw = rec.pop_raw_scores() if hasattr(rec, "pop_raw_scores") else []
    for item in raw:
        if isinstance(item, tuple):
            yield float(item[0]), np.asarray(item[1])
        else:
            yield float(item.time_s), np.asarray(item.scores)


def _local_scores(clf, hop_ms: float, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cfg = clf.frontend
    feats = Frontend(cfg).features(audio)
    hop = int(round(cfg.sample_rate * hop_ms / 1000))
    nf = cfg.num_frames
    times, windows = [], []
    for end in range(hop, len(audio) + 1, hop):
        k = (end - cfg.window_samples) // cfg.stride_samples  # last complete frame
        if k < nf - 1:
            continue
        windows.append(feats[k - nf + 1:k + 1])
        times.append(end / cfg.sample_rate)
    scores = clf.predict(np.stack(windows)) if windows else np.zeros((0, len(clf.labels)), np.float32)
    return np.asarray(times), scores


def smooth(times: np.ndarray, scores: np.ndarray, manifest: Manifest,
           smoothing: SmoothingConfig | None = None, thresholds: dict[str, float] | None = None) -> list[Detection]:
    """Keyword detections of the pure smoothing over stored per-hop scores."""
    smoothing = smoothing or manifest.smoothing
    thresholds = manifest.thresholds if thresholds is None else thresholds
    if edge_available():
        return _edge_smooth(times, scores, manifest, smoothing, thresholds)
    return _local_smooth(times, scores, list(manifest.labels), smoothing, thresholds, manifest.ignore_labels)


def _edge_smooth(times, scores, manifest, smoothing, thresholds) -> list[Detection]:
    from kws.edge import smoothing as sm

    m = manifest.with_updates(smoothing=smoothing, thresholds=dict(thresholds))
    smoother = sm.PosteriorSmoother.from_manifest(m) if hasattr(sm, "PosteriorSmoother") else None
    out = []
    for t, s in zip(times, scores):
        res = smoother.update(s, t * 1000.0)
        if res is not None and getattr(res, "is_new_command", True) and res.label not in manifest.ignore_labels:
            out.append(Detection(float(t), res.label, float(res.score)))
    return out


def _local_smooth(times, scores, labels, cfg: SmoothingConfig, thresholds, ignore) -> list[Detection]:
    """RecognizeCommands with per-label thresholds; fires on a new label OR after suppression."""
    window = deque()
    min_span = cfg.average_window_ms / 4.0
    th = np.array([thresholds.get(l, cfg.detection_threshold) for l in labels])
    prev_label, prev_time = SILENCE_LABEL, -np.inf
    acc = np.zeros(len(labels), np.float64)
    out = []
    for t, s in zip(times, scores):
        now = t * 1000.0
        window.append((now, s))
        acc += s
        while window[0][0] < now - cfg.average_window_ms:
            acc -= window.popleft()[1]
        if len(window) < cfg.minimum_count or now - window[0][0] < min_span:
            continue
        avg = acc / len(window)
        top = int(np.argmax(avg))
        label = labels[top]
        since = np.inf if prev_label == SILENCE_LABEL else now - prev_time
        if avg[top] > th[top] and (label != prev_label or since > cfg.suppression_ms):
            prev_label, prev_time = label, now
            if label not in ignore:
                out.append(Detection(float(t), label, float(avg[top])))
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
