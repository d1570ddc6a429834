"""The streaming recognizer: audio chunks in, detections out.

Caller-driven: ``process(chunk)`` takes any number of samples (int16 or float) at the model's rate.
Audio is consumed hop by hop: the new samples go through the streaming frontend (only new feature
frames are computed) into a ring of the last clip's frames; at every hop boundary the model scores
that clip and the smoother decides. A hop boundary at stream sample ``t`` scores exactly the audio
``[t - clip, t)``, so the result does not depend on chunk sizes, and a stream that is one clip long
scores the same as classifying that clip whole. The first score comes once a full clip has arrived.

When the manifest lists a streaming form of the model (``streaming``) and the hop is a multiple of
its step, the step model runs instead: every ``step_frames`` new frames go in with the state it
keeps, and the score at a hop boundary is the step model's score of the window ending there (the
same window as above). ``form`` says which form runs and ``form_note`` why the window model runs.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from .audio import INT16_SCALE
from .errors import KwsError, ManifestError
from .frontend import FrontendConfig, StreamingFrontend
from .manifest import Manifest, SmoothingConfig, load_manifest
from .model_loader import (DeferredModel, locate, open_model, open_step_model,  # noqa: F401 - locate, sha256_of:
                           sha256_of)  # public
from .ringbuffer import RingBuffer
from .runtime import TFLiteModel
from .stepmodel import StepModel
from .smoothing import PosteriorSmoother, check_decides

INT32_SCALE = 2147483648.0
WINDOW_FORM = "window"
STREAMING_FORM = "streaming"
# per-hop processing times kept for the percentiles of the summary (about 33 min at a 30 ms hop;
# float32 seconds, 256 KiB at most)
HOP_TIMES_KEPT = 65_536
MS_PER_S = 1000.0


def hop_time_ms(samples: int, sample_rate: int) -> float:
    """The stream time (ms) of the hop ending after ``samples`` samples, as the smoother gets it."""
    return samples * MS_PER_S / sample_rate


def stream_time_ms(time_s: float, sample_rate: int) -> float:
    """``hop_time_ms`` of a hop known by its time in seconds (``pop_scores``): exactly the float the
    recognizer's smoother got, where ``time_s * 1000`` can be off in the last bit and move a result
    across the edge of the averaging window or the suppression time (another detection offline than
    live on the same scores)."""
    return hop_time_ms(int(round(float(time_s) * sample_rate)), sample_rate)


def hop_samples_of(frontend: FrontendConfig, hop_ms: float) -> int:
    """The samples in a hop of ``hop_ms``; KwsError unless the hop is a whole number (>= 1) of
    frontend strides, the only hops a recognizer runs (kws-mine checks its --hop-ms with it too)."""
    hop_samples = frontend.sample_rate * hop_ms / MS_PER_S
    strides = hop_samples / frontend.stride_samples
    if abs(strides - round(strides)) > 1e-9 or round(strides) < 1:
        raise KwsError(f"hop {hop_ms:g} ms must be a multiple of the frontend stride ({frontend.stride_ms:g} ms)")
    return int(round(hop_samples))


@dataclass(frozen=True)
class Detection:
    """A keyword heard: ``time_s`` is the stream time (s) of the newest audio when it fired."""

    time_s: float
    label: str
    score: float

    def to_dict(self) -> dict:
        return {"time_s": round(self.time_s, 3), "label": self.label, "score": round(self.score, 4)}


def to_float_audio(chunk: np.ndarray) -> np.ndarray:
    """Mono float32 in [-1, 1] from int16/int32/float samples, 1-D or (frames, channels)."""
    a = np.asarray(chunk)
    if a.ndim not in (1, 2):
        raise ValueError(f"audio chunk must be 1-D or (frames, channels), got shape {a.shape}")
    # scaled before the channels are averaged: the mean of int16 samples is float64 at int16 scale
    if a.dtype == np.int16:
        a = a.astype(np.float32) / np.float32(INT16_SCALE)
    elif a.dtype == np.int32:
        a = (a.astype(np.float64) / INT32_SCALE).astype(np.float32)
    elif a.dtype.kind == "f":
        a = a.astype(np.float32, copy=False)
    else:
        raise ValueError(f"unsupported audio sample type {a.dtype} (use int16, int32 or float)")
    if a.ndim == 2:
        a = a[:, 0] if a.shape[1] == 1 else a.mean(axis=1, dtype=np.float32)
    return a


class HopTimer:
    """Processing time per hop (feature frames + model + smoothing) in a preallocated ring: bounded
    memory and no allocation per hop."""

    def __init__(self, keep: int = HOP_TIMES_KEPT):
        self._times = np.zeros(keep, np.float32)
        self.count = 0
        self.total_s = 0.0

    def add(self, seconds: float) -> None:
        self._times[self.count % len(self._times)] = seconds
        self.count += 1
        self.total_s += seconds

    def summary_ms(self) -> dict[str, float]:
        """Mean, p50 and p99 in ms (of the most recent hops kept); zeros before the first hop."""
        if not self.count:
            return {"mean_ms": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
        t = np.sort(self._times[:min(self.count, len(self._times))]) * MS_PER_S
        return {"mean_ms": float(self.total_s / self.count * MS_PER_S),
                "p50_ms": _percentile(t, 50), "p99_ms": _percentile(t, 99)}


def _percentile(ordered: np.ndarray, q: float) -> float:
    """Linear-interpolated percentile of sorted values (np.percentile's default rule, without the
    numpy.ma import it brings at exit)."""
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


class HopDecisions:
    """What every recognizer does with a hop's scores: keep them where asked (``keep_scores``, for
    kws-eval), smooth them and report a detection. Needs ``self.smoother`` and ``self.labels``."""

    def _init_scores(self, keep_scores: bool) -> None:
        self.keep_scores = keep_scores
        self._score_times: list[float] = []
        self._scores: list[np.ndarray] = []
        self.last_scores: np.ndarray | None = None

    def _clear_scores(self) -> None:
        self._score_times.clear()
        self._scores.clear()
        self.last_scores = None

    def _decide(self, scores: np.ndarray, time_ms: float) -> Detection | None:
        """The smoother's decision on the scores of the hop ending at ``time_ms``."""
        self.last_scores = scores
        if self.keep_scores:
            self._score_times.append(time_ms / MS_PER_S)
            self._scores.append(scores)
        smoother = self.smoother
        top = smoother.decide(scores, time_ms)
        if top >= 0 and smoother.last_decision_fired:
            return Detection(time_ms / MS_PER_S, smoother.labels[top], smoother.last_score)
        return None

    def finish(self) -> list[Detection]:
        """The end of a recording (a file, a pipe that closed): what follows it is taken as silence
        for one model window (``window_samples``), so every window that holds the recording's last
        audio is scored and smoothed, as a live stream would go on to score it. Without it a word in
        the last second of a file was never decided on (a 1 s clip gets a single hop). Returns the
        detections; stream time counts on through the silence, and its hops are left out of
        ``timer`` (the recording's cost per hop and real-time factor stay the recording's)."""
        timer = self.timer
        self.timer = HopTimer()
        try:
            return self.process(np.zeros(self.window_samples, np.float32))
        finally:
            self.timer = timer

    def pop_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """The raw per-hop scores kept since the last call (``keep_scores=True``): times (s), (n, labels)."""
        times = np.asarray(self._score_times, np.float64)
        scores = np.stack(self._scores) if self._scores else np.zeros((0, len(self.labels)), np.float32)
        self._score_times.clear()
        self._scores.clear()
        return times, scores


def threshold_override(smoothing: SmoothingConfig, threshold: float | None
                       ) -> tuple[SmoothingConfig, dict[str, float] | None]:
    """The smoothing and per-label thresholds a recognizer runs with: the manifest's (None), or every
    label at ``threshold`` (kws-listen's --threshold)."""
    if threshold is None:
        return smoothing, None
    return replace(smoothing, detection_threshold=float(threshold)), {}


def _is_ensemble(manifest_path: Path) -> bool:
    """Whether the manifest at ``manifest_path`` is an ensemble's (validated by whoever opens it)."""
    return load_manifest(manifest_path).ensemble is not None


class Recognizer(HopDecisions):
    """Continuous keyword recognition over a stream at the model's sample rate."""

    def __init__(self, model: TFLiteModel | DeferredModel, manifest: Manifest, hop_ms: float | None = None,
                 smoothing: SmoothingConfig | None = None, thresholds: Mapping[str, float] | None = None,
                 keep_scores: bool = False, step_model: StepModel | None = None):
        self.manifest = manifest
        self.model = model
        fe = manifest.frontend
        config = smoothing or manifest.smoothing
        if hop_ms is not None:
            config = replace(config, hop_ms=float(hop_ms))
        self._hop_samples = hop_samples_of(fe, config.hop_ms)
        check_decides(config)
        self.smoothing = config
        self._window, self._stride = fe.window_samples, fe.stride_samples
        self.step_model: StepModel | None = None
        self.form_note = ""
        if step_model is not None:
            hop_frames = self._hop_samples // fe.stride_samples
            if hop_frames % step_model.step_frames:
                self.form_note = (f"hop {config.hop_ms:g} ms is not a multiple of the streaming step "
                                  f"({step_model.step_frames * fe.stride_ms:g} ms)")
            else:
                self.step_model = step_model
                self._step_frames = np.zeros((step_model.step_frames, fe.num_features), np.float32)
                self._step_len = step_model.step_frames
                # zero frames before the stream so that a step ends exactly at every hop boundary
                self._lead_frames = (-fe.num_frames) % step_model.step_frames
                self._step_scores = np.zeros(len(manifest.labels), np.float32)
        if self.step_model is None and hasattr(model, "open"):
            model.open()  # a deferred window model: it runs every hop, so it opens (and is checked) now
        if model.num_labels != len(manifest.labels):
            raise ManifestError(f"{model.path}: the model has {model.num_labels} outputs, the manifest "
                                f"lists {len(manifest.labels)} labels")
        shape = tuple(model.input_shape)
        if int(np.prod(shape)) != fe.num_frames * fe.num_features:
            raise ManifestError(f"{model.path}: model input {list(shape)} does not fit the manifest's "
                                f"frontend ({fe.num_frames} frames x {fe.num_features} features)")
        self._frontend = StreamingFrontend(fe)
        self._frames = RingBuffer(fe.num_frames, fe.num_features)
        self._clip = np.empty((fe.num_frames, fe.num_features), np.float32)
        self.audio = RingBuffer(fe.clip_samples)  # the last clip of audio, e.g. to save a detection
        self.smoother = PosteriorSmoother.from_manifest(manifest, config, thresholds)
        self.timer = HopTimer()
        self._init_scores(keep_scores)
        self.reset()

    @classmethod
    def from_manifest(cls, path: str | os.PathLike, model: str | None = None, hop_ms: float | None = None,
                      threshold: float | None = None, num_threads: int = 1, runtime: str | None = None,
                      keep_scores: bool = False, streaming: bool = True) -> "Recognizer":
        """A recognizer for a manifest (or a .tflite beside one, or a folder holding one).

        ``model`` picks the model by key ("int8", "float") or file name; default int8. ``threshold``
        replaces every label's threshold. ``streaming=False`` runs the window model even where the
        manifest lists a streaming form. A manifest of the embedding family gives an
        ``EmbeddingRecognizer`` (kws.edge.embedding_pipeline), an ensemble's an ``EnsembleRecognizer``
        (kws.edge.ensemble); both have the same interface."""
        manifest_path, model_file = locate(path)
        if model_file is None and _is_ensemble(manifest_path):  # several models: kws.edge.ensemble
            from .ensemble import EnsembleRecognizer

            return EnsembleRecognizer.from_manifest(manifest_path, model, hop_ms, threshold, num_threads, runtime,
                                                    keep_scores, streaming)
        # the window model's interpreter opens only if the window form runs (Recognizer.__init__)
        loaded = open_model(path, model, num_threads=num_threads, runtime=runtime, defer=streaming)
        if loaded.manifest.embedding is not None:  # the embedding family: its own pipeline
            from .embedding_pipeline import EmbeddingRecognizer

            return EmbeddingRecognizer.from_loaded(loaded, hop_ms, threshold, num_threads, runtime, keep_scores)
        tfl, manifest = loaded.model, loaded.manifest
        step = (open_step_model(manifest, loaded.manifest_path, loaded.key, num_threads=num_threads,
                                runtime=runtime) if streaming else None)
        smoothing, thresholds = threshold_override(manifest.smoothing, threshold)
        rec = cls(tfl, manifest, hop_ms=hop_ms, smoothing=smoothing, thresholds=thresholds,
                  keep_scores=keep_scores, step_model=step)
        if not streaming and manifest.streaming is not None and loaded.key in manifest.streaming.models:
            rec.form_note = "streaming turned off"
        elif manifest.streaming is None or loaded.key not in manifest.streaming.models:
            rec.form_note = rec.form_note or "the manifest lists no streaming form of this model"
        return rec

    # --- properties -----------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.manifest.frontend.sample_rate

    @property
    def hop_ms(self) -> float:
        return self.smoothing.hop_ms

    @property
    def hop_samples(self) -> int:
        return self._hop_samples

    @property
    def window_samples(self) -> int:
        """Audio one model input covers (the clip)."""
        return self.manifest.frontend.clip_samples

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def form(self) -> str:
        """Which form of the model scores the hops: "streaming" (the step model) or "window"."""
        return STREAMING_FORM if self.step_model is not None else WINDOW_FORM

    @property
    def runtime(self):
        """The runtime that scores the hops (the step model's, else the window model's): ``.name``
        (``litert-c`` for ai-edge-litert's C API, ``litert`` for its Python interpreter, ...), ``.version``."""
        return (self.step_model or self.model).runtime

    def describe_form(self) -> str:
        """One line: the form that runs, and the step model or why the window model runs."""
        if self.step_model is not None:
            step = self.step_model
            return (f"streaming: {step.path.name}, {step.step_frames} frames per step, "
                    f"{step.num_states} state tensors")
        return f"window model every hop ({self.form_note})" if self.form_note else "window model every hop"

    @property
    def samples_seen(self) -> int:
        return self._samples

    @property
    def time_s(self) -> float:
        """Stream time of the newest sample processed, in seconds."""
        return self._samples / self.sample_rate

    # --- processing -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new stream: forget audio, frames, smoothing state and stream time."""
        self._frontend.reset()
        self._frames.reset()
        self.audio.reset()
        self.smoother.reset()
        self._samples = 0
        self._unscored_s = 0.0
        self._next_hop = self.manifest.frontend.clip_samples  # first boundary with a whole clip behind it
        self._clear_scores()
        if self.step_model is not None:
            self.step_model.reset()
            self._step_frames[:self._lead_frames] = 0.0
            self._step_filled = self._lead_frames

    def process(self, chunk: np.ndarray) -> list[Detection]:
        """Consume samples (any length, int16 or float at ``sample_rate``); return new detections.

        The frontend computes the chunk's new frames in one call; they are then handed on hop by
        hop (frame k is complete at stream sample ``k * stride + window``), so every hop boundary
        sees exactly the frames and audio before it, whatever the chunk sizes. A hop's time counts
        from the end of the previous hop's work, so the chunk's frontend time falls on its first hop."""
        audio = to_float_audio(chunk)
        detections: list[Detection] = []
        n = len(audio)
        if n == 0:
            return detections
        start = time.perf_counter()
        frames = self._frontend.push(audio)
        frame_base = self._frontend.frames_emitted - len(frames)  # stream index of frames[0]
        used = 0  # frames handed on
        pos = 0
        while pos < n:
            take = min(n - pos, self._next_hop - self._samples)
            end = self._samples + take
            # frames complete by stream sample ``end``: k * stride + window <= end
            ready = min(len(frames), max(used, (end - self._window) // self._stride + 1 - frame_base))
            if ready > used:
                if self.step_model is None:
                    self._frames.write(frames[used:ready])
                else:
                    self._feed_steps(frames[used:ready])
                used = ready
            self.audio.write(audio[pos:pos + take])
            self._samples = end
            pos += take
            if end == self._next_hop:
                det = self._score_hop()
                if det is not None:
                    detections.append(det)
                self._next_hop += self._hop_samples
                now = time.perf_counter()
                self.timer.add(self._unscored_s + now - start)
                self._unscored_s = 0.0
                start = now
        self._unscored_s += time.perf_counter() - start  # work after the last hop: the next hop's
        return detections

    def _feed_steps(self, frames: np.ndarray) -> None:
        """Run the step model on every complete group of ``step_frames`` frames (straight from
        ``frames`` where a group lies whole in it, else gathered in a buffer)."""
        pos, need, count = 0, self._step_len, len(frames)
        step = self.step_model.step
        while pos < count:
            if self._step_filled == 0 and count - pos >= need:
                self._step_scores = step(frames[pos:pos + need])
                pos += need
                continue
            take = min(need - self._step_filled, count - pos)
            self._step_frames[self._step_filled:self._step_filled + take] = frames[pos:pos + take]
            self._step_filled += take
            pos += take
            if self._step_filled == need:
                self._step_scores = step(self._step_frames)
                self._step_filled = 0

    def _score_hop(self) -> Detection | None:
        if self.step_model is not None:
            scores = self._step_scores.copy()  # the smoother keeps it; the step model reuses its buffer
        else:
            scores = self.model.predict(self._frames.latest(self._clip))
        return self._decide(scores, hop_time_ms(self._samples, self.sample_rate))
