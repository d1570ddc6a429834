"""The embedding model family (model.architecture: embedding): its numpy mel frontend against the ONNX
model it replaces, the weights check, and kws-train -> kws-convert -> kws-predict / kws-eval /
kws-listen (also in the TensorFlow-free edge environment) on a tiny synthetic dataset.

Everything but the missing-weights tests needs Google's speech_embedding weights from the
openwakeword 0.4.0 wheel (``make test`` installs it); without it they skip and say so."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import SAMPLE_RATE, keyword_stream, make_dataset
from kws.edge.audio import write_wav
from kws.edge.embedding_frontend import (CHUNK_SAMPLES, EMBEDDING_DIM, FFT_SIZE, INT16_SCALE, LOOKBACK_SAMPLES,
                                         MEL_BINS, WINDOW_SAMPLES, MelConstants, MelFrontend, embedding_windows)
from kws.trainer.augment import AugmentSources
from kws.trainer.embedding_data import Embedder
from kws.trainer.models import NORMALIZATION_LAYER
from kws.trainer.speech_embedding import (EMBEDDING_FILE, KNOWN_SHA256, MEL_FILE, PIP_HINT, WeightsError,
                                          find_weights, mel_constants, wheel_models_dir)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EDGE_BIN = REPO / ".venv-edge" / "bin"
WORDS = ("up", "down")
TRAIN_SETTINGS = ("model.architecture=embedding", "train.epochs=20", "train.batch_size=16", "train.seed=5",
                  "model.embedding_copies=3", "augment.partial_word_percentage=50",
                  "augment.talk_background_share=0.3")  # the negatives' chatter under some of the words
LISTEN_THRESHOLD = 0.6  # the tiny model's averaged scores peak at 0.7-0.9 on its words
needs_weights = pytest.mark.skipif(
    wheel_models_dir() is None,
    reason=f"speech_embedding weights not installed (the openwakeword 0.4.0 wheel): {PIP_HINT}")


def speechlike(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Syllable-like bursts of harmonics with a wandering pitch, pauses and a level that changes by
    40 dB (so the per-chunk 80 dB clip and the log floor both matter)."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    pitch = 120 + 40 * np.sin(2 * np.pi * 0.7 * t) + 20 * rng.standard_normal(n).cumsum() / np.sqrt(n)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = (np.sin(2 * np.pi * 4 * t) > -0.2).astype(np.float64)
    level = 10 ** (np.interp(t, [0, seconds / 2, seconds], [-40, 0, -20]) / 20)
    audio = 0.2 * voice * syllables * level + 0.002 * rng.standard_normal(n)
    audio[n // 3:n // 3 + SAMPLE_RATE // 2] = 0.0  # digital silence: the log floor
    return audio.astype(np.float32)


# --- weights ------------------------------------------------------------------------------------------
def test_missing_weights_name_the_file_and_the_pip_command(tmp_path, monkeypatch):
    with pytest.raises(WeightsError) as err:
        find_weights(str(tmp_path))
    assert str(err.value) == (f"{tmp_path / MEL_FILE}: missing from {tmp_path}; install the weights with: "
                              "pip install onnx && pip install --no-deps openwakeword==0.4.0")
    with pytest.raises(WeightsError, match="is not a folder"):
        find_weights(str(tmp_path / "nowhere"))
    (tmp_path / MEL_FILE).write_bytes(b"not the mel model")
    (tmp_path / EMBEDDING_FILE).write_bytes(b"not the embedding model")
    with pytest.raises(WeightsError, match="sha256 differs"):
        find_weights(str(tmp_path))
    import kws.trainer.speech_embedding as se

    monkeypatch.setattr(se, "wheel_models_dir", lambda: None)
    with pytest.raises(WeightsError, match=r"openwakeword 0\.4\.0 wheel, which is not installed: pip install"):
        find_weights("auto")


def test_kws_train_stops_on_missing_weights_in_one_line_and_leaves_no_run(tmp_path):
    data = make_dataset(tmp_path / "data", per_word=3, unknown=2, words=WORDS)
    out = tmp_path / "run"
    proc = subprocess.run([str(BIN / "kws-train"), "--data", str(data), "--out", str(out),
                           "--set", "model.architecture=embedding",
                           "--set", f"model.embedding_weights={tmp_path / 'empty'}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: {tmp_path / 'empty'}: model.embedding_weights is not a folder (it should hold "
                      f"{MEL_FILE} and {EMBEDDING_FILE}; or use auto with: {PIP_HINT})"]
    assert not out.exists()


@needs_weights
def test_the_installed_weights_are_the_known_files():
    found = find_weights()
    assert sorted(found) == sorted(KNOWN_SHA256)
    assert all(p.parent == wheel_models_dir() for p in found.values())


# --- the frontend -------------------------------------------------------------------------------------
@needs_weights
def test_numpy_mel_frontend_matches_the_onnx_model_chunk_by_chunk():
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (make test installs it) compares the ONNX model")
    path = find_weights()[MEL_FILE]
    mel = MelFrontend(mel_constants(path))
    audio = speechlike(6.0, np.random.default_rng(0))
    ours = mel.stream(audio)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.concatenate([np.zeros(LOOKBACK_SAMPLES, np.float32), audio * np.float32(INT16_SCALE)])
    calls = [x[None, i * CHUNK_SAMPLES:i * CHUNK_SAMPLES + LOOKBACK_SAMPLES + CHUNK_SAMPLES]
             for i in range(len(audio) // CHUNK_SAMPLES)]
    # one chunk per call, as openWakeWord streams it (the model's 80 dB clip spans its whole input)
    theirs = np.concatenate([session.run(None, {"input": c})[0].reshape(-1, 32) for c in calls]) / 10 + 2
    assert ours.shape == theirs.shape == (75 * 8, 32)
    assert np.abs(ours - theirs).max() < 1e-4
    assert theirs.min() < -5 and theirs.max() > 5  # the floor and loud speech were both exercised


@needs_weights
def test_keras_rebuild_of_the_embedding_matches_the_onnx_model():
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (make test installs it) compares the ONNX model")
    from kws.trainer.embedding_data import Embedder

    embedder = Embedder("auto")
    windows = embedding_windows(embedder.mel.stream(speechlike(3.0, np.random.default_rng(1))))
    session = ort.InferenceSession(str(find_weights()[EMBEDDING_FILE]), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input_1": np.ascontiguousarray(windows)})[0].reshape(len(windows), -1)
    ours = embedder.embed(windows)
    assert ours.shape == (28, 96)
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()


# --- train, convert, run ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedding_run(tmp_path_factory):
    """A tiny embedding-family run (two synthetic words, real-negatives file) and its dist folder."""
    if wheel_models_dir() is None:
        pytest.skip(f"speech_embedding weights not installed (the openwakeword 0.4.0 wheel): {PIP_HINT}")
    from kws.converters.convert import ConvertOptions, convert
    from kws.trainer.config import load_config, with_data
    from kws.trainer.train import train

    root = tmp_path_factory.mktemp("embedding")
    data = make_dataset(root / "data", per_word=16, unknown=12, seed=2, words=WORDS)
    rng = np.random.default_rng(3)
    chatter = rng.normal(0, 0.02, SAMPLE_RATE * 20) * np.repeat(rng.random(200) > 0.5, SAMPLE_RATE // 10)
    write_wav(root / "negatives" / "chatter.wav", chatter.astype(np.float32), SAMPLE_RATE)
    cfg = with_data(load_config(None, TRAIN_SETTINGS), str(data), WORDS, [str(root / "negatives")])
    run = root / "run"
    train(cfg, out=run, quiet=True)
    convert(ConvertOptions(model=str(run)), say=lambda _: None)
    return run


def test_training_caches_the_embeddings_and_records_the_run(embedding_run):
    metrics = json.loads((embedding_run / "metrics.json").read_text())
    assert metrics["model"]["input_shape"] == [16, 96] and metrics["epochs"] == 20
    assert metrics["validation"]["accuracy"] >= 0.85
    with np.load(embedding_run / "embeddings" / "train.npz") as cached:
        assert cached["x"].shape[1:] == (16, 96)
        labels = (embedding_run / "labels.txt").read_text().split()
        counts = np.bincount(cached["y"], minlength=len(labels))
        split = json.loads((embedding_run / "split.json").read_text())["splits"]["training"]
        for word in WORDS:  # model.embedding_copies=3 windows per training clip
            assert counts[labels.index(word)] == 3 * sum(1 for _, label, _ in split if label == word) > 0
        assert counts[labels.index("_silence_")] == 3 * sum(1 for _, label, _ in split if label == "_silence_") > 0
        assert cached["calibration_mel"].shape[1:] == (76, 32, 1)
        # the head standardises each embedding dimension with the training windows' statistics
        # (unscaled, the +-16 embeddings left a 12-word head at 54% on its own training windows)
        import keras

        norm = keras.models.load_model(embedding_run / "model.keras").get_layer(NORMALIZATION_LAYER)
        x = cached["x"].reshape(-1, 96).astype(np.float64)
        np.testing.assert_allclose(np.ravel(norm.mean), x.mean(axis=0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.ravel(norm.variance), x.var(axis=0), rtol=1e-4)
    assert metrics["model"]["input_normalization"] is True
    assert "talk_background_share: 0.3" in (embedding_run / "config.yaml").read_text()
    with np.load(embedding_run / "embeddings" / "negatives.npz") as negatives:
        assert negatives["embeddings"].shape == (20 * 1000 // 80 - 9, 96)  # one per 80 ms from the 10th chunk


def test_resume_reuses_the_cached_embeddings(embedding_run, tmp_path):
    import shutil

    from kws.trainer.train import train

    run = tmp_path / "run"
    shutil.copytree(embedding_run, run, ignore=shutil.ignore_patterns("dist"))
    cached = {p.name: p.read_bytes() for p in (run / "embeddings").iterdir()}
    result = train(resume=run, overrides=("train.epochs=22",), quiet=True)
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 22 == result.metrics["epochs"]
    assert {p.name: p.read_bytes() for p in (run / "embeddings").iterdir()} == cached


def test_convert_writes_both_pipelines_and_a_manifest_of_the_family(embedding_run):
    from kws.edge.manifest import load_manifest
    from kws.edge.model_loader import sha256_of

    dist = embedding_run / "dist"
    man = load_manifest(dist)
    raw = json.loads((dist / "manifest.json").read_text())
    assert raw["family"] == "embedding" and raw["version"] == 3
    assert set(man.models) == {"int8", "float"} and set(man.embedding.models) == {"int8", "float"}
    assert man.models["int8"].input.shape == (1, 16, 96) and man.embedding.models["int8"].input.shape == (1, 76, 32, 1)
    assert man.embedding.models["int8"].input.dtype == "float32"  # dynamic range: int8 weights, float activations
    assert sha256_of(dist / man.embedding.mel_constants) == man.embedding.mel_sha256
    assert man.smoothing.hop_ms == 80.0 and man.frontend.clip_samples == WINDOW_SAMPLES
    assert "Apache-2.0" in man.embedding.weights["name"] and "CC BY-NC-SA" in man.embedding.weights["source"]
    report = json.loads((dist / "convert_report.json").read_text())
    assert report["guard"]["passed"] is True and report["not_made"] == ["pb", "c"]
    assert report["artifacts"]["embedding_int8"]["vs_keras"]["cosine_mean"] > 0.98
    assert report["artifacts"]["embedding_int8"]["ops_supported"] is True
    assert report["artifacts"]["int8"]["accuracy"] >= 0.85


def test_the_dynamic_int8_embedding_stays_closer_to_float_than_the_full_integer_one(embedding_run, tmp_path):
    """The default int8 embedding (convert.embedding_quantization: dynamic) against the calibrated
    full-integer one (--embedding-quantization full), both measured against the float pipeline."""
    from kws.edge.manifest import load_manifest
    from kws.edge.recognizer import Recognizer

    full_dist = tmp_path / "dist_full"
    proc = subprocess.run([str(BIN / "kws-convert"), "-m", str(embedding_run), "--out", str(full_dist),
                           "--embedding-quantization", "full"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "int8 weights and activations, calibrated on" in proc.stderr
    dynamic_dist = embedding_run / "dist"
    man, full_man = load_manifest(dynamic_dist), load_manifest(full_dist)
    entry = man.embedding.models["int8"]
    assert entry.input.dtype == "float32" and entry.output.dtype == "float32"  # the runtime quantizes inside
    assert full_man.embedding.models["int8"].input.dtype == "int8"
    assert man.models["int8"].input.dtype == "int8" == full_man.models["int8"].input.dtype  # heads: full integer
    assert man.extra["embedding_quantization"] == "dynamic" and full_man.extra["embedding_quantization"] == "full"
    assert man.extra["int8_calibration"]["embedding_mel_windows"] == 0
    assert full_man.extra["int8_calibration"]["embedding_mel_windows"] > 0
    report = json.loads((dynamic_dist / "convert_report.json").read_text())
    full = json.loads((full_dist / "convert_report.json").read_text())
    dynamic, calibrated = report["artifacts"]["embedding_int8"], full["artifacts"]["embedding_int8"]
    assert dynamic["quantization"] == "dynamic" and calibrated["quantization"] == "full"
    # int8 weights: under a third of the float file, as the full-integer one
    assert dynamic["size_bytes"] < report["artifacts"]["embedding_float"]["size_bytes"] / 3
    assert dynamic["vs_keras"]["cosine_mean"] > max(0.995, calibrated["vs_keras"]["cosine_mean"])
    assert dynamic["ops_supported"] is True and dynamic["tflite-runtime"]["loaded"] is True
    assert report["guard"]["passed"] is True
    # on a stream, the dynamic pipeline's scores follow the float pipeline's more closely
    audio, _ = keyword_stream(("up", "down"), np.random.default_rng(11), lead_s=2.5)
    streamed = {}
    for name, folder, key in (("dynamic", dynamic_dist, "int8"), ("full", full_dist, "int8"),
                              ("float", dynamic_dist, "float")):
        rec = Recognizer.from_manifest(folder, model=key, keep_scores=True)
        for i in range(0, len(audio), CHUNK_SAMPLES):
            rec.process(audio[i:i + CHUNK_SAMPLES])
        streamed[name] = rec.pop_scores()[1]
    gap = {name: float(np.abs(streamed[name] - streamed["float"]).mean()) for name in ("dynamic", "full")}
    assert gap["dynamic"] < gap["full"], gap
    assert np.abs(streamed["dynamic"] - streamed["float"]).max() < 0.15


def test_unknown_embedding_quantization_is_one_line_naming_the_choices(embedding_run, tmp_path):
    proc = subprocess.run([str(BIN / "kws-convert"), "-m", str(embedding_run), "--out", str(tmp_path / "x"),
                           "--embedding-quantization", "half"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and not (tmp_path / "x").exists()
    assert proc.stderr.strip().splitlines()[-1] == ("kws-convert: error: --embedding-quantization must be one of "
                                                    "full, dynamic, got 'half'")


@pytest.mark.parametrize("key", ["int8", "float"])
def test_streamed_scores_equal_the_one_shot_scores_of_the_same_windows(embedding_run, key):
    from kws.edge.recognizer import Recognizer

    audio, _ = keyword_stream(("up", "down"), np.random.default_rng(7), lead_s=2.5)
    runs = []
    for chunk in (777, CHUNK_SAMPLES, 4000):
        rec = Recognizer.from_manifest(embedding_run / "dist", model=key, keep_scores=True)
        for i in range(0, len(audio), chunk):
            rec.process(audio[i:i + chunk])
        runs.append(rec.pop_scores())
    times, scores = runs[0]
    assert all(np.array_equal(times, t) and np.array_equal(scores, s) for t, s in runs[1:])
    # the stream starts on silence: its first 80 ms chunk completes a head window and is scored
    assert times[0] == CHUNK_SAMPLES / SAMPLE_RATE == 0.08
    assert np.allclose(np.diff(times), 0.08)
    pipeline = rec.pipeline
    padded = np.concatenate([np.zeros(WINDOW_SAMPLES, np.float32), audio])
    for t, s in list(zip(times, scores))[::7]:
        end = int(round(t * SAMPLE_RATE)) + WINDOW_SAMPLES
        one_shot = pipeline.head.predict(pipeline.window_inputs(padded[end - WINDOW_SAMPLES:end])[0])
        # the streamed mel comes from other matrix shapes than the one-shot one, so BLAS may sum in
        # another order: equal to float precision (float), or to one step of the int8 output (int8)
        np.testing.assert_allclose(one_shot, s, rtol=0, atol=1e-5 if key == "float" else 1 / 256 + 1e-6,
                                   err_msg=f"t={t}")


def test_kws_predict_classifies_the_word_clips(embedding_run, tmp_path):
    data = Path(json.loads((embedding_run / "split.json").read_text())["root"])
    proc = subprocess.run([str(BIN / "kws-predict"), "-m", str(embedding_run / "dist"), str(data / "up"),
                           str(data / "down"), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 32
    correct = sum(r["label"] == Path(r["path"]).parent.name for r in rows)
    assert correct >= 28, rows


def test_kws_predict_on_the_run_folder_points_to_its_converted_pipeline(embedding_run):
    """The head's inputs come from the frozen embedding, not the MFCC frontend of the run's config:
    -m RUN is one line naming the folder to give instead (before: a Keras shape traceback)."""
    data = Path(json.loads((embedding_run / "split.json").read_text())["root"])
    clip = sorted((data / "up").iterdir())[0]
    proc = subprocess.run([str(BIN / "kws-predict"), "-m", str(embedding_run), str(clip)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"Error: {embedding_run}: an embedding-family run is scored through its converted pipeline: "
        f"kws-convert -m {embedding_run}, then give -m {embedding_run / 'dist'}")


def test_kws_eval_calibrates_on_negatives_and_the_manifest_keeps_the_family(embedding_run, tmp_path):
    import shutil

    from kws.edge.manifest import load_manifest

    dist = tmp_path / "dist"
    shutil.copytree(embedding_run / "dist", dist)
    data = Path(json.loads((embedding_run / "split.json").read_text())["root"])
    proc = subprocess.run([str(BIN / "kws-eval"), "-m", str(dist), "--keywords", str(data), "--hours", "0.03",
                           "--snr", "10:20", "--calibrate", "--target-fa-per-hour", "60",
                           "--negatives", str(embedding_run.parent / "negatives"), "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    man = load_manifest(dist)
    assert man.family == "embedding" and set(man.thresholds) == set(WORDS)
    assert "FA/h" in man.calibration["chosen_for"]
    report = json.loads(proc.stdout)
    assert report["smoothing"]["hop_ms"] == 80.0 and report["negatives"]["files"] == 1
    calibrated = report["calibration"]
    assert calibrated["fa_measured_on"] == "negatives" and calibrated["fa_per_hour"] <= 60
    assert calibrated["frr"] <= 0.2, calibrated  # the synthetic words in noise at 10-20 dB


def test_kws_listen_runs_the_pipeline_in_the_tensorflow_free_edge_environment(embedding_run, tmp_path):
    if not (EDGE_BIN / "kws-listen").exists():
        pytest.skip(f"{EDGE_BIN} missing: `make test` creates it (make edge-venv)")
    audio, truth = keyword_stream(("up", "down", "up", "down"), np.random.default_rng(5), gap_s=1.5, lead_s=2.5)
    wav = tmp_path / "stream.wav"
    write_wav(wav, audio, SAMPLE_RATE)
    proc = subprocess.run([str(EDGE_BIN / "kws-listen"), "-m", str(embedding_run / "dist"), "--wav", str(wav),
                           "--json", "--threshold", str(LISTEN_THRESHOLD)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "tflite-runtime 2.14.0" in proc.stderr and "embedding_int8.tflite every 80 ms" in proc.stderr
    heard = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["label"] for d in heard] == [w for w, _ in truth]
    for d, (_, end) in zip(heard, truth):
        assert end - 0.5 <= d["time_s"] <= end + 0.5, (d, end)


def test_an_ensemble_of_both_families_runs_in_the_tensorflow_free_edge_environment(embedding_run, tmp_path):
    """kws ensemble of the embedding run and a window model trained on the same words: kws-listen in
    the edge environment runs both and finds every word once."""
    if not (EDGE_BIN / "kws-listen").exists():
        pytest.skip(f"{EDGE_BIN} missing: `make test` creates it (make edge-venv)")
    from conftest import FIXTURE_OVERRIDES
    from kws.converters.convert import ConvertOptions, convert
    from kws.trainer.config import load_config, with_data
    from kws.trainer.train import train

    data = Path(json.loads((embedding_run / "split.json").read_text())["root"])
    window = tmp_path / "window_run"
    train(with_data(load_config(None, FIXTURE_OVERRIDES), str(data), WORDS), out=window, quiet=True)
    convert(ConvertOptions(model=str(window), formats=("int8",)), say=lambda _: None)
    pair = tmp_path / "pair"
    made = subprocess.run([str(BIN / "kws"), "ensemble", str(embedding_run / "dist"), str(window / "dist"),
                           "--out", str(pair)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert "member1: " + str((window / "dist").resolve()) in made.stdout  # the finer hop (40 ms) leads
    audio, truth = keyword_stream(("up", "down", "up", "down"), np.random.default_rng(5), gap_s=1.5, lead_s=2.5)
    wav = tmp_path / "stream.wav"
    write_wav(wav, audio, SAMPLE_RATE)
    proc = subprocess.run([str(EDGE_BIN / "kws-listen"), "-m", str(pair), "--wav", str(wav), "--json",
                           "--threshold", "0.5"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "40 ms window model every hop" in proc.stderr and "80 ms embedding: " in proc.stderr
    heard = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [d["label"] for d in heard] == [w for w, _ in truth]
    for d, (_, end) in zip(heard, truth):
        assert end - 0.5 <= d["time_s"] <= end + 0.6, (d, end)


def test_a_damaged_embedding_manifest_is_one_line_naming_the_field(embedding_run, tmp_path):
    import shutil

    from kws.edge.errors import KwsError, ManifestError
    from kws.edge.manifest import load_manifest
    from kws.edge.recognizer import Recognizer

    dist = tmp_path / "dist"
    shutil.copytree(embedding_run / "dist", dist)
    good = json.loads((dist / "manifest.json").read_text())

    def refused(change) -> str:
        data = json.loads(json.dumps(good))
        change(data)
        (dist / "manifest.json").write_text(json.dumps(data))
        with pytest.raises(ManifestError) as err:
            load_manifest(dist)
        return str(err.value)

    assert refused(lambda d: d.pop("embedding")).endswith("family 'embedding' needs an embedding section")
    assert "model family 'cascade' is not one this kws runs (window, embedding, ensemble); upgrade kws" in \
        refused(lambda d: d.update(family="cascade"))
    assert "embedding.mel_constants.file must be a file name inside the manifest's folder" in \
        refused(lambda d: d["embedding"]["mel_constants"].update(file="../mel.npz"))
    (dist / "manifest.json").write_text(json.dumps(good))
    (dist / "mel_constants.npz").write_bytes(b"changed")
    with pytest.raises(ManifestError, match=r"mel_constants\.npz: cut short \(7 of the \d+ bytes .*manifest\.json "
                                            r"records: copy it again, or re-run kws-convert\)"):
        Recognizer.from_manifest(dist)
    with pytest.raises(KwsError, match="hop 40 ms must be a multiple of the embedding family's 80 ms step"):
        Recognizer.from_manifest(embedding_run / "dist", hop_ms=40)


def test_convert_refuses_formats_the_family_has_not_and_writes_nothing(embedding_run, tmp_path):
    from kws.converters.convert import ConvertOptions, convert
    from kws.converters.errors import FormatError

    out = tmp_path / "dist"
    with pytest.raises(FormatError) as err:
        convert(ConvertOptions(model=str(embedding_run), formats=("pb", "c"), out=str(out)), say=lambda _: None)
    assert str(err.value) == "--formats pb,c: a model of the embedding family converts to int8 and float TFLite only"
    assert not out.exists() and not list(tmp_path.glob(".kws-convert-*"))


def _tone_clip(freq_hz: float) -> np.ndarray:
    """A 1 s int16 clip holding a 400 ms tone burst (a stand-in word of one frequency)."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = 0.3 * np.sin(2 * np.pi * freq_hz * t) * ((t > 0.3) & (t < 0.7))
    return (audio * 32767).astype(np.int16)


def _dominant_hz(window: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(window))
    return float(np.fft.rfftfreq(len(window), 1 / SAMPLE_RATE)[np.argmax(spectrum)])


@pytest.mark.parametrize("unknowns", [False, True])
def test_partial_words_are_cut_from_unknown_words_too_with_partial_word_unknowns(unknowns):
    """augment.partial_word_unknowns was ignored by the embedding family: its partial-word windows
    were cut from the keywords only, whatever the setting (the other families cut _unknown_ words too)."""
    from kws.trainer.config import load_config
    from kws.trainer.dataset import Item
    from kws.trainer.embedding_data import training_windows

    cfg = load_config(overrides=("model.architecture=embedding", "model.embedding_copies=2",
                                 "augment.partial_word_percentage=100", "augment.background_frequency=0",
                                 "augment.gain_db=0", f"augment.partial_word_unknowns={str(unknowns).lower()}"))
    clips = {"up/a_nohash_0.wav": _tone_clip(1000), "up/b_nohash_0.wav": _tone_clip(1000),
             "_unknown_/c_nohash_0.wav": _tone_clip(3000), "_unknown_/d_nohash_0.wav": _tone_clip(3000)}
    items = [Item(path, path.split("/")[0]) for path in clips]
    labels = ["_silence_", "_unknown_", "up"]
    x, y = training_windows(items, clips, cfg, AugmentSources(), labels, seed=1)
    # 2 keyword clips x 2 copies, 2 _unknown_ clips x 1 copy, then 4 partial words (100% of 4)
    assert list(y) == [2, 2, 2, 2, 1, 1, 1, 1, 1, 1]
    cut_from = [_dominant_hz(w) for w in x[6:]]
    assert all(np.isclose(f, 1000, atol=5) or np.isclose(f, 3000, atol=5) for f in cut_from)
    assert sum(np.isclose(f, 3000, atol=5) for f in cut_from) == (2 if unknowns else 0)


class _ZeroEmbedder(Embedder):
    """The real streaming mel frontend with a stand-in embedding network (zeros): counts head windows
    without the weights."""

    def __init__(self):
        self.mel = MelFrontend(MelConstants(np.hanning(FFT_SIZE).astype(np.float32),
                                            np.ones((FFT_SIZE // 2 + 1, MEL_BINS), np.float32)))

    def embed(self, mel_windows):
        return np.zeros((len(mel_windows), EMBEDDING_DIM), np.float32)


def test_negatives_shorter_than_a_head_window_are_heard_after_silence(tmp_path):
    """A negatives file shorter than a head window (2 s; a folder of 1 s clips) gave the embedding
    family no window at all: all of them were dropped and the run trained with '0 head windows'
    of negatives, where the other families zero-pad such a file."""
    from kws.trainer.config import load_config
    from kws.trainer.embedding_data import EmbeddingFeatures
    from kws.trainer.negatives import index_negatives

    rng = np.random.default_rng(0)
    for k, seconds in enumerate((0.5, 1.0, 1.9)):
        write_wav(tmp_path / f"short{k}.wav", 0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE)), SAMPLE_RATE)
    write_wav(tmp_path / "long.wav", 0.1 * rng.standard_normal(3 * SAMPLE_RATE), SAMPLE_RATE)
    features = EmbeddingFeatures.__new__(EmbeddingFeatures)
    features.cfg = load_config(overrides=("model.architecture=embedding",))
    features.embedder, features.say = _ZeroEmbedder(), lambda line: None
    pool = features._negative_pool(index_negatives([tmp_path]))
    # the 3 s file: 3 s = 37 chunks of 80 ms -> 28 embeddings -> 13 head windows; each short file: 1
    assert len(pool["starts"]) == 13 + 3
    assert len(pool["embeddings"]) == 28 + 3 * 16


class _WindowDigestEmbedder(_ZeroEmbedder):
    """A stand-in embedding that is a digest of its mel window (its first 96 values), recording the
    largest batch it was given."""

    largest = 0

    def embed(self, mel_windows):
        self.largest = max(self.largest, len(mel_windows))
        return np.asarray(mel_windows, np.float32).reshape(len(mel_windows), -1)[:, :EMBEDDING_DIM].copy()


def test_a_long_recording_is_embedded_a_block_at_a_time_with_the_same_embeddings(monkeypatch):
    """Streaming a negatives recording made all of its mel windows at once (440 MB per hour of audio,
    4.4 GB for 10 h of negatives); blocks give the same embeddings in the same order."""
    from kws.trainer import embedding_data

    audio = (0.1 * np.random.default_rng(1).standard_normal(7 * SAMPLE_RATE)).astype(np.float32)
    whole = _WindowDigestEmbedder()
    expected = whole.stream(audio)
    assert len(expected) == 7 * SAMPLE_RATE // CHUNK_SAMPLES - 9 and whole.largest == len(expected)
    monkeypatch.setattr(embedding_data, "STREAM_BLOCK_EMBEDDINGS", 7)
    blocks = _WindowDigestEmbedder()
    got = blocks.stream(audio)
    assert blocks.largest == 7
    np.testing.assert_array_equal(got, expected)
    assert len(blocks.stream(audio[:24 * CHUNK_SAMPLES])) == 15 and len(blocks.stream(audio[:CHUNK_SAMPLES])) == 0


def test_a_word_at_the_start_of_a_stream_is_heard(embedding_run):
    """A stream starts on silence: a 1 s clip, streamed alone and heard out (Recognizer.finish), is
    scored from its first 80 ms chunk and its word detected; nothing was scored before 2 s had arrived,
    so kws-listen --wav found no word in such a clip."""
    from kws.edge.audio import read_audio
    from kws.edge.recognizer import Recognizer

    data = Path(json.loads((embedding_run / "split.json").read_text())["root"])
    clips = [(word, f) for word in ("up", "down") for f in sorted((data / word).iterdir())[:4]]
    found = 0
    for word, path in clips:
        rec = Recognizer.from_manifest(embedding_run / "dist", model="float", threshold=0.5)
        audio, info = read_audio(path)
        assert info.sample_rate == SAMPLE_RATE and len(audio) == SAMPLE_RATE
        heard = [d.label for d in rec.process(audio) + rec.finish()]
        assert set(heard) <= {word}, (path, heard)
        found += heard[:1] == [word]
    assert found >= 6, found
