"""Training data of the ``embedding`` family: 2 s windows of audio -> the head's input (the last 16
frozen speech embeddings), computed once per run and cached in ``RUN/embeddings/``, so epochs only
train the small head.

* keyword and ``_unknown_`` clips: each 1 s clip at the end of a silent ``WINDOW_SAMPLES`` window,
  then the run's own augmentation (``kws.trainer.augment.augment_audio``) with the word placed at the
  window's end (its speech ending in the newest ``END_SPREAD_MS`` the newest embedding hears; this
  replaces ``word_position``, ``word_end_margin_ms`` and ``time_shift_ms``), background noise at
  ``background_snr_db`` (in ``talk_background_share`` of the mixes, talk from the negatives), input
  level ``gain_db``, and speed, rooms and channels where the config turns them on;
  ``model.embedding_copies`` windows per keyword or ``_silence_`` item (background alone), half as
  many per ``_unknown_`` clip; partial words
  (``augment.partial_word_percentage`` of the keyword windows, cut by the window's edge) as
  ``_unknown_``;
* real negatives (``data.negatives``): every recording streamed through the mel frontend and the
  embedding once (one embedding per 80 ms; a recording shorter than a head window after silence);
  each epoch draws ``data.negatives_percentage`` percent of
  the keyword windows from all of their head windows, seeded by (seed, epoch);
* validation and test: each clip once at the window's end, unaugmented (silence: background at a
  seeded volume), as ``kws.trainer.features.eval_features`` does for the other families.

The mel frames come from ``kws.edge.embedding_frontend`` (the device's own numpy code) and the
embeddings from the Keras rebuild of the ONNX network (``kws.trainer.speech_embedding``).
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kws.edge.embedding_frontend import (EMBEDDING_DIM, FIRST_EMBEDDING_CHUNKS, HEAD_EMBEDDINGS, LOOKBACK_SAMPLES,
                                         MEL_BINS, MEL_FRAMES_PER_CHUNK, MEL_WINDOW, UNSEEN_TAIL_SAMPLES,
                                         WINDOW_SAMPLES, MelFrontend, embedding_windows)
from kws.edge.manifest import SILENCE_LABEL, UNKNOWN_LABEL, atomic_write_bytes

from . import negatives as neg
from .augment import AugmentSources, augment_audio, place_word
from .config import Config
from .dataset import Item
from .features import clip_of
from .speech_embedding import EMBEDDING_FILE, KNOWN_SHA256, MEL_FILE, find_weights, keras_embedding, mel_constants

CACHE_DIR = "embeddings"  # in the run folder
CACHE_VERSION = 1
EMBED_BATCH = 512  # mel windows per Keras call
# a recording's embeddings are computed this many at a time: its mel windows (76 x 32 floats each,
# 440 MB per hour of audio) never all sit in memory
STREAM_BLOCK_EMBEDDINGS = 4096
WINDOW_BATCH = 64  # audio windows whose mel windows are embedded together
CALIBRATION_WINDOWS = 400  # mel windows kept for kws-convert's int8 calibration of the embedding
CALIBRATION_SEED_OFFSET = 13
# talk windows (augment.talk_background_share) drawn once per run: the training windows are fixed, so
# the pool is larger than an epoch's (neg.TALK_POOL_WINDOWS); 2 s float32 each, 64 MiB in all
EMBEDDING_TALK_WINDOWS = 512
HEAD_INPUT_SHAPE = (HEAD_EMBEDDINGS, EMBEDDING_DIM)
# a word is learnt as ending anywhere in the newest END_SPREAD_MS of a window, so that a stream,
# scored every 80 ms, holds it there for several hops (bench_embedding placed words so, 0-0.4 s)
END_SPREAD_MS = 400.0
# audio a recording streamed from silence needs for its first head window (the stream adds the lookback)
FIRST_WINDOW_SAMPLES = WINDOW_SAMPLES - LOOKBACK_SAMPLES


def _ms(samples: int, sample_rate: int) -> float:
    return samples * 1000.0 / sample_rate


def window_of(clip: np.ndarray) -> np.ndarray:
    """A WINDOW_SAMPLES float window with ``clip`` at its end (silence before)."""
    out = np.zeros(WINDOW_SAMPLES, np.float32)
    out[-len(clip):] = clip[-WINDOW_SAMPLES:]
    return out


def placement_config(cfg: Config):
    """The run's augmentation with words placed at the window's end: the speech ends anywhere in the
    last END_SPREAD_MS of the audio the newest embedding hears (the centre of that span is where
    ``eval_windows`` puts it)."""
    half = END_SPREAD_MS / 2
    margin = half + _ms(UNSEEN_TAIL_SAMPLES, cfg.features.sample_rate)
    return dataclasses.replace(cfg.augment, word_position="end", word_end_margin_ms=margin, time_shift_ms=half)


def eval_windows(items: Sequence[Item], clips: dict[str, np.ndarray], cfg: Config,
                 backgrounds: Sequence[np.ndarray], seed: int) -> np.ndarray:
    """(n, WINDOW_SAMPLES) unaugmented windows: each clip's speech at the window's end; silence
    as background at a seeded volume."""
    rng = np.random.default_rng(seed)
    sr = cfg.features.sample_rate
    aug = placement_config(cfg)
    margin = int(round(aug.word_end_margin_ms * sr / 1000))
    silence_cfg = dataclasses.replace(aug, gain_db=0.0)
    out = np.empty((len(items), WINDOW_SAMPLES), np.float32)
    for i, item in enumerate(items):
        window = window_of(clip_of(item, clips, cfg.features.clip_samples))
        if item.label == SILENCE_LABEL:
            out[i] = augment_audio(window, True, silence_cfg, sr, backgrounds, rng)
        else:
            out[i] = place_word(window, "end", 0, margin, rng, sr)
    return out


def training_windows(items: Sequence[Item], clips: dict[str, np.ndarray], cfg: Config, sources: AugmentSources,
                     labels: Sequence[str], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The augmented training windows (n, WINDOW_SAMPLES) and their label indices (seeded)."""
    rng = np.random.default_rng([seed, CALIBRATION_SEED_OFFSET - 1])
    aug = placement_config(cfg)
    copies_of = {UNKNOWN_LABEL: max(1, cfg.model.embedding_copies // 2)}  # keywords and silence: all copies
    xs, ys = [], []
    for item in items:
        window = window_of(clip_of(item, clips, cfg.features.clip_samples))
        for _ in range(copies_of.get(item.label, cfg.model.embedding_copies)):
            xs.append(augment_audio(window, item.label == SILENCE_LABEL, aug, cfg.features.sample_rate, sources, rng))
            ys.append(labels.index(item.label))
    # partial words (augment.partial_word_percentage of the keyword windows): a keyword (with
    # augment.partial_word_unknowns an _unknown_ word too) cut by the window's edge, as a stream shows
    # it while the word comes in, trained as _unknown_
    pool = partial_word_items(items, labels, cfg.augment.partial_word_unknowns)
    n_partial = int(round(sum(1 for y in ys if y >= 2) * cfg.augment.partial_word_percentage / 100))
    for k in range(n_partial if pool else 0):
        window = window_of(clip_of(pool[k % len(pool)], clips, cfg.features.clip_samples))
        xs.append(augment_audio(window, False, aug, cfg.features.sample_rate, sources, rng, kind="partial"))
        ys.append(labels.index(UNKNOWN_LABEL))
    return np.stack(xs) if xs else np.zeros((0, WINDOW_SAMPLES), np.float32), np.array(ys, np.int64)


def partial_word_items(items: Sequence[Item], labels: Sequence[str], unknowns: bool) -> list[Item]:
    """The items partial-word windows are cut from, in turn: the keyword clips and, with ``unknowns``
    (``augment.partial_word_unknowns``), the ``_unknown_`` word clips interleaved with them, so that a
    draw smaller than the pool still cuts both kinds (as ``train.partial_word_pool`` does for the
    other families)."""
    keywords = [i for i in items if i.label in labels[2:]]
    others = [i for i in items if i.label == UNKNOWN_LABEL and i.path] if unknowns else []
    if not others:
        return keywords
    # spread the smaller list evenly through the larger one
    merged = [(k / len(keywords), 0, i) for k, i in enumerate(keywords)]
    merged += [(k / len(others), 1, i) for k, i in enumerate(others)]
    return [i for _, _, i in sorted(merged, key=lambda m: m[:2])]


def cache_key(cfg: Config, labels: Sequence[str]) -> str:
    """What the cached embeddings depend on: the data and its split, the augmentation, the copies,
    the clip format, the seed and the weights (not the head's settings, the epochs or the smoothing:
    ``--resume --set train.epochs=N`` reuses them)."""
    values = cfg.to_dict()
    return json.dumps({"version": CACHE_VERSION, "data": values["data"], "augment": values["augment"],
                       "features": values["features"], "copies": cfg.model.embedding_copies,
                       "seed": cfg.train.seed, "labels": list(labels), "weights": KNOWN_SHA256}, sort_keys=True)


class Embedder:
    """Mel frames (numpy, the edge's code) and float embeddings (the Keras rebuild) of audio."""

    def __init__(self, weights_setting: str):
        weights = find_weights(weights_setting)
        self.weights = {name: str(path) for name, path in weights.items()}
        self.mel = MelFrontend(mel_constants(weights[MEL_FILE]))
        self.model = keras_embedding(weights[EMBEDDING_FILE])

    def mel_windows(self, windows: np.ndarray) -> np.ndarray:
        """(n * HEAD_EMBEDDINGS, MEL_WINDOW, MEL_BINS, 1) embedding inputs of (n, WINDOW_SAMPLES) windows."""
        if not len(windows):
            return np.zeros((0, MEL_WINDOW, MEL_BINS, 1), np.float32)
        return np.concatenate([self.mel.embedding_inputs(w) for w in windows])

    def embed(self, mel_windows: np.ndarray) -> np.ndarray:
        """(n, EMBEDDING_DIM) float embeddings of mel windows."""
        if not len(mel_windows):
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        return np.asarray(self.model.predict(np.ascontiguousarray(mel_windows), batch_size=EMBED_BATCH,
                                             verbose=0), np.float32)

    def head_inputs(self, windows: np.ndarray) -> np.ndarray:
        """(n, HEAD_EMBEDDINGS, EMBEDDING_DIM) head inputs of (n, WINDOW_SAMPLES) windows."""
        out = np.empty((len(windows), *HEAD_INPUT_SHAPE), np.float32)
        for start in range(0, len(windows), WINDOW_BATCH):
            part = windows[start:start + WINDOW_BATCH]
            out[start:start + len(part)] = self.embed(self.mel_windows(part)).reshape(-1, *HEAD_INPUT_SHAPE)
        return out

    def stream(self, audio: np.ndarray) -> np.ndarray:
        """(m, EMBEDDING_DIM) embeddings of a recording streamed from silence, one per 80 ms chunk from
        the first whole mel window on (consecutive HEAD_EMBEDDINGS rows are one head window), computed
        STREAM_BLOCK_EMBEDDINGS at a time."""
        mel = self.mel.stream(audio)
        chunks = len(mel) // MEL_FRAMES_PER_CHUNK
        parts = []
        for first in range(0, chunks - FIRST_EMBEDDING_CHUNKS + 1, STREAM_BLOCK_EMBEDDINGS):
            # the frames of the block's embeddings: those ending after chunks first + FIRST_EMBEDDING_CHUNKS
            # .. first + FIRST_EMBEDDING_CHUNKS - 1 + STREAM_BLOCK_EMBEDDINGS
            end = first + FIRST_EMBEDDING_CHUNKS - 1 + STREAM_BLOCK_EMBEDDINGS
            parts.append(self.embed(embedding_windows(mel[first * MEL_FRAMES_PER_CHUNK:end * MEL_FRAMES_PER_CHUNK])))
        return np.concatenate(parts) if parts else np.zeros((0, EMBEDDING_DIM), np.float32)


class EmbeddingFeatures:
    """The head's inputs for one run: fixed augmented training windows, the negatives' embeddings,
    validation; all computed once and cached in ``RUN/embeddings/`` (reused on resume)."""

    input_shape = HEAD_INPUT_SHAPE

    def __init__(self, cfg: Config, run_path: Path, index, clips: dict[str, np.ndarray], sources: AugmentSources,
                 negatives: neg.NegativeSet | None, say: Callable[[str], None]):
        self.cfg, self.labels, self.clips, self.sources, self.say = cfg, list(index.labels), clips, sources, say
        self.index = index
        self.cache = Path(run_path) / CACHE_DIR
        self.embedder = Embedder(cfg.model.embedding_weights)
        self.digest = cache_key(cfg, self.labels)
        train_items = index.splits["training"]
        t0 = time.time()
        data = self._cached("train", lambda: self._training_set(train_items, negatives))
        self.x_fixed, self.y_fixed = data["x"], data["y"]
        self.negatives = self._cached("negatives", lambda: self._negative_pool(negatives)) if negatives else None
        self.n_negatives = 0
        if self.negatives is not None:
            n_keywords = int(np.isin(self.y_fixed, np.arange(2, len(self.labels))).sum())
            self.n_negatives = min(self.pool_size, neg.windows_per_epoch(n_keywords, cfg.data.negatives_percentage))
        say(f"embedding: {len(self.x_fixed)} training windows ({', '.join(f'{l} {int((self.y_fixed == i).sum())}' for i, l in enumerate(self.labels))})"
            + (f"; negatives: {self.pool_size} head windows, {self.n_negatives} per epoch as "
               f"{cfg.data.negatives_label}" if self.negatives is not None else "")
            + f"; {time.time() - t0:.0f} s (cached in {self.cache})")

    # --- cache ------------------------------------------------------------------------------------
    def _cached(self, name: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        path = self.cache / f"{name}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as data:
                if str(data["digest"]) == self.digest:
                    return {k: data[k] for k in data.files if k != "digest"}
        data = compute()
        import io

        buf = io.BytesIO()
        np.savez(buf, digest=np.array(self.digest), **data)
        atomic_write_bytes(path, buf.getvalue())
        return data

    def _training_set(self, items: Sequence[Item],
                      negatives: neg.NegativeSet | None) -> dict[str, np.ndarray]:
        cfg = self.cfg
        sources = self.sources
        if cfg.augment.talk_background_share:  # talk to mix under the words, drawn once (the windows are fixed)
            sources = dataclasses.replace(sources, talk=neg.talk_pool(
                negatives, WINDOW_SAMPLES, cfg.features.sample_rate, [cfg.train.seed],
                EMBEDDING_TALK_WINDOWS))
        windows, y = training_windows(items, self.clips, cfg, sources, self.labels, cfg.train.seed)
        self.say(f"embedding: computing the speech embeddings of {len(windows)} training windows "
                 f"({len(windows) * HEAD_EMBEDDINGS} embeddings; once per run)")
        x = self.embedder.head_inputs(windows)
        rng = np.random.default_rng(cfg.train.seed + CALIBRATION_SEED_OFFSET)
        pick = rng.choice(len(windows), size=min(len(windows), CALIBRATION_WINDOWS), replace=False)
        mel = self.embedder.mel_windows(windows[np.sort(pick)])
        calibration = mel[rng.choice(len(mel), size=min(len(mel), CALIBRATION_WINDOWS), replace=False)]
        return {"x": x, "y": y, "calibration_mel": calibration}

    def _negative_pool(self, negatives: neg.NegativeSet) -> dict[str, np.ndarray]:
        from kws.edge.audio import stream_audio

        self.say(f"embedding: streaming {negatives.describe()} of negatives through the speech embedding (once per run)")
        parts, sr = [], self.cfg.features.sample_rate
        for f in negatives.files:
            audio = np.concatenate(list(stream_audio(f.path, sr)) or [np.zeros(0, np.float32)])
            if len(audio) < FIRST_WINDOW_SAMPLES:
                # shorter than one head window (a 1 s clip): heard after silence, as a stream would
                # hear it, instead of giving no window at all
                audio = np.concatenate([np.zeros(FIRST_WINDOW_SAMPLES - len(audio), np.float32), audio])
            emb = self.embedder.stream(audio)
            if len(emb) >= HEAD_EMBEDDINGS:
                parts.append(emb)
        lengths = np.array([len(p) for p in parts], np.int64)
        emb = np.concatenate(parts) if parts else np.zeros((0, EMBEDDING_DIM), np.float32)
        # start row of every head window: HEAD_EMBEDDINGS consecutive rows of one recording
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.zeros(0, np.int64)
        starts = np.concatenate([o + np.arange(n - HEAD_EMBEDDINGS + 1) for o, n in zip(offsets, lengths)]) \
            if len(lengths) else np.zeros(0, np.int64)
        return {"embeddings": emb, "starts": starts.astype(np.int64)}

    @property
    def pool_size(self) -> int:
        return 0 if self.negatives is None else int(len(self.negatives["starts"]))

    # --- what the training loop asks for ---------------------------------------------------------
    def epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's head inputs and label indices: the fixed windows plus a seeded draw of negatives."""
        if not self.n_negatives:
            return self.x_fixed, self.y_fixed
        rng = np.random.default_rng([self.cfg.train.seed, epoch, neg.NEGATIVES_STREAM])
        starts = self.negatives["starts"][rng.choice(self.pool_size, size=self.n_negatives, replace=False)]
        rows = starts[:, None] + np.arange(HEAD_EMBEDDINGS)[None, :]
        x = np.concatenate([self.x_fixed, self.negatives["embeddings"][rows]])
        y = np.concatenate([self.y_fixed, np.full(len(rows), self.labels.index(self.cfg.data.negatives_label))])
        return x, y

    def evaluation(self, items: Sequence[Item], seed: int) -> np.ndarray:
        """Head inputs of items' unaugmented windows (validation, test, and the train metrics)."""
        windows = eval_windows(items, self.clips, self.cfg, self.sources.backgrounds, seed)
        return self.embedder.head_inputs(windows)
