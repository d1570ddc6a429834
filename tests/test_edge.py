"""The edge package on the fixture model converted by kws-convert: streaming recognizer, kws-listen from
WAV / stdin / the real PortAudio+ALSA capture path, the TensorFlow-free environment, bad input."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import virtual_mic
from audio_fixtures import SAMPLE_RATE, keyword_stream, word_audio
from kws.edge.audio import resample, to_int16, write_wav
from kws.edge.errors import KwsError, ManifestError, RuntimeMissingError
from kws.edge.frontend import Frontend
from kws.edge.recognizer import Recognizer, to_float_audio
from kws.edge.resample import StreamResampler
from kws.edge.ringbuffer import RingBuffer
from kws.edge.runtime import ModelLoadError, TFLiteModel

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
EDGE_PYTHON = REPO / ".venv-edge" / "bin" / "python"
# The fixture model trains for 8 epochs on 100 clips: its keyword scores in a stream peak around
# 0.5, so the tests listen at this threshold (the manifest's default is 0.7).
THRESHOLD = 0.4
WORDS = ("up", "down", "beep", "up")
MAX_LATENCY_S = 1.0  # detection time minus the end of the word's 1 s clip


@pytest.fixture(scope="module")
def stream():
    audio, truth = keyword_stream(WORDS, np.random.default_rng(11))
    return audio, truth


def listen_cmd(*args: str) -> list[str]:
    return [str(VENV_BIN / "kws-listen"), *args]


def check_detections(labels_times, truth):
    """Each word heard once, in order, soon after it ends. The fixture model is weak (scores near 0.5),
    so a word may fire twice when its score dips below and climbs back over the threshold; repeats of
    the same word are collapsed into its first detection."""
    firsts = [lt for i, lt in enumerate(labels_times) if i == 0 or lt[0] != labels_times[i - 1][0]]
    assert [label for label, _ in firsts] == [w for w, _ in truth]
    for (label, t), (_, end) in zip(firsts, truth):
        assert end - 1.0 < t <= end + MAX_LATENCY_S, (label, t, end)


# --- the recognizer API ---------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["float", "int8"])
def test_streaming_scores_equal_classifying_each_clip_whole(converted_run, stream, key):
    audio = stream[0][: SAMPLE_RATE * 3]
    rec = Recognizer.from_manifest(converted_run, model=key, keep_scores=True)
    rec.process(audio)
    times, scores = rec.pop_scores()
    # one score per 40 ms hop once a whole second is in: 1.00, 1.04, ... 3.00 s
    assert len(times) == 51 and times[0] == pytest.approx(1.0) and times[-1] == pytest.approx(3.0)
    frontend = Frontend(rec.manifest.frontend)
    for i in (0, 7, 25, 50):
        end = int(round(times[i] * SAMPLE_RATE))
        whole = rec.model.predict(frontend.clip_features(audio[end - SAMPLE_RATE:end]))
        # float: the same features to rounding; int8: the same quantized input, so the same output
        assert np.allclose(scores[i], whole, atol=1e-5 if key == "float" else 1 / 256)


def test_chunk_size_and_sample_type_do_not_change_the_result(converted_run, stream):
    pcm = to_int16(stream[0])
    rec = Recognizer.from_manifest(converted_run, keep_scores=True, threshold=THRESHOLD)
    reference = rec.process(pcm)
    ref_times, ref_scores = rec.pop_scores()
    assert reference, "the fixture stream should give detections"
    for chunk in (7, 333, 640, 16000):
        rec.reset()
        dets = []
        for start in range(0, len(pcm), chunk):
            dets += rec.process(pcm[start:start + chunk])
        times, scores = rec.pop_scores()
        assert np.array_equal(times, ref_times) and np.array_equal(scores, ref_scores)
        assert dets == reference
    rec.reset()
    as_float = rec.process(pcm.astype(np.float32) / 32768.0)  # the same samples as float: same answer
    assert [(d.label, d.time_s) for d in as_float] == [(d.label, d.time_s) for d in reference]


def test_interleaved_int16_and_int32_channels_are_scaled_like_mono(converted_run, stream):
    # (frames, channels) integer chunks, as sounddevice and soundfile return them: averaging the
    # integers first left them at integer scale (a half-scale stereo sample read as 16384.0)
    assert to_float_audio(np.full((2, 2), 16384, np.int16)).tolist() == [0.5, 0.5]
    assert to_float_audio(np.array([[2 ** 30, -2 ** 30]], np.int32)).tolist() == [0.0]
    pcm = to_int16(stream[0][: SAMPLE_RATE * 3])
    rec = Recognizer.from_manifest(converted_run, keep_scores=True)
    rec.process(pcm)
    _, mono = rec.pop_scores()
    rec.reset()
    rec.process(np.stack([pcm, pcm], axis=1))
    _, stereo = rec.pop_scores()
    assert np.array_equal(stereo, mono)


def test_the_recognizer_hears_the_keywords_in_order(converted_run, stream):
    audio, truth = stream
    rec = Recognizer.from_manifest(converted_run, threshold=THRESHOLD)
    assert (rec.sample_rate, rec.hop_ms, rec.hop_samples) == (16000, 40.0, 640)
    dets = rec.process(audio)
    check_detections([(d.label, d.time_s) for d in dets], truth)
    assert all(THRESHOLD < d.score <= 1.0 for d in dets)
    assert rec.time_s == pytest.approx(len(audio) / SAMPLE_RATE)
    rec.reset()
    assert rec.time_s == 0.0 and rec.process(audio[:8000]) == []
    # the manifest's own threshold (0.7) is stricter: no more detections than at 0.4
    assert len(Recognizer.from_manifest(converted_run).process(audio)) <= len(dets)


def test_hop_must_be_a_multiple_of_the_frontend_stride(converted_run):
    with pytest.raises(KwsError, match="multiple of the frontend stride"):
        Recognizer.from_manifest(converted_run, hop_ms=25)
    assert Recognizer.from_manifest(converted_run, hop_ms=20).hop_samples == 320


def test_a_manifest_that_does_not_match_its_model_is_refused(converted_run, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(converted_run, dist)
    manifest = json.loads((dist / "manifest.json").read_text())

    wrong = dict(manifest, labels=manifest["labels"][:-1])
    (dist / "manifest.json").write_text(json.dumps(wrong))
    with pytest.raises(ManifestError, match="outputs, the manifest lists 4 labels"):
        Recognizer.from_manifest(dist)

    (dist / "manifest.json").write_text(json.dumps(manifest))
    model = (dist / "model_int8.tflite").read_bytes()
    (dist / "model_int8.tflite").write_bytes((dist / "model_float.tflite").read_bytes())
    with pytest.raises(ManifestError) as err:
        Recognizer.from_manifest(dist)
    assert str(err.value) == (f"{dist / 'model_int8.tflite'}: does not match {dist / 'manifest.json'} (sha256 "
                              "differs: the file was replaced after conversion; re-run kws-convert)")
    # a copy interrupted was said to be a replaced model: the size the manifest records tells them apart
    (dist / "model_int8.tflite").write_bytes(model[:1000])
    with pytest.raises(ManifestError) as err:
        Recognizer.from_manifest(dist)
    assert manifest["models"]["int8"]["size_bytes"] == len(model)
    assert str(err.value) == (f"{dist / 'model_int8.tflite'}: cut short (1000 of the {len(model)} bytes "
                              f"{dist / 'manifest.json'} records: copy it again, or re-run kws-convert)")
    unsized = json.loads(json.dumps(manifest))
    unsized["models"]["int8"]["size_bytes"] = 0
    (dist / "manifest.json").write_text(json.dumps(unsized))
    with pytest.raises(ManifestError, match=r"sha256 differs: the file was changed after conversion \(replaced, "
                                            r"or cut short; the manifest records no size\)"):
        Recognizer.from_manifest(dist)
    (dist / "manifest.json").write_text(json.dumps(manifest))

    (dist / "model_int8.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="not a TFLite model"):
        TFLiteModel(dist / "model_int8.tflite")
    alone = tmp_path / "alone.tflite"
    alone.write_bytes(b"x")
    with pytest.raises(ManifestError, match="no manifest.json beside the model"):
        Recognizer.from_manifest(alone)


def test_a_manifest_recording_a_size_but_no_sha256_checks_the_size(converted_run, tmp_path):
    """A manifest written without sha256 (by hand, or by another tool) but with size_bytes loaded a
    model cut short or replaced, and the interpreter then failed on it or ran the wrong model."""
    dist = tmp_path / "dist"
    shutil.copytree(converted_run, dist)
    manifest = json.loads((dist / "manifest.json").read_text())
    del manifest["models"]["int8"]["sha256"]
    (dist / "manifest.json").write_text(json.dumps(manifest))
    model = (dist / "model_int8.tflite").read_bytes()
    from kws.edge.model_loader import open_model

    assert open_model(dist).model.size_bytes == len(model)  # the size it records: it loads
    (dist / "model_int8.tflite").write_bytes(model[:1000])
    with pytest.raises(ManifestError) as err:
        Recognizer.from_manifest(dist)
    assert str(err.value) == (f"{dist / 'model_int8.tflite'}: cut short (1000 of the {len(model)} bytes "
                              f"{dist / 'manifest.json'} records: copy it again, or re-run kws-convert)")
    (dist / "model_int8.tflite").write_bytes(model + b"\x00" * 16)
    with pytest.raises(ManifestError) as err:
        Recognizer.from_manifest(dist)
    assert str(err.value) == (f"{dist / 'model_int8.tflite'}: does not match {dist / 'manifest.json'} "
                              f"({len(model) + 16} bytes, it records {len(model)}: the file was replaced after "
                              "conversion; re-run kws-convert)")


def test_runtime_choice_and_a_missing_runtime_say_what_to_install(monkeypatch, converted_run):
    from kws.edge import runtime

    model = TFLiteModel(converted_run / "model_int8.tflite", runtime="litert")
    assert model.runtime.name == "litert" and model.input_spec.dtype == "int8"
    with pytest.raises(RuntimeMissingError, match="unknown TFLite runtime 'bogus'"):
        runtime.load_runtime("bogus")
    monkeypatch.setattr(runtime, "_try_load", lambda *a: None)
    monkeypatch.setattr(runtime, "_CACHE", {})
    with pytest.raises(RuntimeMissingError, match="no TFLite runtime is installed; install one: pip install"):
        runtime.load_runtime()


def test_a_runtime_asked_for_by_name_says_how_to_install_that_one(monkeypatch):
    """--runtime tflite-runtime (or tf) that does not import said "pip install ai-edge-litert", which
    would not make it import."""
    from kws.edge import runtime

    monkeypatch.setattr(runtime, "_try_load", lambda *a: None)
    monkeypatch.setattr(runtime, "_CACHE", {})
    with pytest.raises(RuntimeMissingError, match=r"'tflite-runtime' does not import; install it: "
                                                  r"pip install 'tflite-runtime==2\.14\.0' 'numpy<2'$"):
        runtime.load_runtime("tflite-runtime")
    with pytest.raises(RuntimeMissingError, match=r"'tf' does not import; install it: pip install tensorflow-cpu$"):
        runtime.load_runtime("tf")


@pytest.mark.parametrize("machine, python, hint", [
    ("x86_64", (3, 10), "pip install ai-edge-litert"),  # said "wheels: Python 3.11-3.13 ... or tensorflow"
    ("aarch64", (3, 14), "pip install ai-edge-litert"),
    ("AMD64", (3, 12), "pip install ai-edge-litert"),
    ("armv7l", (3, 11), "pip install 'tflite-runtime==2.14.0' 'numpy<2'  (32-bit ARM: ai-edge-litert has no wheel)"),
    ("armv7l", (3, 13), "pip install 'tflite-runtime==2.14.0' 'numpy<2'  (32-bit ARM: ai-edge-litert has no wheel, "
                        "and tflite-runtime 2.14.0 has none for Python 3.13: use Python 3.10-3.11, or a 64-bit OS)"),
    ("riscv64", (3, 12), "pip install ai-edge-litert (wheels: Python 3.10-3.14 on x86_64/aarch64) or tensorflow"),
])
def test_a_missing_runtime_names_the_wheel_that_exists_for_this_python(machine, python, hint):
    """A Python 3.10 user on x86_64 was told ai-edge-litert's wheels start at 3.11; a 32-bit Pi on
    Python 3.13 was told to pip install a tflite-runtime that has no wheel there."""
    from kws.edge.runtime import install_hint

    assert install_hint(machine, python) == hint


# --- building blocks --------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [48000, 44100, 8000])
def test_stream_resampler_is_exact_across_chunks_and_keeps_time(rate):
    t = np.arange(rate * 2) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    r = StreamResampler(rate, 16000)
    whole = np.concatenate([r.process(x), r.flush()])
    r.reset()
    rng = np.random.default_rng(0)
    parts, pos = [], 0
    while pos < len(x):
        n = int(rng.integers(1, 5000))
        parts.append(r.process(x[pos:pos + n]))
        pos += n
    chunked = np.concatenate(parts + [r.flush()])
    assert len(whole) == 32000 and np.array_equal(whole, chunked)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)  # no delay: time is kept
    assert np.abs(whole[500:-500] - expected[500:-500]).max() < 2e-3


@pytest.mark.parametrize("rate", [11025, 12000, 22050, 44100, 48000, 8000])
def test_a_file_resampled_whole_or_streamed_gives_the_same_samples(rate):
    # kws-eval --stream, kws serve and training resample a whole file (audio.resample), kws-listen
    # and kws-predict stream it: at 11025 and 12000 Hz the two filters differed by up to 8e-4, and
    # the int8 scores of one file by up to 0.09 between kws-eval and kws-listen
    x = np.random.default_rng(1).normal(0, 0.2, rate * 2).astype(np.float32)
    r = StreamResampler(rate, 16000)
    streamed = np.concatenate([r.process(x[i:i + 4410]) for i in range(0, len(x), 4410)] + [r.flush()])
    whole = resample(x, rate, 16000)
    assert len(streamed) == len(whole) == 32000
    assert np.abs(streamed - whole).max() < 1e-6


def test_ring_buffer_keeps_the_newest_rows_in_order():
    ring = RingBuffer(5)
    ring.write(np.arange(3))
    assert ring.latest().tolist() == [0, 0, 0, 1, 2]
    ring.write(np.arange(3, 7))
    assert ring.latest().tolist() == [2, 3, 4, 5, 6]
    ring.write(np.arange(10, 22))
    assert ring.latest().tolist() == [17, 18, 19, 20, 21] and ring.total == 19


# --- kws-listen from files and stdin -----------------------------------------------------------------
def test_kws_listen_wav_json_on_detect_and_summary(converted_run, stream, tmp_path):
    audio, truth = stream
    from kws.edge.audio import resample

    wav = tmp_path / "stream44k.wav"  # a 44.1 kHz recording: resampled on the way in
    write_wav(wav, resample(audio, SAMPLE_RATE, 44100), 44100)
    log = tmp_path / "hits.txt"
    summary = tmp_path / "summary.json"
    proc = subprocess.run(listen_cmd("-m", str(converted_run / "model_int8.tflite"), "--wav", str(wav), "--json",
                                     "--threshold", str(THRESHOLD), "--summary-json", str(summary),
                                     "--on-detect-shell", f'echo "$KWS_LABEL" "$KWS_SCORE" >> {log}'),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all(set(d) == {"time_s", "label", "score"} for d in lines)
    check_detections([(d["label"], d["time_s"]) for d in lines], truth)
    assert "resampled to 16000 Hz" in proc.stderr
    hits = log.read_text().split("\n")[:-1]
    assert [h.split()[0] for h in hits] == [d["label"] for d in lines]
    stats = json.loads(summary.read_text())
    assert stats["detections"] == len(lines) and stats["audio_s"] == pytest.approx(len(audio) / SAMPLE_RATE, abs=0.01)
    assert stats["hops"] > 0 and 0 < stats["hop_p50_ms"] <= stats["hop_p99_ms"]


def test_kws_listen_reads_raw_pcm_from_stdin(converted_run, stream):
    audio, truth = stream
    proc = subprocess.run(listen_cmd("-m", str(converted_run), "--stdin", "--threshold", str(THRESHOLD), "-q"),
                          input=to_int16(audio).tobytes(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.decode().splitlines()]
    check_detections([(r[2], float(r[0])) for r in rows], truth)
    assert proc.stderr == b""  # -q: detections only


@pytest.mark.parametrize("args, message", [
    (["--wav", "{bad_wav}"], "not a readable audio file"),
    (["--wav", "{missing}"], "no such file"),
    (["-m", "{missing}", "--wav", "{bad_wav}"], "no such model file or folder"),
])
def test_kws_listen_bad_input_is_one_line_and_nonzero(converted_run, tmp_path, args, message):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    fill = {"bad_wav": str(bad), "missing": str(tmp_path / "missing.wav")}
    argv = [a.format(**fill) for a in args]
    if "-m" not in argv:
        argv = ["-m", str(converted_run)] + argv
    proc = subprocess.run(listen_cmd(*argv), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr
    both = subprocess.run(listen_cmd("--wav", str(bad), "--stdin"), capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "not both" in both.stderr


def test_the_edge_package_imports_no_tensorflow():
    code = ("import sys, kws.edge, kws.edge.listen_cli, kws.edge.recognizer, kws.edge.sources, kws.edge.runtime;"
            "from kws.edge import Recognizer;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_kws_listen_in_the_tensorflow_free_edge_environment(converted_run, stream, tmp_path):
    """CI's second venv: the edge package alone, numpy<2, tflite-runtime 2.14, no TensorFlow."""
    if not EDGE_PYTHON.exists():
        pytest.skip(f"{EDGE_PYTHON} missing: `make test` creates it (make edge-venv)")
    audio, truth = stream
    wav = tmp_path / "stream.wav"
    write_wav(wav, audio, SAMPLE_RATE)
    probe = subprocess.run([str(EDGE_PYTHON), "-c", "import importlib.util as u, numpy;"
                            "print(u.find_spec('tensorflow') is None, numpy.__version__.split('.')[0])"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.split() == ["True", "1"]
    proc = subprocess.run([str(EDGE_PYTHON.parent / "kws-listen"), "-m", str(converted_run), "--wav", str(wav),
                           "--json", "--threshold", str(THRESHOLD)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "tflite-runtime 2.14.0" in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    check_detections([(d["label"], d["time_s"]) for d in lines], truth)


def test_the_edge_environment_says_in_one_line_what_needs_tensorflow(trained_run, tiny_dataset, tmp_path):
    """Training, conversion and Keras run folders need the train extra: an edge install said so with
    a ModuleNotFoundError traceback (kws-train only after reading the data, at tqdm)."""
    if not EDGE_PYTHON.exists():
        pytest.skip(f"{EDGE_PYTHON} missing: `make test` creates it (make edge-venv)")
    clip = next((tiny_dataset / "up").glob("*.wav"))
    out = tmp_path / "run"
    for cmd in (["kws-predict", "-m", str(trained_run), str(clip)],
                ["kws-convert", "-m", str(trained_run), "--out", str(tmp_path / "dist")],
                ["kws-train", "--data", str(tiny_dataset), "--out", str(out)]):
        proc = subprocess.run([str(EDGE_PYTHON.parent / cmd[0]), *cmd[1:]], capture_output=True, text=True,
                              timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, (cmd[0], proc.stderr[-800:])
        assert "TensorFlow is not installed here" in lines[0] and "pip install '.[train-cpu]'" in lines[0]
    assert not out.exists() and not (tmp_path / "dist").exists()


def test_the_edge_environment_writes_reports_without_plots_and_says_so(converted_run, tiny_dataset, tmp_path):
    """matplotlib is not in the edge install: --report and --plot ended in ModuleNotFoundError."""
    if not EDGE_PYTHON.exists():
        pytest.skip(f"{EDGE_PYTHON} missing: `make test` creates it (make edge-venv)")
    clip = next((tiny_dataset / "up").glob("*.wav"))
    (tmp_path / "list.txt").write_text(f"{clip},up\n")
    proc = subprocess.run([str(EDGE_PYTHON.parent / "kws-predict"), "-m", str(converted_run), "--list",
                           str(tmp_path / "list.txt"), "--report", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert "confusion_matrix.png not drawn: plots need matplotlib" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == ["metrics.json", "predictions.json"]
    proc = subprocess.run([str(EDGE_PYTHON.parent / "kws"), "inspect", str(clip), "--plot", str(tmp_path / "f.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "Error: --plot: plots need matplotlib, which this install lacks: pip install matplotlib"]


def test_the_edge_environment_runs_a_run_folders_converted_model(trained_run, converted_run, tiny_dataset,
                                                                 tmp_path):
    """A run folder with dist/ inside (what kws-listen -m RUN takes, and the default model once
    converted): kws-predict and kws inspect said TensorFlow is needed; without it they run dist/."""
    if not EDGE_PYTHON.exists():
        pytest.skip(f"{EDGE_PYTHON} missing: `make test` creates it (make edge-venv)")
    run = tmp_path / "models" / "run"
    shutil.copytree(trained_run, run)
    shutil.copytree(converted_run, run / "dist")
    clip = next((tiny_dataset / "up").glob("*.wav"))
    env = dict(os.environ, KWS_MODELS_DIR=str(run.parent))
    answers = []
    for cmd in (["kws-predict", "-m", str(run), "--json", str(clip)], ["kws-predict", "--json", str(clip)],
                ["kws-predict", "-m", str(converted_run), "--json", str(clip)]):
        proc = subprocess.run([str(EDGE_PYTHON.parent / cmd[0]), *cmd[1:]], capture_output=True, text=True,
                              timeout=120, env=env)
        assert proc.returncode == 0, (cmd, proc.stderr[-800:])
        answers.append(json.loads(proc.stdout)["top"])
    assert answers[0] == answers[1] == answers[2]  # the run folder's dist/ model, by name or by default
    inspect = subprocess.run([str(EDGE_PYTHON.parent / "kws"), "inspect", "-m", str(run), str(clip)],
                             capture_output=True, text=True, timeout=120)
    assert inspect.returncode == 0 and f"prediction: {answers[0][0]['label']}" in inspect.stdout, inspect.stderr


# --- the real PortAudio/ALSA capture path ------------------------------------------------------------
needs_alsa = pytest.mark.skipif(not virtual_mic.available(), reason="ALSA (alsa.conf) not installed")


@needs_alsa
def test_kws_listen_hears_keywords_from_the_virtual_microphone_and_stops_on_ctrl_c(converted_run, tmp_path):
    audio, truth = keyword_stream(("down", "beep", "up"), np.random.default_rng(12))
    with virtual_mic.VirtualMic(tmp_path / "mic", to_int16(audio)) as mic:
        listed = subprocess.run(listen_cmd("--list-devices"), env=mic.env(), capture_output=True, text=True,
                                timeout=60)
        assert virtual_mic.DEVICE in listed.stdout
        proc = subprocess.Popen(listen_cmd("-m", str(converted_run), "--device", virtual_mic.DEVICE, "--json",
                                           "--threshold", str(THRESHOLD)),
                                env=mic.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert mic.played.wait(60)
            time.sleep(1.5)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:  # a kws-listen that ignored the Ctrl-C must not outlive the test
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    # the device starts with the stream, so its times are the stream's (give or take a block)
    check_detections([(d["label"], d["time_s"]) for d in lines], truth)
    assert "input device 'kws_test_mic' at 16000 Hz" in err
    assert "stopped" in err and f"{len(lines)} detection(s)" in err and "dropped block(s)" in err


@needs_alsa
def test_a_device_that_stops_delivering_ends_with_a_message_and_the_summary(converted_run, tmp_path):
    audio = to_int16(word_audio("up", np.random.default_rng(3)))
    with virtual_mic.VirtualMic(tmp_path / "mic", np.tile(audio, 2), tail="stall") as mic:
        proc = subprocess.run(listen_cmd("-m", str(converted_run), "--device", virtual_mic.DEVICE),
                              env=mic.env(), capture_output=True, text=True, timeout=60)
        unknown = subprocess.run(listen_cmd("-m", str(converted_run), "--device", "no-such-mic"),
                                 env=mic.env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "stopped delivering audio" in proc.stderr and "s of audio" in proc.stderr
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert "no input device 'no-such-mic'" in unknown.stderr and "--list-devices" in unknown.stderr


@needs_alsa
def test_a_machine_with_no_input_device_is_one_line_naming_the_way_out(converted_run, tmp_path):
    """With no default input device, kws-listen -m MODEL (the README's first command) ended in a
    PortAudioError traceback."""
    (tmp_path / "none.conf").write_text("# no PCM devices at all\n")
    env = {**os.environ, "ALSA_CONFIG_PATH": f"{virtual_mic.ALSA_BASE_CONFIG}:{tmp_path / 'none.conf'}"}
    proc = subprocess.run(listen_cmd("-m", str(converted_run), "--duration", "1"), env=env,
                          capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-800:]
    assert lines[-1].startswith("Error: no default input device") and "--list-devices" in lines[-1]


@needs_alsa
def test_a_device_name_matching_several_devices_names_them(tmp_path):
    """--device "USB" where two devices' names hold it said 'no input device 'USB'', with sounddevice's
    first line ('Multiple input devices found for ...:') and none of the devices."""
    # kws-listen's device lookup in a process of its own: PortAudio reads the ALSA config once per process
    lookup = ("import sys\nfrom kws.edge.sources import DeviceError, MicrophoneSource\n"
              "try:\n    MicrophoneSource(16000, 'kws_test')\nexcept DeviceError as exc:\n    sys.exit(f'Error: {exc}')")
    with virtual_mic.VirtualMic(tmp_path / "mic", np.zeros(0, np.int16), tail="stall") as mic:  # listing opens it
        proc = subprocess.run([sys.executable, "-c", lookup], env=mic.env(), capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith("Error: --device 'kws_test' matches 3 input devices (") and "\n" not in line, line
    assert all(f"] {name}, ALSA" in line for name in ("kws_test_mic_raw", virtual_mic.DEVICE, virtual_mic.DEVICE_48K))
    assert line.endswith("); give its index or more of its name")


@needs_alsa
def test_a_48khz_microphone_is_resampled_to_the_model_rate(converted_run, tmp_path):
    from kws.edge.audio import resample

    audio, truth = keyword_stream(("beep", "down"), np.random.default_rng(13))
    with virtual_mic.VirtualMic(tmp_path / "mic", to_int16(resample(audio, SAMPLE_RATE, 48000))) as mic:
        proc = subprocess.run(listen_cmd("-m", str(converted_run), "--device", virtual_mic.DEVICE_48K,
                                         "--device-rate", "48000", "--json", "--threshold", str(THRESHOLD),
                                         "--duration", f"{len(audio) / SAMPLE_RATE:.2f}"),
                              env=mic.env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "input device 'kws_test_mic48' at 48000 Hz" in proc.stderr and "resampling to 16000 Hz" in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    check_detections([(d["label"], d["time_s"]) for d in lines], truth)
