"""Wake words on a frozen speech embedding (issue 16, item 5): an experiment, no product code.

    python -m bench.bench_embedding [--augment 5] [--epochs 30] [--quick] [--synth-data DIR]
        [--embedding-tflite bench/out/embedding/embedding_int8.tflite] [--render]

Does Google's speech_embedding (Apache-2.0 as Google released it; here the ``melspectrogram.onnx`` + ``embedding_model.onnx``
shipped in the ``openwakeword==0.4.0`` wheel, used as frozen feature extractors only: no openWakeWord
wake-word model is loaded) with a small head trained on *our* synthesized clips and real negative
speech reach issue 16's target (>= 90% of real clips detected at <= 0.5 FA/h of held-out real running
speech)? The data and the test follow ``bench.bench_wakeword``:

* training keywords: the kws-synth clips of ``snowboy`` and ``smart-mirror`` in
  ``/work/main/bench/out/wakeword/data`` (read only; its training and validation splits), placed at the
  end of the head's 1.95 s window in ``noise/speech_commands`` at 5-30 dB SNR with a random level;
  its ``_unknown_`` clips and noise-only windows are negatives;
* real negatives: ``running_speech/`` sorted by name, the first 60% (bench_wakeword's split) for training
  and calibration, the last 40% only to count false accepts. Two recipes: ``split`` trains the head on the
  first two thirds of those 60% and calibrates on the last third (never trained on); ``all`` trains and
  calibrates on all of the 60%;
* thresholds: ``kws.evaluation.calibrate.calibrate`` (what ``kws-eval --calibrate --negatives`` runs) for
  0.5 FA/h on the calibration speech, with the FRR side from a stream of the synthesized *testing* split
  (voices never trained on) in the training noise; never on the test audio;
* test: every real clip of ``speech/snowboy`` and ``speech/smart_mirror`` once in ``noise/mycroft`` at
  5-20 dB SNR (``build_clip_stream``, seed as bench_wakeword), scored every 80 ms and smoothed by
  ``kws.edge.smoothing.PosteriorSmoother`` (2 s refractory), matched +-1.5 s by ``streaming_report``.

Framing (learned from openwakeword 0.4.0's ``utils.AudioFeatures``, reimplemented here): 16 kHz audio at
int16 scale; the mel model turns 1760 samples (80 ms of new audio plus 30 ms of lookback) into 8 frames
of 32 mel bins (10 ms hop, 512-sample STFT frames, 10 log10 power clipped 80 dB below the call's peak), transformed x/10 + 2; the embedding model turns
76 mel frames (0.775 s) into one 96-dim vector, every 8 frames (80 ms); the head sees the last 16
embeddings (1.95 s of audio). Streams are computed chunk by chunk exactly as a streaming device would.

Heavy steps (embeddings) are cached in bench/out/embedding/; each run adds its entry (``main`` + ``--tag``) to
bench/out/embedding/results.json, and ``--render`` writes bench/results/embedding.md from all of them
(then ``python -m bench.collect`` rebuilds docs/BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench import bench_wakeword as bw

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "out" / "embedding"
RESULTS = ROOT / "results" / "embedding.md"
SYNTH_DATA = Path("/work/main/bench/out/wakeword/data")
SR = 16000
LOOKBACK = 480           # samples of the previous chunk the mel model sees again (3 frames of 10 ms)
CHUNK = 1280             # 80 ms: new samples per mel call, and the embedding step
MEL_PER_CHUNK = 8
MEL_WINDOW = 76          # mel frames per embedding
MEL_STEP = 8
DIM = 96
HEAD_FRAMES = 16         # embeddings the head sees
HOP_S = CHUNK / SR
# one head window: the lookback + the 25 chunks whose mel frames feed 16 embeddings
WIN = LOOKBACK + (HEAD_FRAMES - 1 + (MEL_WINDOW + MEL_STEP - 1) // MEL_STEP) * CHUNK   # 32480
# x index where the newest embedding's audio ends: (8*15 + 75) * 160 + 512
WIN_END = ((HEAD_FRAMES - 1) * MEL_STEP + MEL_WINDOW - 1) * 160 + 512                   # 31712
LABELS = ("_unknown_", "snowboy", "smart-mirror")
WORDS = bw.WORDS
SMOOTHING_WINDOWS_MS = (160.0, 240.0, 400.0)
SUPPRESSION_MS = 2000.0
THRESHOLD_GRID = tuple(np.round(np.concatenate([np.arange(0.30, 0.899, 0.025), np.arange(0.90, 0.99, 0.01),
                                                [0.99, 0.993, 0.995, 0.997, 0.998, 0.999, 0.9995, 0.9998,
                                                 0.9999]]), 5))
FA_POINTS = (0.5, 1.0, 2.0, 5.0)
NOTES = """
What it means for issue 16 (item 5):

- **Close to the target, not on it.** At the thresholds kws's own calibration chose on training-side speech,
  every head finds 96-100% of the real "snowboy" and 74-99% of the real "smart mirror" clips (94% or more
  in every row but the two with negatives weighted 4x) and makes 1 to 6 false accepts in the 0.60 h of held-out running speech (1.7-10 FA/h). Today's
  synth-only kws model (bench_wakeword, same data and test) found 62.8% / 50.4% at 1614 FA/h, and 0% once
  calibrated for 0.5 FA/h. The target, 0.5 FA/h on 0.60 h, means no false accept at all there; no
  calibrated row reaches it. The best rows (head trained and calibrated on all 0.88 h of training speech):
  96-98% / 94-96% at 1 false accept (1.7 FA/h), with the float embedding and with the int8 one alike.
  For scale, the issue's peers measured for `alexa` on this machine (3 h of other real speech):
  openWakeWord 97.0% at 3.0 FA/h, microWakeWord 93.9% at 0.33 FA/h.
- **The models separate; the thresholds are the weak part.** Read off the held-out speech itself, 4 of
  the 6 heads with unweighted classes have per-word thresholds at which both words are detected at 90% or
  more with no false accept (best: float seed 16 `split`, 99.3% / 98.9%); the calibrated thresholds (0.96-0.9999, where the softmax is saturated) let 1-6 through because 0.3-0.9 h of
  calibration speech with a budget of zero false accepts cannot place a threshold that finely. More real
  negative speech, for training and for calibration, is the next lever (the peers train on thousands of
  hours); items 1, 2 and 4 of the issue (negatives, mining, calibrating on negatives) apply unchanged to
  this family. One false accept is 1.7 FA/h on this test: a claim of 0.5 FA/h needs several hours of
  held-out speech.
- **Runs on the edge runtimes, not on microcontrollers.** The embedding converts with kws's own
  converter to a full-integer int8 TFLite of 387 KiB with builtin ops only (tflite-runtime 2.14 runs them
  all), and a head trained on the int8 embeddings does as well as on the float ones (`all`: 98.0% / 95.7%
  at 1 false accept). The whole front end
  costs RTF 0.009-0.010 with the int8 embedding on LiteRT (2x kws's default streaming tcn pipeline at 0.0045, 3.5x its 0.0028 now; ONNX float
  0.022-0.035), but 42 M MACs per 80 ms (0.52 G MAC/s; kws's ds_cnn is 20.8 M MACs
  per whole 1 s inference) is more than a Cortex-M4/M7 sustains (an estimate, not measured here): an optional family for Linux-class devices (Raspberry Pi and up), with the default
  microcontroller model unchanged, as item 5 says. The mel model (an STFT as two 512-tap convolutions,
  32 mel bins, log and an 80 dB clip per 80 ms call) would need to be ported to kws's frontend (C and
  Python) or converted too; it was not converted here.
- **Decision: build the optional `embedding` family**, with the licensing settled first (next bullet). It is
  the only change measured on this machine that takes synth-only wake words from unusable (1614 FA/h) to
  about 1-2 FA/h at 94-98% detection of real speakers. Never ship or load openWakeWord's own wake-word
  models (alexa, hey_jarvis, ... in the same folder).
- **License of the two feature files: not as clear as the issue assumed.** The wheel's code license is
  Apache-2.0 (its LICENSE file and classifier), and its README (the wheel's METADATA) describes the embedding
  as Google's speech_embedding, "provided by Google as a TFHub module under an Apache-2.0 license" and
  "manually re-implemented" by openWakeWord, and the mel model as "an ONNX implementation of Torch's
  melspectrogram function with fixed parameters". But the same README's License section says "All of the
  included pre-trained models are licensed under the Creative Commons Attribution-NonCommercial-ShareAlike 4.0
  International license", without exempting these two files. Before kws ships them, either get the
  weights from Google's speech_embedding release (Apache-2.0) and check they match
  `embedding_model.onnx` (the Keras rebuild here loads such weights directly) and compute the mel frames
  with our own code (an STFT and a mel matrix with fixed parameters), or get the maintainer's word that
  these two files are Apache-2.0. This experiment only measured them.

Also seen:

- Weighting the negative class 4x made things worse, not better (smart mirror 74-84% at 3.3-8.4 FA/h):
  its calibrated thresholds went to the grid's ends (0.45 and 0.9999).
- Head training matters at the level of single false accepts: the same data with head seed 17 instead of
  16 gives 98.3% / 95.4% at 1 false accept (`all`) where seed 16 gave 96.0% / 94.3% at 1, and 0 instead of
  69 unmatched detections in the real-clip noise stream (counted against the words, wrong-word matches
  included: snowboy 55, smart mirror 26; the other heads make 0-2 there, the 4x-weighted `split` head 15).
  Runs are deterministic for a given seed: the first float run (computing every embedding, 1083 s wall at
  load 6.6-9.5) and its rerun from the cache gave identical rows, and so did two int8 runs.
- One moment decides the pass: the single false accept of every `all` head (float seeds 16 and 17, int8;
  "snowboy", averages 0.973-0.993) is the same 0.1 s of one held-out recording
  (`s2i_a4c92d83-15b4-4be2-8e91-71a1b8e09d19.flac` at 9.4-9.7 s), and all 8 heads fire there
  (`python -m bench.embedding_false_accepts` lists every head's false accepts). The running speech is one domain (spoken coffee orders), so FA/h on other speech
  (TV, conversation) is not measured here.
- Scores saturate: with the seed-16 `all` head no real snowboy clip reaches an average of 0.98, while
  97.0% reach 0.97, so a calibration grid step near 1 can switch a word off.
- The mel model's 80 dB clip is taken per call, so a clip's mel computed in one call differs slightly from
  the streaming computation; everything here (training windows included) is computed the streaming way,
  80 ms per call.
"""


def models_dir() -> Path:
    """The openwakeword wheel's resources folder, found without importing openwakeword (its
    __init__ pulls in scikit-learn, which the feature models do not need)."""
    import importlib.util

    spec = importlib.util.find_spec("openwakeword")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs openwakeword==0.4.0 in this venv: pip install --no-deps openwakeword==0.4.0 onnxruntime")
    return Path(list(spec.submodule_search_locations)[0]) / "resources" / "models"


def wheel_info() -> dict:
    from importlib.metadata import distribution

    d = distribution("openwakeword")
    lic = [c for c in (d.metadata.get_all("Classifier") or []) if c.startswith("License")]
    return {"version": d.version, "license": lic, "models_dir": str(models_dir())}


class Frontend:
    """mel + speech_embedding through onnxruntime on one thread."""

    def __init__(self, threads: int = 1, tflite: Path | None = None):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = threads
        d = models_dir()
        self.mel_sess = ort.InferenceSession(str(d / "melspectrogram.onnx"), so, providers=["CPUExecutionProvider"])
        self.emb_sess = ort.InferenceSession(str(d / "embedding_model.onnx"), so, providers=["CPUExecutionProvider"])
        self.it = None
        self.cache_suffix = ""
        if tflite:  # the embedding as a TFLite model (bench.embedding_tflite), run by ai-edge-litert
            from ai_edge_litert.interpreter import Interpreter

            self.it = Interpreter(model_path=str(tflite), num_threads=threads)
            self.it.allocate_tensors()
            self.cache_suffix = "_" + Path(tflite).stem
            self._in, self._out = self.it.get_input_details()[0], self.it.get_output_details()[0]

    def embed_one(self, window: np.ndarray) -> np.ndarray:
        """(96,) embedding of one (76, 32) mel window."""
        if self.it is None:
            return self.emb_sess.run(None, {"input_1": window[None, :, :, None]})[0].reshape(DIM)
        i, o = self._in, self._out
        x = window[None, :, :, None]
        if i["dtype"] == np.int8:
            sc, z = i["quantization"]
            x = np.clip(np.round(x / sc + z), -128, 127).astype(np.int8)
        self.it.set_tensor(i["index"], x.astype(i["dtype"]))
        self.it.invoke()
        y = self.it.get_tensor(o["index"]).reshape(DIM)
        if o["dtype"] == np.int8:
            sc, z = o["quantization"]
            y = (y.astype(np.float32) - z) * sc
        return y

    def mel(self, x: np.ndarray) -> np.ndarray:
        """(chunks * 8, 32) mel frames of ``x`` (int16 scale, starting with LOOKBACK samples of
        lookback), one model call per 80 ms chunk as in streaming (the model's dynamic-range
        clipping is per call, so this matches a device fed 80 ms at a time)."""
        n = (len(x) - LOOKBACK) // CHUNK
        out = []
        for b in range(0, n, 256):
            idx = np.arange(b, min(n, b + 256))[:, None] * CHUNK + np.arange(LOOKBACK + CHUNK)[None]
            m = self.mel_sess.run(None, {"input": x[idx].astype(np.float32)})[0]
            out.append(m.reshape(-1, 32))
        if not out:
            return np.zeros((0, 32), np.float32)
        return (np.concatenate(out) / 10.0 + 2.0).astype(np.float32)

    def embed(self, mel: np.ndarray, batch: int = 64) -> np.ndarray:
        """(M, 96) embeddings of every 76-frame window, stepped by 8 frames."""
        m = (len(mel) - MEL_WINDOW) // MEL_STEP + 1
        if m <= 0:
            return np.zeros((0, DIM), np.float32)
        idx = np.arange(m)[:, None] * MEL_STEP + np.arange(MEL_WINDOW)[None]
        if self.it is not None:
            return np.stack([self.embed_one(mel[j]) for j in idx]).astype(np.float32)
        out = [self.emb_sess.run(None, {"input_1": mel[idx[b:b + batch]][..., None]})[0].reshape(-1, DIM)
               for b in range(0, m, batch)]
        return np.concatenate(out)

    def stream(self, audio: np.ndarray) -> np.ndarray:
        """Embeddings of a recording (float in [-1, 1]) as a device started on silence computes them:
        15 embeddings' worth of zeros first, so that row i + 15 ends the head window whose newest
        audio is chunk i + 10 (score time (i + 10) * 80 ms)."""
        x = np.concatenate([np.zeros(LOOKBACK + (HEAD_FRAMES - 1) * CHUNK, np.float32),
                            np.asarray(audio, np.float32) * 32767.0])
        return self.embed(self.mel(x))


def window_embeddings(fe: Frontend, xs: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(xs), HEAD_FRAMES, DIM), np.float32)
    for i, x in enumerate(xs):
        e = fe.embed(fe.mel(x))
        assert len(e) == HEAD_FRAMES, (len(e), len(x))
        out[i] = e
    return out


def score_times(n_rows: int) -> np.ndarray:
    """Stream time (s) of each head score of ``Frontend.stream`` rows 15.. (when its chunk is complete)."""
    return (np.arange(HEAD_FRAMES - 1, n_rows) - (HEAD_FRAMES - 1) + 10) * HOP_S


def head_windows(emb: np.ndarray) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    if len(emb) < HEAD_FRAMES:
        return np.zeros((0, HEAD_FRAMES, DIM), np.float32)
    return sliding_window_view(emb, (HEAD_FRAMES, DIM))[:, 0]


# ---------------------------------------------------------------- data

def load(path: Path) -> np.ndarray:
    from kws.edge.audio import load_audio

    return load_audio(path, SR)[0].astype(np.float32)


def synth_splits() -> dict[str, dict[str, list[Path]]]:
    """{split: {label: [paths]}} of the kws-synth data (label _unknown_ for every non-keyword folder)."""
    val = set((SYNTH_DATA / "validation_list.txt").read_text().split())
    test = set((SYNTH_DATA / "testing_list.txt").read_text().split())
    out: dict[str, dict[str, list[Path]]] = {"train": {}, "validation": {}, "testing": {}}
    for sub in sorted(p for p in SYNTH_DATA.iterdir() if p.is_dir() and p.name != "_background_noise_"):
        label = sub.name if sub.name in WORDS else "_unknown_"
        for f in sorted(sub.glob("*.wav")):
            rel = f"{sub.name}/{f.name}"
            split = "validation" if rel in val else "testing" if rel in test else "train"
            out[split].setdefault(label, []).append(f)
    return out


def running_files(limit: tuple[int, int] | None) -> tuple[list[Path], list[Path]]:
    files = sorted((bw.SHARED / bw.RUNNING_SPEECH).glob("*.flac"))
    cut = int(round(len(files) * bw.TRAIN_SHARE))
    train, test = files[:cut], files[cut:]
    if limit:
        train, test = train[:limit[0]], test[:limit[1]]
    return train, test


def cached_stream_embeddings(fe: Frontend, files: list[Path], name: str) -> dict[str, np.ndarray]:
    """{file name: embeddings} for whole recordings, cached in OUT/name.npz; also the durations."""
    path = OUT / f"{name}{fe.cache_suffix}.npz"
    if path.is_file():
        data = dict(np.load(path))
        if all(f.name in data for f in files):
            return data
    data, t0 = {}, time.process_time()
    for i, f in enumerate(files):
        audio = load(f)
        data[f.name] = fe.stream(audio)
        data[f.name + ":duration"] = np.array(len(audio) / SR)
        if i % 50 == 0:
            print(f"  {name}: {i}/{len(files)} files, {time.process_time() - t0:.0f} s CPU", flush=True)
    np.savez(path, **data)
    return data


def place(clip: np.ndarray, noise: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float],
          end_jitter_s: float) -> np.ndarray:
    """One WIN-sample window (int16 scale): ``clip``'s speech ends end_jitter (0..max) before the
    newest embedding's end, in noise at an SNR from ``snr_db``, at a random level."""
    from kws.evaluation.stream import rms, speech_bounds

    s0, s1 = speech_bounds(clip, SR)
    end = WIN_END - int(rng.uniform(0, end_jitter_s) * SR)
    start = end - s1
    x = noise.copy()
    seg = clip
    if start < 0:
        seg, start = clip[-start:], 0
    speech_rms = rms(clip[s0:s1]) or 1e-4
    snr = rng.uniform(*snr_db)
    gain = rms(noise) * 10 ** (snr / 20) / speech_rms
    x[start:start + len(seg)] += gain * seg[:WIN - start]
    level = 10 ** (rng.uniform(-20, 0) / 20) * 0.9 / max(1e-6, float(np.abs(x).max()))
    return np.clip(x * level, -1, 1) * 32767.0


def noise_piece(noises: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    from kws.evaluation.stream import noise_bed

    return noise_bed(noises, WIN, rng).astype(np.float32) * bw_noise_rms(rng)


def bw_noise_rms(rng: np.random.Generator) -> float:
    return float(10 ** (rng.uniform(-50, -20) / 20))


def training_windows(fe: Frontend, augment: int, unknown_augment: int, noise_windows: int, seed: int) -> dict:
    """Head inputs from the synthesized train+validation clips (cached)."""
    path = OUT / f"synth_a{augment}_u{unknown_augment}_n{noise_windows}_s{seed}{fe.cache_suffix}.npz"
    if path.is_file():
        return dict(np.load(path))
    from kws.evaluation.stream import load_noise

    rng = np.random.default_rng(seed)
    noises = load_noise(bw.SHARED / bw.TRAIN_NOISE, SR, rng)
    splits = synth_splits()
    xs, ys, t0 = [], [], time.process_time()
    for split in ("train", "validation"):
        for label, files in sorted(splits[split].items()):
            k = augment if label in WORDS else unknown_augment
            for f in files:
                clip = load(f)
                for _ in range(k):
                    xs.append(place(clip, noise_piece(noises, rng), rng, (5.0, 30.0), 0.4))
                    ys.append(LABELS.index(label))
    for _ in range(noise_windows):
        xs.append(np.clip(noise_piece(noises, rng) * rng.uniform(0.3, 3.0), -1, 1) * 32767.0)
        ys.append(0)
    print(f"  synthesized windows: {len(xs)} ({np.bincount(ys, minlength=3).tolist()} per label), embedding ...",
          flush=True)
    x = window_embeddings(fe, xs)
    print(f"  {len(xs)} windows in {time.process_time() - t0:.0f} s CPU", flush=True)
    data = {"x": x, "y": np.array(ys, np.int64)}
    np.savez(path, **data)
    return data


def calibration_stream(fe: Frontend, seed: int = 1) -> dict:
    """Every synthesized *testing* keyword clip once in the training noise (its FRR side of the
    calibration), embedded (cached)."""
    path = OUT / f"calibration_stream{fe.cache_suffix}.npz"
    if path.is_file():
        d = dict(np.load(path, allow_pickle=False))
        d["events"] = json.loads(str(d["events"]))
        return d
    from kws.evaluation.stream import build_clip_stream, load_noise

    splits = synth_splits()
    clips = {w: [load(f) for f in splits["testing"][w]] for w in WORDS}
    noises = load_noise(bw.SHARED / bw.TRAIN_NOISE, SR, np.random.default_rng(seed))
    audio, events = build_clip_stream(clips, noises, (5.0, 20.0), SR, seed=seed)
    emb = fe.stream(audio)
    ev = [[e.label, e.start_s, e.end_s] for e in events]
    np.savez(path, emb=emb, duration=np.array(len(audio) / SR), events=np.array(json.dumps(ev)))
    return {"emb": emb, "duration": np.array(len(audio) / SR), "events": ev}


def test_stream(fe: Frontend, limit: int | None) -> dict:
    """bench_wakeword's test: every real wake-word clip once in noise/mycroft at 5-20 dB (cached)."""
    path = OUT / (("test_stream_quick" if limit else "test_stream") + fe.cache_suffix + ".npz")
    if path.is_file():
        d = dict(np.load(path, allow_pickle=False))
        d["events"] = json.loads(str(d["events"]))
        return d
    from kws.evaluation.stream import build_clip_stream, load_clips, load_noise

    bw.OUT = OUT
    real = bw.real_keyword_folder(limit)
    clips = load_clips(real, list(WORDS), SR)
    noises = load_noise(bw.SHARED / bw.TEST_NOISE, SR, np.random.default_rng(bw.TEST_SEED))
    audio, events = build_clip_stream(clips, noises, bw.TEST_SNR_DB, SR, seed=bw.TEST_SEED)
    print(f"  test stream: {len(audio) / SR / 3600:.2f} h, {len(events)} real clips; embedding ...", flush=True)
    t0 = time.process_time()
    emb = fe.stream(audio)
    print(f"  test stream embedded in {time.process_time() - t0:.0f} s CPU", flush=True)
    ev = [[e.label, e.start_s, e.end_s] for e in events]
    np.savez(path, emb=emb, duration=np.array(len(audio) / SR), events=np.array(json.dumps(ev)))
    return {"emb": emb, "duration": np.array(len(audio) / SR), "events": ev}


def events_of(rows) -> list:
    from kws.evaluation.stream import Event

    return [Event(l, float(a), float(b)) for l, a, b in rows]


# ---------------------------------------------------------------- head

def build_head(hidden: int, dropout: float):
    import keras

    inp = keras.Input((HEAD_FRAMES, DIM))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    out = keras.layers.Dense(len(LABELS), activation="softmax")(x)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def train_head(x: np.ndarray, y: np.ndarray, args, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    # each class the same total weight, then the negative class args.negative_weight times that
    w = (len(y) / (len(LABELS) * counts))[y]
    w[y == 0] *= args.negative_weight
    model = build_head(args.hidden, args.dropout)
    model.fit(x, y, sample_weight=w.astype(np.float32), epochs=args.epochs, batch_size=256, shuffle=True, verbose=0)
    return model


def predict(model, emb: np.ndarray) -> np.ndarray:
    win = head_windows(emb)
    if not len(win):
        return np.zeros((0, len(LABELS)), np.float32)
    return np.concatenate([model.predict_on_batch(np.ascontiguousarray(win[b:b + 4096]))
                           for b in range(0, len(win), 4096)])


# ---------------------------------------------------------------- measuring

def manifest(window_ms: float, thresholds: dict | None = None):
    from kws.edge.frontend import FrontendConfig
    from kws.edge.manifest import Manifest, SmoothingConfig

    sm = SmoothingConfig(average_window_ms=window_ms, hop_ms=HOP_S * 1000, suppression_ms=SUPPRESSION_MS,
                         minimum_span_ms=min(80.0, window_ms))
    return Manifest(labels=LABELS, frontend=FrontendConfig(), smoothing=sm, thresholds=dict(thresholds or {}))


def scored(model, data: dict[str, np.ndarray], files: list[Path]):
    from kws.evaluation.scoring import ScoredAudio

    parts = []
    for f in files:
        emb = data[f.name]
        s = predict(model, emb)
        parts.append(ScoredAudio(times=score_times(len(emb)), scores=s,
                                 duration_s=float(data[f.name + ":duration"]), source=f.name))
    return parts


def stream_report(times, scores, events, duration, man, thresholds):
    from kws.evaluation.scoring import smooth
    from kws.evaluation.streaming_metrics import streaming_report

    return streaming_report(smooth(times, scores, man, man.smoothing, thresholds), events, duration, list(WORDS))


def run_recipe(name: str, model, cal_parts, test_parts, cal_stream, test, args) -> dict:
    """Calibrate (kws's calibrate, negatives = cal_parts), then measure on the real test."""
    from kws.evaluation.calibrate import calibrate
    from kws.evaluation.scoring import negatives_false_accepts

    t0 = time.time()
    man = manifest(SMOOTHING_WINDOWS_MS[0])
    cs = predict(model, cal_stream["emb"])
    ct = score_times(len(cal_stream["emb"]))
    try:
        cal = calibrate(ct, cs, man, events_of(cal_stream["events"]), float(cal_stream["duration"]),
                        bw.TARGET_FA_PER_HOUR, grid=THRESHOLD_GRID, windows=SMOOTHING_WINDOWS_MS, negatives=cal_parts)
    except Exception as e:  # KwsError: no threshold meets the target
        return {"recipe": name, "failed": str(e)}
    th, window = cal["thresholds"], cal["average_window_ms"]
    man = manifest(window, th)
    ts = predict(model, test["emb"])
    tt = score_times(len(test["emb"]))
    tev = events_of(test["events"])
    rep = stream_report(tt, ts, tev, float(test["duration"]), man, th)
    fa = negatives_false_accepts(test_parts, man, th, man.smoothing)
    row = {"recipe": name, "thresholds": th, "window_ms": window,
           "cal_fa_per_hour": cal["negatives"]["fa_per_hour"], "cal_hours": cal["negatives"]["hours"],
           "cal_synth_frr": cal["report"]["frr"],
           "detection": {w: rep["per_label"][w]["detected"] / rep["per_label"][w]["keywords"] for w in WORDS},
           "clips": {w: rep["per_label"][w]["keywords"] for w in WORDS},
           "noise_fa": rep["false_accepts"],
           "noise_fa_per_label": {w: rep["per_label"][w]["false_accepts"] for w in WORDS}, "noise_free_hours": rep["keyword_free_hours"],
           "test_fa": fa["false_accepts"], "test_hours": fa["hours"], "test_fa_per_hour": fa["fa_per_hour"],
           "test_fa_per_label": fa["per_label"]}
    # the operating curve on the held-out speech (a characterisation, chosen on the test audio): per
    # word, the lowest threshold at which that word alone fires at most X times per hour there
    curve = {}
    for w in WORDS:
        other = [o for o in WORDS if o != w][0]
        pts = []
        for th_w in THRESHOLD_GRID:
            t = {w: float(th_w), other: 1.0}
            f = negatives_false_accepts(test_parts, man, t, man.smoothing)
            pts.append((float(th_w), f["fa_per_hour"]))
        best = {}
        for x in FA_POINTS:
            ok = [t for t, f in pts if f <= x]
            if ok:
                t = min(ok)
                r = stream_report(tt, ts, tev, float(test["duration"]), man, {w: t, other: 1.0})
                best[str(x)] = {"threshold": t, "detected": r["per_label"][w]["detected"] / r["per_label"][w]["keywords"],
                                "fa_per_hour": dict(pts)[t]}
        curve[w] = best
    row["curve"] = curve
    row["seconds"] = round(time.time() - t0, 1)
    return row


def frontend_cost(fe: Frontend, audio: np.ndarray, head) -> dict:
    """CPU seconds per audio second, one thread, fed 80 ms at a time as a device would: one mel call
    on 1760 samples, one embedding call on the newest 76 frames, the head on the newest 16 embeddings
    (numpy, from the Keras weights)."""
    x = np.concatenate([np.zeros(LOOKBACK, np.float32), audio * 32767.0]).astype(np.float32)
    ws = [w for w in head.get_weights()]
    mel_buf = np.zeros((MEL_WINDOW, 32), np.float32)
    emb_buf = np.zeros((HEAD_FRAMES, DIM), np.float32)
    n = (len(x) - LOOKBACK) // CHUNK
    t_mel = t_emb = t_head = 0.0
    for i in range(n):
        c0 = time.process_time()
        m = fe.mel_sess.run(None, {"input": x[None, i * CHUNK:i * CHUNK + LOOKBACK + CHUNK]})[0].reshape(-1, 32)
        mel_buf = np.concatenate([mel_buf[MEL_PER_CHUNK:], m / 10.0 + 2.0])
        c1 = time.process_time()
        e = fe.embed_one(mel_buf)
        emb_buf = np.concatenate([emb_buf[1:], e[None]])
        c2 = time.process_time()
        h = emb_buf.reshape(1, -1)
        h = np.maximum(h @ ws[0] + ws[1], 0)
        h = np.maximum(h @ ws[2] + ws[3], 0)
        z = h @ ws[4] + ws[5]
        p = np.exp(z - z.max())
        p /= p.sum()
        c3 = time.process_time()
        t_mel, t_emb, t_head = t_mel + c1 - c0, t_emb + c2 - c1, t_head + c3 - c2
    secs = n * HOP_S
    return {"audio_s": round(secs, 1), "mel_rtf": round(t_mel / secs, 5), "embedding_rtf": round(t_emb / secs, 5),
            "head_rtf": round(t_head / secs, 5), "total_rtf": round((t_mel + t_emb + t_head) / secs, 5),
            "per_hop_ms": round(1000 * (t_mel + t_emb + t_head) / n, 3)}


def model_costs() -> dict:
    """Sizes, parameters and MACs of the two ONNX models (MACs from ONNX shape inference, one call:
    mel on 1760 samples, embedding on 76x32 frames)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    out = {}
    for name, shape in (("melspectrogram", [1, LOOKBACK + CHUNK]), ("embedding_model", [1, MEL_WINDOW, 32, 1])):
        p = models_dir() / f"{name}.onnx"
        m = onnx.load(str(p))
        for d, v in zip(m.graph.input[0].type.tensor_type.shape.dim, shape):
            d.ClearField("dim_param")
            d.dim_value = v
        m = shape_inference.infer_shapes(m)
        shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
                  for vi in list(m.graph.value_info) + list(m.graph.output) + list(m.graph.input)}
        inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
        macs = 0
        for n in m.graph.node:
            if n.op_type == "Conv":
                w = inits[n.input[1]]
                o = shapes.get(n.output[0])
                if o:
                    macs += int(np.prod(o)) * int(np.prod(w.shape[1:]))
            elif n.op_type == "MatMul" and n.input[1] in inits:
                w = inits[n.input[1]]
                a = shapes.get(n.input[0])
                if a:
                    macs += int(np.prod(a[:-1])) * w.shape[0] * w.shape[1]
        out[name] = {"bytes": p.stat().st_size, "params": int(sum(v.size for v in inits.values())),
                     "macs_per_call": macs, "macs_per_second": int(macs * SR / CHUNK)}
    return out



def variant(entry: dict) -> str:
    st = entry["settings"]
    parts = ["int8 TFLite embedding (LiteRT)" if st.get("embedding_tflite") else "float embedding (onnxruntime)"]
    if st.get("head_seed") is not None:
        parts.append(f"head seed {st['head_seed']}")
    if st.get("negative_weight", 1.0) != 1.0:
        parts.append(f"negatives weighted x{st['negative_weight']:g}")
    return ", ".join(parts)


def render(results: dict, tflite: dict | None, notes: str = "") -> str:
    """bench/results/embedding.md: every run in results.json side by side."""
    def pct(x):
        return f"{100 * x:.1f}%"
    entries = list(results.values())
    first = entries[0]
    h, st = first["hours"], first["settings"]
    lines = ["## Wake words on a frozen speech embedding (experiment)", "",
             "Command" + ("s" if len(entries) > 1 else "") + ": " + ", ".join(
                 f"`{e['command'].strip()}` (1-minute load average {e['load_start'][0]:.1f} at the start, "
                 f"{e['load_end'][0]:.1f} at the end, {e['wall_s']:.0f} s wall{e.get('cached_note', '')})" for e in entries)
             + f"; `python -m bench.embedding_tflite` made the int8 embedding. {first['machine']}, shared with other jobs. "
             "Needs, in .venv, `pip install onnxruntime onnx` and `pip install --no-deps openwakeword==0.4.0` (only the "
             "wheel's files are used; openwakeword itself is never imported), and bench_wakeword's synthesized data "
             "(`--synth-data`, default /work/main/bench/out/wakeword/data, read only).",
             "",
             "Front end: Google's speech_embedding as shipped in the `openwakeword==0.4.0` wheel on PyPI "
             "(`openwakeword/resources/models/melspectrogram.onnx` and `embedding_model.onnx`; licenses: see the "
             "last bullet below), frozen; none of openWakeWord's wake-word models is used. 16 kHz audio at int16 scale, "
             "mel frames every 10 ms (x/10 + 2), one 96-dim embedding per 76 mel frames every 80 ms, computed chunk "
             "by chunk as on a device. "
             f"Head: Flatten(16 x 96) -> Dense {st['hidden']} -> Dense {st['hidden']} -> softmax over _unknown_, "
             f"snowboy, smart-mirror ({first['rows'][0]['head_params']:,} parameters, {st['epochs']} epochs, classes "
             f"weighted equally), over the last 16 embeddings (1.95 s). Training data, the same as bench_wakeword's: "
             f"the kws-synth clips (train and validation splits) of both words, each x{st['augment']} at the end of "
             f"the window in noise/speech_commands at 5-30 dB SNR and a random level, _unknown_ x{st['unknown_augment']}, "
             f"{st['noise_windows']} noise-only windows ({first['rows'][0]['train_windows']['synth']} windows), plus "
             "every 80 ms window of the training running speech as negatives. Thresholds: kws's `calibrate` (what "
             "`kws-eval --calibrate --negatives` runs) for 0.5 FA/h on the calibration speech, window 160/240/400 ms, "
             "2 s refractory, the false-reject side from a stream of the synthesized testing split "
             f"({first['cal_stream']['clips']} clips by voices never trained on). Running speech split as in "
             f"bench_wakeword: the first 60% of `running_speech/` ({first['files']['train_a'] + first['files']['train_b']} "
             f"files, {h['train_a'] + h['train_b']:.2f} h) for training and calibration, the last 40% "
             f"({first['files']['test']} files, {h['test']:.2f} h) only for counting false accepts. Recipe `split`: "
             f"head trained on the first two thirds of the 60% ({h['train_a']:.2f} h), calibrated on the last third "
             f"({h['train_b']:.2f} h, never trained on); `all`: trained and calibrated on all of it. Test: "
             f"every real clip of speech/snowboy and speech/smart_mirror once in noise/mycroft at 5-20 dB SNR "
             f"({first['test_clips']} clips, {first['test_stream_hours']:.2f} h stream, bench_wakeword's seed), "
             "matched +-1.5 s.",
             "",
             "| embedding | recipe | calibrated on (FA/h there) | thresholds (window) | snowboy detected | "
             "smart-mirror detected | FA/h held-out running speech | false accepts in the noise stream | meets target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        for r in e["rows"]:
            if "failed" in r:
                lines.append(f"| {variant(e)} | {r['recipe']} | {r['failed']} | - | - | - | - | - | no |")
                continue
            cal = f"{'last third' if r['recipe'] == 'split' else 'all'} of the 60%, {r['cal_hours']:.2f} h ({r['cal_fa_per_hour']})"
            th = ", ".join(f"{k} {v:g}" for k, v in r["thresholds"].items())
            ok = r["test_fa_per_hour"] <= 0.5 and min(r["detection"].values()) >= 0.9
            nfa = r.get("noise_fa_per_label")
            noise = f"{r['noise_fa']} in {r['noise_free_hours']:.2f} h" + (
                " (" + ", ".join(f"{k} {v}" for k, v in nfa.items()) + ")" if nfa else "")
            lines.append(f"| {variant(e)} | {r['recipe']} | {cal} | {th} ({r['window_ms']:g} ms) | "
                         f"{pct(r['detection']['snowboy'])} (n={r['clips']['snowboy']}) | "
                         f"{pct(r['detection']['smart-mirror'])} (n={r['clips']['smart-mirror']}) | "
                         f"**{r['test_fa_per_hour']}** ({r['test_fa']} in {r['test_hours']:.2f} h) | {noise} | "
                         f"{'yes' if ok else 'no'} |")
    lines += ["", "Operating points read off the held-out running speech itself (per word, the other word switched "
              "off: detection at the lowest grid threshold where that word fires at most X times per hour there). "
              "These thresholds are chosen on the test audio, so they describe what the model can separate, not "
              "what a user gets; with 0.60 h, one false accept is 1.67 FA/h.", "",
              "| embedding | recipe | word | <= 0.5 FA/h (0 FA) | <= 2 FA/h (1 FA) | <= 5 FA/h (3 FA) |",
              "|---|---|---|---|---|---|"]
    for e in entries:
        for r in e["rows"]:
            for w, pts in (r.get("curve") or {}).items():
                cells = []
                for x in ("0.5", "2.0", "5.0"):
                    p = pts.get(x)
                    cells.append(f"{pct(p['detected'])} (th {p['threshold']:g}, {p['fa_per_hour']})" if p else "-")
                lines.append(f"| {variant(e)} | {r['recipe']} | {w} | " + " | ".join(cells) + " |")
    lines.append("")
    for e in entries:
        c = e["cost"]
        lines.append(f"- Cost per audio second, {variant(e)}, one thread, fed 80 ms at a time ({c['audio_s']:g} s of "
                     f"running speech): mel {c['mel_rtf']}, embedding {c['embedding_rtf']}, head (numpy) "
                     f"{c['head_rtf']}: **RTF {c['total_rtf']}** ({c['per_hop_ms']} ms CPU per 80 ms hop). "
                     f"kws's default int8 tcn, streaming, with its frontend: RTF 0.0045 at a 40 ms hop, 0.0028 at 30 ms after issue 15's changes (bench_edge).")
    m = first["models"]
    lines.append(f"- Models: melspectrogram.onnx {m['melspectrogram']['bytes'] / 1024:.0f} KiB, "
                 f"{m['melspectrogram']['params']:,} parameters (an STFT as two 512-tap convolutions and a mel matrix), "
                 f"{m['melspectrogram']['macs_per_second'] / 1e6:.0f} M MAC/s; embedding_model.onnx "
                 f"{m['embedding_model']['bytes'] / 1024:.0f} KiB, {m['embedding_model']['params']:,} parameters, "
                 f"{m['embedding_model']['macs_per_call'] / 1e6:.1f} M MACs per embedding, "
                 f"{m['embedding_model']['macs_per_second'] / 1e6:.0f} M MAC/s at one embedding per 80 ms; head "
                 f"{first['rows'][0]['head_params']:,} parameters ({first['rows'][0]['head_params'] / 1e6 * 12.5:.1f} M MAC/s).")
    if tflite:
        t = tflite
        lines.append(f"- TFLite (`python -m bench.embedding_tflite`): the embedding network rebuilt in Keras from the ONNX "
                     f"weights matches onnxruntime to {t['keras_vs_onnx']['max_abs']} (max abs); kws's converter makes "
                     f"float {t['float']['bytes'] / 1024:.0f} KiB ({t['float']['cpu_ms_per_embedding']} ms CPU per "
                     f"embedding with ai-edge-litert, one thread) and full-integer int8 {t['int8']['bytes'] / 1024:.0f} KiB "
                     f"({t['int8']['cpu_ms_per_embedding']} ms, RTF {t['int8']['embedding_rtf']}; calibrated on "
                     f"{t['calibration_windows']} mel windows of training speech and synthesized clips), int8 vs "
                     f"onnxruntime on {t['held_windows']} held-out windows: cosine {t['int8']['vs_onnx']['cosine_mean']} "
                     f"(min {t['int8']['vs_onnx']['cosine_min']}), RMS error {100 * t['int8']['vs_onnx']['rms_err_over_rms']:.0f}% "
                     f"of the RMS. int8 ops: {', '.join(t['int8_ops'])}; all within tflite-runtime 2.14's versions"
                     + (f" except {t['int8_unsupported_by_tflite_runtime_2_14']}" if t["int8_unsupported_by_tflite_runtime_2_14"] else "")
                     + ". The mel model (STFT as convolutions, log, dynamic-range clip) was not converted.")
    if notes:
        lines += ["", notes.strip()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main

def main() -> None:
    global OUT, SYNTH_DATA
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--augment", type=int, default=5, help="noisy copies of each synthesized keyword clip")
    ap.add_argument("--unknown-augment", type=int, default=2)
    ap.add_argument("--noise-windows", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--negative-weight", type=float, default=1.0, help="extra weight of the negative class")
    ap.add_argument("--negative-stride", type=int, default=1, help="every Nth head window of the training speech")
    ap.add_argument("--recipes", default="split,all")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--synth-data", type=Path, default=SYNTH_DATA, help="bench_wakeword's kws-synth folder (read only)")
    ap.add_argument("--head-seed", type=int, default=None, help="seed of the head's training only (default --seed)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the results entry (variants side by side)")
    ap.add_argument("--embedding-tflite", type=Path, default=None,
                    help="run the embedding as this TFLite model (e.g. bench/out/embedding/embedding_int8.tflite)")
    ap.add_argument("--render", action="store_true", help="only rewrite bench/results/embedding.md from results.json")
    args = ap.parse_args()
    SYNTH_DATA = args.synth_data
    if args.render:
        results = json.loads((OUT / "results.json").read_text())
        tfl = json.loads((OUT / "tflite.json").read_text()) if (OUT / "tflite.json").is_file() else None
        order = [k for k in ("main", "main_hs17", "main_int8", "main_nw4") if k in results] + sorted(
            k for k in results if k not in ("main", "main_hs17", "main_int8", "main_nw4"))
        text = render({k: results[k] for k in order}, tfl, NOTES)
        RESULTS.write_text(text)
        print(text)
        return
    if args.quick:
        OUT = OUT / "quick"
    OUT.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    load_start = os.getloadavg()
    info = wheel_info()
    print(f"feature models: {info['models_dir']} (openwakeword {info['version']} wheel, {', '.join(info['license'])}); "
          "only melspectrogram.onnx and embedding_model.onnx are loaded (the wheel's README puts 'all of the included "
          "pre-trained models' under CC BY-NC-SA 4.0: see docs/BENCHMARKS.md before shipping them)", flush=True)
    fe = Frontend(threads=1, tflite=args.embedding_tflite)
    cached = (OUT / f"test_stream{fe.cache_suffix}.npz").is_file()
    if args.embedding_tflite:
        print(f"embedding model: {args.embedding_tflite} (ai-edge-litert) instead of embedding_model.onnx", flush=True)
    train_files, test_files = running_files((12, 6) if args.quick else None)
    cut = int(round(len(train_files) * 2 / 3))
    print("embedding running speech ...", flush=True)
    run_train = cached_stream_embeddings(fe, train_files, "running_train" if not args.quick else "running_train_q")
    run_test = cached_stream_embeddings(fe, test_files, "running_test" if not args.quick else "running_test_q")
    print("embedding the real test stream ...", flush=True)
    test = test_stream(fe, 20 if args.quick else None)
    print("embedding the synthesized calibration stream ...", flush=True)
    cal_stream = calibration_stream(fe)
    print("embedding synthesized training windows ...", flush=True)
    syn = training_windows(fe, args.augment if not args.quick else 1, args.unknown_augment if not args.quick else 1,
                           args.noise_windows if not args.quick else 20, args.seed)
    hours = {k: sum(float(d[f.name + ":duration"]) for f in fs) / 3600 for k, d, fs in
             (("train_a", run_train, train_files[:cut]), ("train_b", run_train, train_files[cut:]),
              ("test", run_test, test_files))}
    results_path = OUT / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    rows = []
    for recipe in [r for r in args.recipes.split(",") if r]:
        neg_files = train_files[:cut] if recipe == "split" else train_files
        cal_files = train_files[cut:] if recipe == "split" else train_files
        neg = np.concatenate([head_windows(run_train[f.name])[::args.negative_stride] for f in neg_files])
        x = np.concatenate([syn["x"], neg])
        y = np.concatenate([syn["y"], np.zeros(len(neg), np.int64)])
        print(f"{recipe}: training the head on {len(x)} windows ({np.bincount(y).tolist()} per label) ...", flush=True)
        t0 = time.process_time()
        model = train_head(x, y, args, args.seed if args.head_seed is None else args.head_seed)
        train_s = time.process_time() - t0
        model.save(OUT / f"head_{recipe}{args.tag}.keras")
        del x, y, neg
        cal_parts = scored(model, run_train, cal_files)
        test_parts = scored(model, run_test, test_files)
        row = run_recipe(recipe, model, cal_parts, test_parts, cal_stream, test, args)
        row["train_cpu_s"] = round(train_s, 1)
        row["head_params"] = int(model.count_params())
        row["train_windows"] = {"synth": int(len(syn["y"])), "speech": int(sum(
            len(head_windows(run_train[f.name])[::args.negative_stride]) for f in neg_files))}
        row["neg_hours"] = hours["train_a"] if recipe == "split" else hours["train_a"] + hours["train_b"]
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
        print("  curve:", json.dumps(row.get("curve")), flush=True)
        rows.append(row)
        last_model = model
    cost = frontend_cost(fe, np.concatenate([load(f) for f in test_files[:8]])[:SR * 60], last_model)
    print("front end cost:", cost, flush=True)
    entry = {"command": "python -m bench.bench_embedding " + " ".join(sys.argv[1:]), "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
             "rows": rows, "cost": cost, "models": model_costs(), "wheel": info, "hours": hours,
             "files": {"train_a": cut, "train_b": len(train_files) - cut, "test": len(test_files)},
             "test_clips": len(test["events"]), "test_stream_hours": float(test["duration"]) / 3600,
             "cal_stream": {"hours": float(cal_stream["duration"]) / 3600, "clips": len(cal_stream["events"])},
             "load_start": load_start, "load_end": os.getloadavg(), "wall_s": round(time.time() - t_start, 1),
             "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}  # another run may have written
    if cached:
        entry["cached_note"] = ", embeddings from the cache"
    results["main" + args.tag] = entry
    results_path.write_text(json.dumps(results, indent=1))
    print(json.dumps({"models": entry["models"], "hours": hours, "wall_s": entry["wall_s"],
                      "load": [load_start, entry["load_end"]]}), flush=True)


if __name__ == "__main__":
    main()
