"""The streaming (step) form of a tcn model: kws-convert writes it beside the window models, its scores
equal the window model's over a long stream (float within 1e-5, int8 within one quantization step),
the recognizer and kws-listen use it (also in the tflite-runtime 2.14 environment and, where
installed, the TFLite Micro interpreter), and manifests without it load as before."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import SAMPLE_RATE, keyword_stream
from conftest import FIXTURE_WORDS
from kws.edge.audio import write_wav
from kws.edge.errors import ManifestError
from kws.edge.frontend import Frontend
from kws.edge.manifest import Manifest, load_manifest
from kws.edge.recognizer import Recognizer
from kws.edge.runtime import TFLiteModel
from kws.edge.stepmodel import DIRECT_VIEWS, HOST_BUFFERS, PUBLIC_API, StepModel

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
EDGE_PYTHON = REPO / ".venv-edge" / "bin" / "python"
# a small tcn (2 blocks of width 16) trained briefly: what is tested is the equality of its two forms
TCN_OVERRIDES = ("train.epochs=3", "train.batch_size=16", "train.seed=3", "model.architecture=tcn",
                 "model.width=16", "model.blocks=2")
LONG_STREAM_S = 60
FLOAT_TOLERANCE = 1e-5
THRESHOLD = 0.4
STREAM_FILES = {"stream_float.tflite", "stream_int8.tflite", "stream_int8.cc", "stream_int8.h"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tcn_dist(tiny_dataset, tmp_path_factory) -> tuple[Path, list[str]]:
    """A tcn run on the tiny dataset converted with every format: (dist folder, converter messages)."""
    from kws.converters.convert import ConvertOptions, convert
    from kws.trainer.config import load_config, with_data
    from kws.trainer.train import train

    cfg = with_data(load_config(None, TCN_OVERRIDES), str(tiny_dataset), FIXTURE_WORDS)
    run = tmp_path_factory.mktemp("tcn") / "run"
    train(cfg, out=run, quiet=True)
    out = run / "dist"
    said: list[str] = []
    # the guard is opened wide: a briefly trained model may lose accuracy in int8, and what is tested
    # here is that the streaming form reproduces whatever the window int8 model computes
    convert(ConvertOptions(model=str(run), out=str(out), max_accuracy_drop=100.0, check_edge_env=False),
            say=said.append)
    return out, said


@pytest.fixture(scope="module")
def long_stream() -> np.ndarray:
    """60 s of the fixture words in quiet noise."""
    rng = np.random.default_rng(21)
    words = [FIXTURE_WORDS[i % len(FIXTURE_WORDS)] for i in range(40)]
    audio, _ = keyword_stream(words, rng, gap_s=0.5)
    return audio[: LONG_STREAM_S * SAMPLE_RATE]


def test_convert_writes_the_streaming_form_and_lists_it(tcn_dist):
    out, said = tcn_dist
    assert STREAM_FILES <= {p.name for p in out.iterdir()}
    manifest = load_manifest(out)
    section = manifest.streaming
    assert section is not None and section.step_frames == 3  # the default 30 ms step
    # the run's 40 ms hop is not a whole number of 30 ms steps: the manifest lists the step as its hop
    assert manifest.smoothing.hop_ms == 30.0
    assert "streaming: the run's hop of 40 ms is not a whole number of 30 ms steps; the manifest's hop is 30 ms" in said
    assert set(section.models) == {"int8", "float"}
    report = json.loads((out / "convert_report.json").read_text())["streaming"]
    # conv1 (3 frames), four 9-frame depthwise convolutions, the average over what is left
    assert [(s["layer"], s["frames"]) for s in report["states"]] == [
        ("conv1", 2), ("b1_1_dw", 8), ("b1_2_dw", 8), ("b2_1_dw", 8), ("b2_2_dw", 8), ("avg_pool", 98 - 2 - 32 - 3)]
    for key, entry in section.models.items():
        step = StepModel(out / entry.file)
        step.check_entry(entry, out / "manifest.json")
        assert [n for n, _ in entry.inputs] == ["frames"] + [f"state_{s['layer']}" for s in report["states"]]
        assert [n for n, _ in entry.outputs] == ["scores"] + [f"new_state_{s['layer']}" for s in report["states"]]
        assert entry.inputs[0][1].shape == (1, 3, 40) and entry.outputs[0][1].shape == (1, 5)
        assert [s for _, s in entry.inputs[1:]] == [s for _, s in entry.outputs[1:]]
        assert [s.shape[1:] for _, s in entry.inputs[1:]] == [tuple(s["shape"]) for s in report["states"]]
        assert (entry.inputs[0][1].dtype == "int8") == (key == "int8")
    assert Manifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest
    line = [m for m in said if m.startswith("streaming int8: stream_int8.tflite vs the window model")]
    assert len(line) == 1 and line[0].endswith("(0 quantization steps)"), said


def test_the_default_step_is_30_ms_or_a_shorter_hop_and_the_hop_is_whole_steps():
    from kws.converters.stream_export import default_step_frames, hop_for_step

    assert [default_step_frames(h) for h in (1, 2, 3, 4, 6, 9)] == [1, 2, 3, 3, 3, 3]
    assert default_step_frames(8, stride_ms=20.0) == 1
    assert [hop_for_step(h, 30.0) for h in (30.0, 40.0, 60.0, 90.0, 20.0)] == [30.0, 30.0, 60.0, 90.0, 30.0]
    assert hop_for_step(40.0, 20.0) == 40.0


def _stream_frames(audio: np.ndarray, manifest: Manifest) -> np.ndarray:
    return Frontend(manifest.frontend).features(audio)


@pytest.mark.parametrize("key", ["float", "int8"])
def test_step_scores_equal_the_window_model_over_a_long_stream(tcn_dist, long_stream, key):
    from kws.converters.stream_export import compare_forms

    out, _ = tcn_dist
    manifest = load_manifest(out)
    frames = _stream_frames(long_stream, manifest)
    assert len(frames) >= LONG_STREAM_S * 100 - 3
    window = TFLiteModel(out / manifest.models[key].file)
    step = StepModel(out / manifest.streaming.models[key].file)
    check = compare_forms(window, step, frames)
    assert check["windows_compared"] == (len(frames) - 98) // 3 + 1
    if key == "float":
        assert check["max_abs_diff_vs_window"] <= FLOAT_TOLERANCE
    else:
        assert check["max_step_diff_vs_window"] <= 1
    print(f"{key}: {check}")


def test_both_ways_of_passing_the_state_give_the_same_scores(tcn_dist, long_stream, monkeypatch):
    out, _ = tcn_dist
    manifest = load_manifest(out)
    frames = _stream_frames(long_stream[: 5 * SAMPLE_RATE], manifest)
    direct = StepModel(out / "stream_int8.tflite", runtime="litert")
    monkeypatch.setattr(StepModel, "_raw_invoker", lambda self: None)
    public = StepModel(out / "stream_int8.tflite", runtime="litert")
    assert (direct.state_copy, public.state_copy) == (DIRECT_VIEWS, PUBLIC_API)
    for start in range(0, len(frames) - 2, 3):
        assert np.array_equal(direct.step(frames[start:start + 3]), public.step(frames[start:start + 3]))
    public.reset()
    direct.reset()
    assert np.array_equal(direct.step(frames[:3]), public.step(frames[:3]))


@pytest.mark.parametrize("key", ["float", "int8"])
def test_the_c_api_gives_the_python_interpreters_scores_over_a_long_stream(tcn_dist, long_stream, key):
    """ai-edge-litert's C API (libLiteRt.so through ctypes, the default) and its Python interpreter run
    the same kernels: the window model's probabilities and the step model's scores, its state carried
    over 60 s and reset in between, are identical."""
    from kws.edge import litert_c

    if litert_c.load() is None:
        pytest.skip("libLiteRt.so of a tested ai-edge-litert version is not installed")
    out, _ = tcn_dist
    manifest = load_manifest(out)
    frames = _stream_frames(long_stream, manifest)
    c_window = TFLiteModel(out / manifest.models[key].file)
    py_window = TFLiteModel(out / manifest.models[key].file, runtime="litert")
    assert (c_window.runtime.name, py_window.runtime.name) == ("litert-c", "litert")
    assert (c_window.input_spec, c_window.output_spec) == (py_window.input_spec, py_window.output_spec)
    windows = np.stack([frames[i:i + 98] for i in range(0, len(frames) - 98, 50)])
    assert np.array_equal(c_window.predict_batch(windows), py_window.predict_batch(windows))
    c_step = StepModel(out / manifest.streaming.models[key].file)
    py_step = StepModel(out / manifest.streaming.models[key].file, runtime="litert")
    assert (c_step.state_copy, c_step.runtime.name) == (HOST_BUFFERS, "litert-c")
    assert (c_step.input_specs, c_step.output_specs) == (py_step.input_specs, py_step.output_specs)
    steps = 0
    for start in range(0, len(frames) - 2, 3):
        assert np.array_equal(c_step.step(frames[start:start + 3]), py_step.step(frames[start:start + 3]))
        steps += 1
        if start == 3 * 1000:  # a new stream in the middle: both forget the same history
            c_step.reset()
            py_step.reset()
    assert steps >= LONG_STREAM_S * 100 // 3 - 1


@pytest.mark.parametrize("key", ["float", "int8"])
def test_recognizer_streams_with_the_same_scores_and_detections(tcn_dist, long_stream, key):
    out, _ = tcn_dist
    audio = long_stream[: 20 * SAMPLE_RATE]
    for hop_ms in (30, 60, 90):
        results = {}
        for streaming in (True, False):
            rec = Recognizer.from_manifest(out, model=key, hop_ms=hop_ms, threshold=THRESHOLD, keep_scores=True,
                                           streaming=streaming)
            dets = []
            for start in range(0, len(audio), 1000):  # chunks that do not line up with hops or steps
                dets += rec.process(audio[start:start + 1000])
            results[streaming] = (rec.form, dets, *rec.pop_scores())
        (form_s, dets_s, times_s, scores_s), (form_w, dets_w, times_w, scores_w) = results[True], results[False]
        assert (form_s, form_w) == ("streaming", "window")
        assert np.array_equal(times_s, times_w) and times_s[0] == pytest.approx(1.0)
        tolerance = FLOAT_TOLERANCE if key == "float" else 1.0 / 256 + 1e-9
        assert np.max(np.abs(scores_s - scores_w)) <= tolerance
        assert [(d.label, d.time_s) for d in dets_s] == [(d.label, d.time_s) for d in dets_w]
        assert dets_w, "the stream should give detections to compare"


def test_streaming_scores_do_not_depend_on_chunk_sizes(tcn_dist, long_stream):
    """The frontend computes a chunk's frames in one call and hands them on hop by hop: chunks shorter
    than a frame, a hop, or longer than the clip all give the same scores at the same times."""
    out, _ = tcn_dist
    audio = long_stream[: 5 * SAMPLE_RATE]
    results = []
    for chunk in (7, 480, 1601, 17000):
        rec = Recognizer.from_manifest(out, threshold=THRESHOLD, keep_scores=True)
        assert rec.form == "streaming" and rec.hop_ms == 30.0
        dets = []
        for start in range(0, len(audio), chunk):
            dets += rec.process(audio[start:start + chunk])
        results.append(([(d.label, d.time_s, d.score) for d in dets], *rec.pop_scores()))
        assert rec.timer.count == len(results[-1][1])
    for dets, times, scores in results[1:]:
        assert dets == results[0][0]
        assert np.array_equal(times, results[0][1]) and np.array_equal(scores, results[0][2])


def test_the_window_model_opens_only_when_the_window_form_runs(tcn_dist):
    out, _ = tcn_dist
    rec = Recognizer.from_manifest(out)
    assert rec.form == "streaming" and not rec.model.is_open  # its sha256 was checked, no interpreter
    assert rec.model.num_labels == 5 and rec.model.input_shape == (1, 98, 40)
    for kwargs in ({"streaming": False}, {"hop_ms": 40}):
        rec = Recognizer.from_manifest(out, **kwargs)
        assert rec.form == "window" and getattr(rec.model, "is_open", True)  # a TFLiteModel is open
    window = Recognizer.from_manifest(out).model
    clip = np.zeros((98, 40), np.float32)
    np.testing.assert_array_equal(window.predict(clip), TFLiteModel(out / "model_int8.tflite").predict(clip))
    assert window.is_open


def test_hops_that_are_not_whole_steps_use_the_window_model(tcn_dist):
    out, _ = tcn_dist
    rec = Recognizer.from_manifest(out, hop_ms=40)
    assert rec.form == "window" and "not a multiple of the streaming step (30 ms)" in rec.describe_form()
    rec = Recognizer.from_manifest(out / "stream_int8.tflite")  # the step model's own file: streams
    assert rec.form == "streaming" and rec.describe_form().startswith("streaming: stream_int8.tflite, 3 frames")


def test_a_manifest_without_streaming_loads_and_runs_the_window_model(tcn_dist, converted_run, tmp_path):
    out, _ = tcn_dist
    old = tmp_path / "old"
    shutil.copytree(out, old)
    data = json.loads((old / "manifest.json").read_text())
    del data["streaming"]
    (old / "manifest.json").write_text(json.dumps(data))
    rec = Recognizer.from_manifest(old)
    assert rec.form == "window" and "lists no streaming form" in rec.describe_form()
    # what kws-convert writes for a model without a streaming form has no streaming key at all
    assert "streaming" not in json.loads((converted_run / "manifest.json").read_text())
    assert load_manifest(converted_run).streaming is None


def test_kws_ensemble_says_each_member_runs_as_kws_listen_runs_it(tcn_dist, converted_run, tmp_path):
    """kws ensemble called a tcn member "window" (its manifest's family) while kws-listen runs its
    streaming form: each member's line now names the form that runs, as kws-listen does."""
    from click.testing import CliRunner

    from kws.evaluation.ensemble_cli import main as ensemble_main

    out, _ = tcn_dist
    res = CliRunner().invoke(ensemble_main, [str(out), str(converted_run), "--out", str(tmp_path / "pair")])
    assert res.exit_code == 0, res.output
    lines = {line.split(": ", 1)[0].strip(): line for line in res.output.splitlines()}
    assert lines["member1"].startswith(f"  member1: {out.resolve()} (int8, hop 30 ms; streaming: "
                                       "stream_int8.tflite, 3 frames per step, "), res.output
    assert lines["member2"] == (f"  member2: {converted_run.resolve()} (int8, hop 40 ms; window model every hop "
                                "(the manifest lists no streaming form of this model))"), res.output


def test_kws_ensemble_takes_a_stream_file_as_the_model_it_streams(tcn_dist, converted_run, tmp_path):
    """kws-listen takes dist/stream_int8.tflite as its window model, streamed; kws ensemble refused it
    ("does not describe stream_int8.tflite"): the member is now that int8 model, run streaming."""
    from click.testing import CliRunner

    from kws.evaluation.ensemble_cli import main as ensemble_main

    out, _ = tcn_dist
    stream_file = str(out / "stream_int8.tflite")
    res = CliRunner().invoke(ensemble_main, [stream_file, str(converted_run), "--out", str(tmp_path / "pair")])
    assert res.exit_code == 0, res.output
    assert [m.model for m in load_manifest(tmp_path / "pair").ensemble.members] == ["int8", "int8"]
    assert f"  member1: {out.resolve()} (int8, hop 30 ms; streaming: stream_int8.tflite" in res.output
    res = CliRunner().invoke(ensemble_main, [stream_file, str(converted_run), "--model", "float",
                                             "--out", str(tmp_path / "other")])
    assert res.exit_code == 1
    assert res.output.strip().splitlines()[-1] == (
        f"Error: {stream_file}: the file is the 'int8' model, --model asks for 'float'")


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(step_frames=0), "streaming.step_frames must be in [1, 1000]"),
    (lambda s: s.pop("step_frames"), "streaming.step_frames is missing"),
    (lambda s: s.update(speed=1), "streaming.speed is not a known field"),
    (lambda s: s["models"]["int8"]["outputs"].pop(), "streaming.models.int8.outputs must list as many"),
    (lambda s: s["models"]["int8"].update(file="../x.tflite"), "streaming.models.int8.file must be a file name"),
    (lambda s: s["models"]["int8"]["inputs"][0].pop("name"), "streaming.models.int8.inputs[0].name is missing"),
])
def test_a_bad_streaming_section_is_one_line_naming_the_field(tcn_dist, tmp_path, change, message):
    out, _ = tcn_dist
    data = json.loads((out / "manifest.json").read_text())
    change(data["streaming"])
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_replaced_step_model_is_refused(tcn_dist, tmp_path):
    out, _ = tcn_dist
    copy = tmp_path / "dist"
    shutil.copytree(out, copy)
    shutil.copy(copy / "stream_float.tflite", copy / "stream_int8.tflite")
    with pytest.raises(ManifestError, match=r"stream_int8.tflite: does not match .* \(sha256 differs"):
        Recognizer.from_manifest(copy)
    assert Recognizer.from_manifest(copy, streaming=False).form == "window"


def test_the_c_array_holds_the_step_model_with_its_ops_states_and_arena(tcn_dist, tmp_path):
    out, _ = tcn_dist
    data = (out / "stream_int8.tflite").read_bytes()
    source, header = (out / "stream_int8.cc").read_text(), (out / "stream_int8.h").read_text()
    body = source.split("g_kws_stream_model_data[] = {", 1)[1].split("};", 1)[0]
    assert bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body)) == data
    for method in ("AddConcatenation", "AddStridedSlice", "AddConv2D", "AddDepthwiseConv2D", "AddAveragePool2D"):
        assert f"X({method})" in header
    states = StepModel(out / "stream_int8.tflite").input_specs[1:]
    assert f"constexpr int kKwsNumStates = {len(states)};" in header
    sizes = ", ".join(str(int(np.prod(s.shape))) for s in states)
    assert f"constexpr int kKwsStateBytes[kKwsNumStates] = {{{sizes}}};" in header
    arena = int(re.search(r"kKwsStreamTensorArenaSize = (\d+);", header).group(1))
    window_arena = int(re.search(r"kKwsTensorArenaSize = (\d+);", (out / "model_int8.h").read_text()).group(1))
    assert 1024 < arena < window_arena  # a step holds a few frames per layer, the window 98
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed: C++ compile check skipped")
    main = tmp_path / "main.cc"
    main.write_text('#include "model_int8.h"\n#include "stream_int8.h"\n'
                    "int main() { return g_kws_stream_model_data_len == " + str(len(data))
                    + " && kKwsNumStates > 0 && kKwsLabels[0] == kKwsLabels[0] && kKwsStreamLabels[2][0] == 'u'"
                    " ? 0 : 1; }\n")
    exe = tmp_path / "check"
    subprocess.run(["g++", "-std=c++17", "-I", str(out), str(main), str(out / "model_int8.cc"),
                    str(out / "stream_int8.cc"), "-o", str(exe)], check=True, capture_output=True)
    assert subprocess.run([str(exe)]).returncode == 0


TFLM_STEP_SCRIPT = r"""
import json, sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
step_model, window_model, frames_file, arena, n_inputs = sys.argv[1:6]
frames = np.load(frames_file)  # int8 frames of the stream, (n, features)
it = runtime.Interpreter.from_bytes(open(step_model, "rb").read(), arena_size=int(arena))
window = runtime.Interpreter.from_bytes(open(window_model, "rb").read(), arena_size=4 * 1024 * 1024)
ins = [it.get_input_details(i) for i in range(int(n_inputs))]
step_frames, window_frames = int(ins[0]["shape"][1]), int(window.get_input_details(0)["shape"][1])
states = [np.full(d["shape"], d["quantization_parameters"]["zero_points"][0], d["dtype"]) for d in ins[1:]]
lead = (-window_frames) % step_frames
stream = np.concatenate([np.zeros((lead, frames.shape[1]), np.int8), frames])
worst, compared = 0, 0
for start in range(0, len(stream) - step_frames + 1, step_frames):
    it.set_input(stream[None, start:start + step_frames], 0)
    for k, s in enumerate(states):
        it.set_input(s, k + 1)
    it.invoke()
    states = [np.array(it.get_output(k + 1), copy=True) for k in range(len(states))]
    end = start + step_frames - lead
    if end >= window_frames:
        window.set_input(frames[None, end - window_frames:end], 0)
        window.invoke()
        diff = np.abs(it.get_output(0).astype(int) - window.get_output(0).astype(int)).max()
        worst, compared = max(worst, int(diff)), compared + 1
print(json.dumps({"max_step_diff": worst, "windows_compared": compared}))
"""


def test_the_step_model_runs_in_the_tflite_micro_interpreter(tcn_dist, long_stream, tmp_path):
    """With KWS_TFLM_PYTHON naming a python that has the tflite-micro package, the int8 step model
    runs in the TFLite Micro interpreter (reference kernels) within the arena its header states, and
    its scores equal the window int8 model's in the same interpreter within one quantization step.
    (TFLite Micro's reference kernels and LiteRT's optimized ones differ by up to two steps on the
    same model, so each form is compared within one runtime.)"""
    python = os.environ.get("KWS_TFLM_PYTHON")
    if not python:
        pytest.skip("KWS_TFLM_PYTHON not set (a python with tflite-micro): TFLite Micro step check skipped")
    out, _ = tcn_dist
    manifest = load_manifest(out)
    step = StepModel(out / "stream_int8.tflite")
    frames = _stream_frames(long_stream[: 4 * SAMPLE_RATE], manifest)
    spec = step.input_specs[0]
    quantized = np.clip(np.rint(frames / np.float32(spec.scale)) + spec.zero_point, -128, 127).astype(np.int8)
    np.save(tmp_path / "frames.npy", quantized)
    arena = int(re.search(r"kKwsStreamTensorArenaSize = (\d+);", (out / "stream_int8.h").read_text()).group(1))
    res = subprocess.run([python, "-c", TFLM_STEP_SCRIPT, str(out / "stream_int8.tflite"),
                          str(out / "model_int8.tflite"), str(tmp_path / "frames.npy"), str(arena),
                          str(1 + step.num_states)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    micro = json.loads(res.stdout.strip().splitlines()[-1])
    assert micro["windows_compared"] == (len(frames) - 98) // 3 + 1
    assert micro["max_step_diff"] <= 1
    sys.path.insert(0, str(REPO))
    from bench.bench_convert import measure_arena

    measured = measure_arena(python, out / "stream_int8.tflite")
    assert measured and measured <= arena <= 1.25 * measured  # the header's estimate covers it, not lavishly
    print(f"TFLite Micro: {micro}, arena {measured} B needed, {arena} B estimated")


def test_kws_listen_streams_in_the_tflite_runtime_environment(tcn_dist, long_stream, tmp_path):
    """CI's second venv: tflite-runtime 2.14, numpy<2, no TensorFlow: the same detections streaming
    and not, and the summary says which form ran."""
    if not EDGE_PYTHON.exists():
        pytest.skip(f"{EDGE_PYTHON} missing: `make test` creates it (make edge-venv)")
    out, _ = tcn_dist
    wav = tmp_path / "stream.wav"
    write_wav(wav, long_stream[: 20 * SAMPLE_RATE], SAMPLE_RATE)
    runs = {}
    for flag in ("", "--no-streaming"):
        summary = tmp_path / f"summary{flag}.json"
        proc = subprocess.run([str(EDGE_PYTHON.parent / "kws-listen"), "-m", str(out), "--wav", str(wav), "--json",
                               "--threshold", str(THRESHOLD), "--hop-ms", "30", "--summary-json", str(summary),
                               *([flag] if flag else [])], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "tflite-runtime 2.14.0" in proc.stderr
        runs[flag] = ([json.loads(line) for line in proc.stdout.splitlines()], json.loads(summary.read_text()),
                      proc.stderr)
    (dets_s, sum_s, err_s), (dets_w, sum_w, err_w) = runs[""], runs["--no-streaming"]
    assert (sum_s["form"], sum_w["form"]) == ("streaming", "window")
    assert "streaming: stream_int8.tflite, 3 frames per step" in err_s and "streaming turned off" in err_w
    assert [(d["label"], d["time_s"]) for d in dets_s] == [(d["label"], d["time_s"]) for d in dets_w]
    assert sum_s["hops"] == sum_w["hops"] == (20 * 1000 - 1000) // 30 + 1
