"""The ``embedding`` model family at run time: audio -> mel frames (numpy) -> the frozen speech
embedding (a TFLite model, one 96-dim vector every 80 ms) -> the head (a TFLite model over the last
16 embeddings) -> per-label scores. No TensorFlow, onnx or onnxruntime.

``EmbeddingPipeline.push(chunk)`` takes one chunk of CHUNK_SAMPLES new samples and keeps the state a
stream needs (the lookback, a ring of the last MEL_WINDOW mel frames, a ring of the last
HEAD_EMBEDDINGS embeddings); ``window_inputs`` computes the head's input of whole windows at once
(kws-predict, training), with the same functions, so a streamed score equals the one-shot score of
the WINDOW_SAMPLES ending at the same sample (the stream starts on silence).

``EmbeddingRecognizer`` is the family's ``Recognizer``: the same ``process`` / ``reset`` /
``pop_scores`` and smoother, one hop every 80 ms (or a multiple); ``Recognizer.from_manifest`` makes
one for a manifest of this family.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import numpy as np

from .embedding_frontend import (CHUNK_SAMPLES, EMBEDDING_DIM, FIRST_EMBEDDING_CHUNKS, HEAD_EMBEDDINGS,
                                 INT16_SCALE, LOOKBACK_SAMPLES, MEL_BINS, MEL_WINDOW,
                                 SAMPLE_RATE, WINDOW_CHUNKS, WINDOW_SAMPLES, MelFrontend,
                                 load_mel_constants)
from .errors import KwsError, ManifestError
from .manifest import EMBEDDING_FAMILY, Manifest, ModelEntry, SmoothingConfig
from .model_loader import checked_file
from .recognizer import HopDecisions, HopTimer, hop_time_ms, threshold_override, to_float_audio
from .ringbuffer import RingBuffer
from .runtime import TFLiteModel
from .smoothing import PosteriorSmoother, check_decides

MS_PER_S = 1000.0
HOP_MS = CHUNK_SAMPLES * MS_PER_S / SAMPLE_RATE  # 80 ms: one embedding per hop
EMBEDDING_INPUT_SHAPE = (1, MEL_WINDOW, MEL_BINS, 1)
HEAD_INPUT_SHAPE = (1, HEAD_EMBEDDINGS, EMBEDDING_DIM)
EMBEDDING_FORM = "embedding"
PREDICT_TAIL_S = 0.4  # silence kws-predict scans after a clip (EmbeddingPipeline.tail_samples)


class EmbeddingPipeline:
    """Mel frontend, embedding model and head model of one converted embedding-family model."""

    def __init__(self, mel: MelFrontend, embedder: TFLiteModel, head: TFLiteModel):
        self.mel, self.embedder, self.head = mel, embedder, head
        self._call = np.zeros(LOOKBACK_SAMPLES + CHUNK_SAMPLES, np.float32)  # lookback + chunk: one mel call
        self._mel = RingBuffer(MEL_WINDOW, MEL_BINS)
        self._mel_window = np.empty((MEL_WINDOW, MEL_BINS), np.float32)
        self._embeddings = RingBuffer(HEAD_EMBEDDINGS, EMBEDDING_DIM)
        self._head_input = np.empty((HEAD_EMBEDDINGS, EMBEDDING_DIM), np.float32)
        self.reset()

    def reset(self) -> None:
        """A new stream, starting on silence."""
        self._call[:] = 0.0
        self._mel.reset()
        self._embeddings.reset()
        self.chunks = 0

    @property
    def ready(self) -> bool:
        """Whether a whole head window has been heard (the head's input holds no padding)."""
        return self.chunks >= WINDOW_CHUNKS

    def prime(self) -> None:
        """Hear the silence before a stream: all but one chunk of a head window of zeros, so that the
        stream's first chunk completes a window and is scored (a word in the first 2 s is then heard
        as kws-predict hears a clip, after silence, instead of never reaching the window's end)."""
        silence = np.zeros(CHUNK_SAMPLES, np.float32)
        while self.chunks < FIRST_EMBEDDING_CHUNKS:  # the mel ring full of silence, and its embedding
            self.push(silence)
        # every later chunk of silence gives the same mel frames and so the same embedding: copied,
        # not run again (14 embedding calls fewer at each start)
        repeats = WINDOW_CHUNKS - 1 - self.chunks
        self._embeddings.write(np.repeat(self._embeddings.latest(self._head_input)[-1:], repeats, axis=0))
        self.chunks += repeats

    def push(self, chunk: np.ndarray) -> None:
        """One chunk of CHUNK_SAMPLES float samples in [-1, 1]: its mel frames, then (from the
        FIRST_EMBEDDING_CHUNKS-th chunk on) one embedding of the newest MEL_WINDOW frames."""
        call = self._call
        call[:LOOKBACK_SAMPLES] = call[CHUNK_SAMPLES:]
        np.multiply(chunk, np.float32(INT16_SCALE), out=call[LOOKBACK_SAMPLES:])
        self._mel.write(self.mel.chunks(call)[0])
        self.chunks += 1
        if self.chunks >= FIRST_EMBEDDING_CHUNKS:
            self._embeddings.write(self.embedder.predict(self._mel.latest(self._mel_window))[None])

    def scores(self) -> np.ndarray:
        """The head's scores over the newest HEAD_EMBEDDINGS embeddings."""
        return self.head.predict(self._embeddings.latest(self._head_input))

    def embed(self, mel_windows: np.ndarray) -> np.ndarray:
        """(n, EMBEDDING_DIM) embeddings of (n, MEL_WINDOW, MEL_BINS, 1) mel windows."""
        return self.embedder.predict_batch(mel_windows).reshape(-1, EMBEDDING_DIM)

    # kws-predict scans a clip as a stream (silence before it) and goes on this far into silence
    # after it, so that a word at the clip's very end reaches the place in the window where the
    # head learnt words (its speech ending in the window's newest 0.4 s, kws.trainer.embedding_data)
    tail_samples = int(PREDICT_TAIL_S * SAMPLE_RATE)

    def features(self, windows: np.ndarray) -> np.ndarray:
        """The head's inputs of whole windows (kws-predict's frontend interface): ``window_inputs``."""
        return self.window_inputs(windows)

    def window_inputs(self, windows: np.ndarray) -> np.ndarray:
        """(n, HEAD_EMBEDDINGS, EMBEDDING_DIM) head inputs of whole windows, (n, WINDOW_SAMPLES) float
        audio each (the first LOOKBACK_SAMPLES only as the first chunk's lookback)."""
        windows = np.asarray(windows, np.float32).reshape(-1, WINDOW_SAMPLES)
        out = np.empty((len(windows), HEAD_EMBEDDINGS, EMBEDDING_DIM), np.float32)
        for i, window in enumerate(windows):
            out[i] = self.embed(self.mel.embedding_inputs(window))
        return out


def open_pipeline(manifest: Manifest, manifest_path: Path, key: str, head: TFLiteModel,
                  num_threads: int = 1, runtime: str | None = None) -> EmbeddingPipeline:
    """The pipeline of head ``key`` (already opened and checked): the embedding model of the same key
    and the mel constants, each checked against the manifest (file, sha256, tensors)."""
    section = manifest.embedding
    if section is None:
        raise ManifestError(f"{manifest_path}: not a manifest of the {EMBEDDING_FAMILY} family")
    if key not in section.models:
        raise ManifestError(f"{manifest_path}: lists no embedding model for the {key!r} head "
                            f"(it lists: {', '.join(section.models) or 'none'})")
    entry: ModelEntry = section.models[key]
    embedder = TFLiteModel(checked_file(manifest_path, entry.file, entry.sha256, entry.size_bytes),
                           num_threads=num_threads, runtime=runtime)
    embedder.check_entry(entry, manifest_path)
    check_shape(manifest_path, embedder, EMBEDDING_INPUT_SHAPE, (1, EMBEDDING_DIM), "embedding model")
    check_shape(manifest_path, head, HEAD_INPUT_SHAPE, (1, len(manifest.labels)), "head")
    consts = load_mel_constants(checked_file(manifest_path, section.mel_constants, section.mel_sha256,
                                             section.mel_size_bytes))
    return EmbeddingPipeline(MelFrontend(consts), embedder, head)


def check_shape(manifest_path: Path, model: TFLiteModel, input_shape: tuple[int, ...],
                output_shape: tuple[int, ...], what: str) -> None:
    """ManifestError unless the model maps ``input_shape`` to ``output_shape`` (sizes compared)."""
    got_in, got_out = tuple(model.input_spec.shape), tuple(model.output_spec.shape)
    if int(np.prod(got_in)) != int(np.prod(input_shape)) or int(np.prod(got_out)) != int(np.prod(output_shape)):
        raise ManifestError(f"{manifest_path}: {model.path.name} maps {list(got_in)} -> {list(got_out)}; the "
                            f"{what} of the {EMBEDDING_FAMILY} family maps {list(input_shape)} -> {list(output_shape)}")


class EmbeddingRecognizer(HopDecisions):
    """Continuous keyword recognition with an embedding-family model: one hop every ``hop_ms`` (a
    multiple of 80 ms); a hop at stream sample t scores the head window ending at t, the first once a
    whole window (WINDOW_CHUNKS chunks, 2 s) has arrived. Same interface as ``Recognizer``."""

    def __init__(self, pipeline: EmbeddingPipeline, manifest: Manifest, hop_ms: float | None = None,
                 smoothing: SmoothingConfig | None = None, thresholds: Mapping[str, float] | None = None,
                 keep_scores: bool = False):
        self.manifest, self.pipeline = manifest, pipeline
        self.model = pipeline.head
        config = smoothing or manifest.smoothing
        if hop_ms is not None:
            config = replace(config, hop_ms=float(hop_ms))
        chunks = config.hop_ms / HOP_MS
        if chunks < 1 or abs(chunks - round(chunks)) > 1e-9:
            raise KwsError(f"hop {config.hop_ms:g} ms must be a multiple of the {EMBEDDING_FAMILY} family's "
                           f"{HOP_MS:g} ms step")
        check_decides(config)
        self.smoothing = config
        self._chunks_per_hop = int(round(chunks))
        self._pending = np.zeros(CHUNK_SAMPLES, np.float32)
        self.smoother = PosteriorSmoother.from_manifest(manifest, config, thresholds)
        self.timer = HopTimer()
        self._init_scores(keep_scores)
        self.form_note = ""
        self.reset()

    @classmethod
    def from_manifest(cls, path: str | os.PathLike, model: str | None = None, hop_ms: float | None = None,
                      threshold: float | None = None, num_threads: int = 1, runtime: str | None = None,
                      keep_scores: bool = False, streaming: bool = True) -> "EmbeddingRecognizer":
        """A recognizer for an embedding-family manifest (``Recognizer.from_manifest``'s arguments;
        ``streaming`` has no meaning here: the pipeline always streams)."""
        from .model_loader import open_model

        return cls.from_loaded(open_model(path, model, num_threads=num_threads, runtime=runtime), hop_ms,
                               threshold, num_threads, runtime, keep_scores)

    @classmethod
    def from_loaded(cls, loaded, hop_ms: float | None = None, threshold: float | None = None,
                    num_threads: int = 1, runtime: str | None = None,
                    keep_scores: bool = False) -> "EmbeddingRecognizer":
        """A recognizer for a model ``model_loader.open_model`` opened (its head; deferred or not)."""
        head = loaded.model.open() if hasattr(loaded.model, "open") else loaded.model
        pipeline = open_pipeline(loaded.manifest, loaded.manifest_path, loaded.key, head,
                                 num_threads=num_threads, runtime=runtime)
        smoothing, thresholds = threshold_override(loaded.manifest.smoothing, threshold)
        return cls(pipeline, loaded.manifest, hop_ms=hop_ms, smoothing=smoothing, thresholds=thresholds,
                   keep_scores=keep_scores)

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def hop_ms(self) -> float:
        return self.smoothing.hop_ms

    @property
    def hop_samples(self) -> int:
        return self._chunks_per_hop * CHUNK_SAMPLES

    @property
    def window_samples(self) -> int:
        """Audio one head decision covers (its embeddings' mel windows)."""
        return WINDOW_SAMPLES

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def form(self) -> str:
        return EMBEDDING_FORM

    @property
    def runtime(self):
        """The runtime of the embedding model (where the time goes): ``.name``, ``.version``."""
        return self.pipeline.embedder.runtime

    def describe_form(self) -> str:
        p = self.pipeline
        return (f"embedding: mel (numpy) -> {p.embedder.path.name} every {HOP_MS:g} ms -> {p.head.path.name} "
                f"over the last {HEAD_EMBEDDINGS} embeddings")

    @property
    def samples_seen(self) -> int:
        return self._samples

    @property
    def time_s(self) -> float:
        return self._samples / SAMPLE_RATE

    def reset(self) -> None:
        """Start a new stream: forget audio, state, smoothing and stream time; the stream starts on
        silence, and its first hop comes one 80 ms chunk in (``EmbeddingPipeline.prime``)."""
        self.pipeline.reset()
        self.pipeline.prime()
        self.smoother.reset()
        self._samples = 0
        self._filled = 0
        self._unscored_s = 0.0
        self._clear_scores()

    def process(self, chunk: np.ndarray):
        """Consume samples (any length, int16 or float at 16 kHz); return new detections."""
        audio = to_float_audio(chunk)
        detections = []
        start = time.perf_counter()
        pos, n = 0, len(audio)
        while pos < n:
            take = min(n - pos, CHUNK_SAMPLES - self._filled)
            self._pending[self._filled:self._filled + take] = audio[pos:pos + take]
            self._filled += take
            pos += take
            self._samples += take
            if self._filled < CHUNK_SAMPLES:
                break
            self._filled = 0
            self.pipeline.push(self._pending)
            if not self.pipeline.ready or (self.pipeline.chunks - WINDOW_CHUNKS) % self._chunks_per_hop:
                continue
            detection = self._decide(self.pipeline.scores(), hop_time_ms(self._samples, SAMPLE_RATE))
            if detection is not None:
                detections.append(detection)
            now = time.perf_counter()
            self.timer.add(self._unscored_s + now - start)
            self._unscored_s, start = 0.0, now
        self._unscored_s += time.perf_counter() - start
        return detections
