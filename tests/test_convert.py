"""kws-convert on the trained fixture run: int8/float TFLite, frozen .pb, C array, manifest and
report, the accuracy guard, bad inputs, and the int8 model in the tflite-runtime 2.14 environment."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kws.converters import cli
from kws.converters.convert import FORMATS, parse_formats
from kws.converters.errors import FormatError
from kws.converters.evaluate import Scores, edge_python
from kws.converters.flatbuffer import BUILTIN_OPERATORS, parse_model
from kws.converters.opcheck import TFLITE_RUNTIME_2_14_MAX_VERSIONS, op_uses, unsupported
from kws.converters.report import guard_failures
from kws.edge.manifest import load_manifest
from kws.edge.runtime import TFLiteModel

REPO = Path(__file__).resolve().parent.parent
ALL_FILES = {"model_int8.tflite", "model_float.tflite", "frozen_graph.pb", "model_int8.cc", "model_int8.h",
             "manifest.json", "convert_report.json"}
DYNAMIC_BATCH_OPS = {"SHAPE", "STRIDED_SLICE", "PACK"}
ERROR_LINE = re.compile(r"^kws-convert: error: .+$")

pytestmark = pytest.mark.slow


def _run_cli(args: list[str]):
    return CliRunner().invoke(cli.main, args, catch_exceptions=False)


def _error_lines(result) -> list[str]:
    text = getattr(result, "stderr", None)
    if text is None:  # click < 8.2 mixes the streams
        text = result.output
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def converted(trained_run, tmp_path_factory):
    """The fixture run converted once, with every format: (out dir, CLI result)."""
    out = tmp_path_factory.mktemp("convert") / "dist"
    result = _run_cli(["-m", str(trained_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result


@pytest.fixture(scope="module")
def test_features(trained_run):
    """The run's test split features and labels, as kws-convert evaluates them."""
    from kws.converters.source import RunData, open_run

    src = open_run(str(trained_run))
    ev = RunData(src).evaluation()
    return ev.x, ev.y


@pytest.fixture(scope="module")
def keras_model(trained_run):
    import keras

    return keras.models.load_model(trained_run / "model.keras", compile=False)


def test_writes_every_artifact_and_prints_a_table(converted):
    out, result = converted
    assert {p.name for p in out.iterdir()} == ALL_FILES
    assert "model_int8.tflite" in result.stdout and "accuracy" in result.stdout
    assert "int8 guard (max drop 1 points; _silence_ and _unknown_ as one class): passed" in result.stdout
    assert "int8 per speaker (" in result.stdout and "largest changes" in result.stdout
    assert not list(out.parent.glob(".kws-convert-*")), "staging folder left behind"


def test_ds_cnn_gets_no_streaming_form_and_the_table_says_why(converted):
    out, result = converted
    assert not {p.name for p in out.iterdir()} & {"stream_int8.tflite", "stream_float.tflite", "stream_int8.cc"}
    lines = [line for line in result.stdout.splitlines() if line.startswith("streaming")]
    assert lines == ["streaming: none (layer conv1 (Conv2D) strides or dilates (strides (2, 2), dilation (1, 1)))"]
    report = json.loads((out / "convert_report.json").read_text())
    assert report["streaming"] == {"written": False, "reason": lines[0][len("streaming: none ("):-1]}
    assert load_manifest(out).streaming is None


def test_int8_model_is_full_integer_with_batch_1(converted):
    out, _ = converted
    model = TFLiteModel(out / "model_int8.tflite")
    assert model.input_spec.dtype == "int8" and model.output_spec.dtype == "int8"
    assert model.input_spec.shape == (1, 98, 40) and model.output_spec.shape == (1, 5)
    assert model.input_spec.scale > 0 and model.output_spec.scale > 0
    info = parse_model((out / "model_int8.tflite").read_bytes())
    float_tensors = [t.name for t in info.tensors if t.dtype == "float32"]
    assert not float_tensors, f"float tensors in the int8 model: {float_tensors}"


def test_only_builtin_ops_that_tflite_runtime_2_14_runs(converted):
    out, _ = converted
    for name in ("model_int8.tflite", "model_float.tflite"):
        info = parse_model((out / name).read_bytes(), name)
        uses = op_uses(info)
        assert uses and not any(u.custom for u in uses)
        assert not unsupported(uses), unsupported(uses)
        assert not {u.name for u in uses} & DYNAMIC_BATCH_OPS, "batch is not fixed"
        assert info.num_subgraphs == 1


def test_manifest_describes_the_models(converted, trained_run):
    from kws.trainer.config import load_config

    out, _ = converted
    manifest = load_manifest(out / "manifest.json")
    cfg = load_config(trained_run / "config.yaml")
    assert manifest.labels == ("_silence_", "_unknown_", "up", "down", "beep")
    assert manifest.frontend == cfg.features and manifest.smoothing == cfg.smoothing
    assert manifest.config_digest == cfg.digest() and manifest.thresholds == {}
    assert set(manifest.models) == {"int8", "float"} and manifest.default_model() == "int8"
    for entry in manifest.models.values():
        data = (out / entry.file).read_bytes()
        assert entry.size_bytes == len(data)
        import hashlib
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
        TFLiteModel(out / entry.file).check_entry(entry, out / "manifest.json")
    assert manifest.models["int8"].input.quantized and not manifest.models["float"].input.quantized


def test_int8_accuracy_is_close_to_keras(converted, test_features, keras_model):
    out, _ = converted
    x, y = test_features
    keras_pred = keras_model.predict(x, verbose=0).argmax(axis=1)
    int8 = TFLiteModel(out / "model_int8.tflite").predict_batch(x)
    flt = TFLiteModel(out / "model_float.tflite").predict_batch(x)
    assert np.mean(int8.argmax(axis=1) == keras_pred) >= 0.85
    assert np.array_equal(flt.argmax(axis=1), keras_pred)
    assert np.max(np.abs(flt - keras_model.predict(x, verbose=0))) < 1e-4
    report = json.loads((out / "convert_report.json").read_text())
    assert abs(report["artifacts"]["int8"]["accuracy"] - np.mean(int8.argmax(axis=1) == y)) < 1e-9


def test_frozen_graph_reloads_and_matches_keras(converted, test_features, keras_model):
    import tensorflow as tf

    out, _ = converted
    x, _ = test_features
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((out / "frozen_graph.pb").read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    assert not [n.op for n in graph_def.node if "Variable" in n.op], "variables left in the frozen graph"
    with tf.compat.v1.Session(graph=graph) as sess:
        y = sess.run("probabilities:0", feed_dict={"features:0": x})
    assert np.max(np.abs(y - keras_model.predict(x, verbose=0))) < 1e-5


def test_c_array_holds_the_int8_model(converted, tmp_path):
    out, _ = converted
    data = (out / "model_int8.tflite").read_bytes()
    source = (out / "model_int8.cc").read_text()
    header = (out / "model_int8.h").read_text()
    assert "alignas(16) const unsigned char g_kws_model_data[]" in source
    body = source.split("g_kws_model_data[] = {", 1)[1].split("};", 1)[0]
    values = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", body))
    assert values == data
    assert f"const unsigned int g_kws_model_data_len = {len(data)};" in source
    assert "extern const unsigned char g_kws_model_data[];" in header
    arena = int(re.search(r"constexpr int kKwsTensorArenaSize = (\d+);", header).group(1))
    assert 10_000 < arena < 1_000_000
    for method in ("AddConv2D", "AddDepthwiseConv2D", "AddFullyConnected", "AddSoftmax"):
        assert f"X({method})" in header
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed: C++ compile check skipped")
    main = tmp_path / "main.cc"
    main.write_text('#include "model_int8.h"\n#include <cstdint>\n#include <cstring>\n'
                    "int main() { if (reinterpret_cast<uintptr_t>(g_kws_model_data) % 16) return 2;\n"
                    "  if (std::memcmp(g_kws_model_data + 4, \"TFL3\", 4)) return 3;\n"
                    "  return g_kws_model_data_len == " + str(len(data)) + " && kKwsNumLabels == 5 ? 0 : 4; }\n")
    exe = tmp_path / "check"
    subprocess.run(["g++", "-std=c++17", "-I", str(out), str(main), str(out / "model_int8.cc"), "-o", str(exe)],
                   check=True, capture_output=True)
    assert subprocess.run([str(exe)]).returncode == 0


def test_report_has_accuracy_ops_sizes_and_runtimes(converted):
    out, _ = converted
    r = json.loads((out / "convert_report.json").read_text())
    assert r["evaluation"]["split"] == "testing" and r["evaluation"]["clips"] > 0
    assert set(r["artifacts"]) == set(FORMATS)
    for key in ("int8", "float"):
        art = r["artifacts"][key]
        assert art["size_bytes"] == (out / art["file"]).stat().st_size
        assert set(art["per_class"]) == set(r["labels"])
        assert all("change_points" in v for v in art["per_class"].values())
        assert all(o["supported"] and o["version"] >= 1 for o in art["ops"])
        assert art["runtimes"]["ai-edge-litert"]["loaded"] is True
        edge = art["runtimes"]["tflite-runtime"]
        assert edge["loaded"] is True or edge["status"].startswith("not installed")
    assert r["artifacts"]["pb"]["max_abs_diff_vs_keras"] <= 1e-5
    assert r["artifacts"]["c"]["array_length"] == r["artifacts"]["int8"]["size_bytes"]
    assert r["guard"]["checked"] and r["guard"]["passed"] and r["guard"]["failures"] == []
    assert r["guard"]["max_accuracy_drop"] == 1.0 and r["guard"]["reference"] == "model.keras"
    assert r["artifacts"]["int8"]["micro_arena"]["estimated_arena_bytes"] > 0
    assert r["artifacts"]["int8"]["calibration"]["by_label"].keys() == set(r["labels"])
    # per test speaker: Keras vs int8 on the same clips, counts adding up to the speakers' clips
    split = json.loads((Path(r["model"]) / "split.json").read_text())
    per = r["artifacts"]["int8"]["per_speaker"]
    keras = r["keras"]
    assert per and set(per) == set(keras["per_speaker"])
    assert sum(v["clips"] for v in per.values()) == sum(keras["speaker_counts"].values())
    for name, v in per.items():
        assert v["change_points"] == pytest.approx((v["accuracy"] - v["keras"]) * 100)
        assert v["keras"] == keras["per_speaker"][name]
    assert set(per) == {g for _, _, g in split["splits"]["testing"] if g is not None}


def test_guard_rejects_int8_keeps_float_and_report(trained_run, tmp_path, monkeypatch):
    import kws.converters.convert as convert_module

    # what a rejection does (the guard's rule itself: test_parse_formats_and_guard_rules and below);
    # the fixture's int8 model may lose nothing, so the guard is made to ask for it to gain a point
    real_guard = convert_module.guard_failures
    monkeypatch.setattr(convert_module, "guard_failures", lambda ref, int8, drop: real_guard(ref, int8, -1.0))
    out = tmp_path / "dist"
    out.mkdir()  # empty: nothing of an earlier conversion to keep, so the float fallback goes in
    result = _run_cli(["-m", str(trained_run), "--out", str(out), "--formats", "int8,float,c",
                       "--no-edge-check"])
    assert result.exit_code == 3
    assert any(ERROR_LINE.match(line) and "points" in line for line in _error_lines(result))
    names = {p.name for p in out.iterdir()}
    assert names == {"model_int8.rejected.tflite", "model_float.tflite", "manifest.json", "convert_report.json"}
    report = json.loads((out / "convert_report.json").read_text())
    assert report["guard"]["passed"] is False and report["guard"]["failures"]
    assert report["artifacts"]["int8"]["status"] == "rejected"
    assert set(load_manifest(out).models) == {"float"}
    assert not (tmp_path / "dist.rejected").exists()


def test_a_rejected_conversion_leaves_an_earlier_good_one_as_it_was(converted, trained_run, tmp_path,
                                                                   monkeypatch):
    """Re-converting into a folder holding a good int8 model deleted it when the new int8 was rejected,
    and replaced the manifest (its calibrated thresholds too) with one serving only the new float."""
    import kws.converters.convert as convert_module

    real_guard = convert_module.guard_failures
    monkeypatch.setattr(convert_module, "guard_failures", lambda ref, int8, drop: real_guard(ref, int8, -1.0))
    out = tmp_path / "dist"
    shutil.copytree(converted[0], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "model_int8.tflite" in before and "int8" in load_manifest(out).models
    result = _run_cli(["-m", str(trained_run), "--out", str(out), "--formats", "int8,float,c",
                       "--no-edge-check"])
    assert result.exit_code == 3
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    rejected = tmp_path / "dist.rejected"
    assert {p.name for p in rejected.iterdir()} == {"model_int8.rejected.tflite", "model_float.tflite",
                                                   "manifest.json", "convert_report.json"}
    assert set(load_manifest(rejected).models) == {"float"}
    report = json.loads((rejected / "convert_report.json").read_text())
    assert report["out"] == str(rejected.resolve()) and report["guard"]["passed"] is False
    error = [line for line in _error_lines(result) if ERROR_LINE.match(line)]
    assert len(error) == 1 and f"in {rejected.resolve()}" in error[0]
    assert f"{out} holds an earlier conversion, left as it was" in error[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "dist.rejected"]  # no staging folder left


def test_a_later_good_conversion_keeps_and_names_an_earlier_rejected_one(trained_run, tmp_path):
    """<out>.rejected (an earlier conversion that failed its checks) stayed beside <out> after a later
    one succeeded, without a word, for a user browsing the folder to take for the current one. It is
    kept (the user's to delete) and named in a note."""
    out = tmp_path / "dist"
    rejected = tmp_path / "dist.rejected"
    rejected.mkdir()
    (rejected / "convert_report.json").write_text('{"guard": {"passed": false}}\n')
    result = _run_cli(["-m", str(trained_run), "--out", str(out), "--formats", "float", "--no-edge-check"])
    assert result.exit_code == 0, result.output
    assert (f"note: {rejected} holds an earlier conversion that failed its checks (convert_report.json there "
            "says why), not this one; it is kept: delete it when you no longer need it") in result.output
    assert [p.name for p in rejected.iterdir()] == ["convert_report.json"]
    assert (out / "model_float.tflite").is_file()
    shutil.rmtree(rejected)
    result = _run_cli(["-m", str(trained_run), "--out", str(out), "--formats", "float", "--no-edge-check"])
    assert result.exit_code == 0 and "rejected" not in result.output


def test_an_int8_model_with_ops_tflite_runtime_cannot_run_gets_no_c_files(trained_run, tmp_path, monkeypatch):
    """C files were written for an int8 model using ops tflite-runtime 2.14 cannot run (exit 3), where a
    rejected int8 model and a streaming form that failed its checks get none: TFLite Micro would be
    handed a model that failed a check."""
    from kws.converters import opcheck

    monkeypatch.setitem(opcheck.TFLITE_RUNTIME_2_14_MAX_VERSIONS, "SOFTMAX", 0)  # as if 2.14 had no SOFTMAX
    out = tmp_path / "dist"
    result = _run_cli(["-m", str(trained_run), "--out", str(out), "--formats", "int8,c", "--no-edge-check"])
    assert result.exit_code == 3
    error = [line for line in _error_lines(result) if ERROR_LINE.match(line)]
    assert len(error) == 1 and "int8: ops not supported by tflite-runtime 2.14.0: SOFTMAX v" in error[0]
    assert {p.name for p in out.iterdir()} == {"model_int8.tflite", "manifest.json", "convert_report.json"}
    report = json.loads((out / "convert_report.json").read_text())
    assert report["guard"]["passed"] is True and report["artifacts"]["int8"]["ops_supported"] is False
    assert report["artifacts"]["c"] == {"file": "model_int8.cc", "files": [], "accuracy": None,
                                        "status": "not written: model_int8.tflite uses ops tflite-runtime 2.14.0 "
                                                  "cannot run"}


def test_formats_subset_writes_only_those_files(trained_run, tmp_path):
    out = tmp_path / "dist"
    out.mkdir()
    (out / "model_float.tflite").write_bytes(b"an earlier conversion's")  # another format: kept, and said
    result = _run_cli(["-m", str(trained_run), "--out", str(out), "--formats", "c", "--no-edge-check",
                       "--embedding-quantization", "full"])
    assert result.exit_code == 0, result.output
    assert f"note: model_float.tflite in {out} is from an earlier conversion" in result.output
    assert "--embedding-quantization: not used (ds_cnn has no speech embedding" in result.output
    # no manifest: it would name a model_int8.tflite that was not asked for
    assert {p.name for p in out.iterdir()} == {"model_int8.cc", "model_int8.h", "convert_report.json",
                                               "model_float.tflite"}
    report = json.loads((out / "convert_report.json").read_text())
    assert report["artifacts"]["int8"]["written"] is False and report["guard"]["passed"]
    assert report["artifacts"]["int8"]["runtimes"]["tflite-runtime"]["status"].startswith("not checked")


@pytest.mark.parametrize("case", ["missing", "half_written", "corrupt"])
def test_bad_model_folder_is_a_one_line_error(case, trained_run, tmp_path):
    run = tmp_path / "run"
    if case != "missing":
        shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("logs", "ckpts"))
        if case == "half_written":
            (run / "model.keras").unlink()
        else:
            data = (run / "model.keras").read_bytes()
            (run / "model.keras").write_bytes(data[: len(data) // 2])
    out = tmp_path / "dist"
    result = _run_cli(["-m", str(run), "--out", str(out)])
    assert result.exit_code == 1
    lines = _error_lines(result)
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]) and str(run) in lines[0], lines
    assert not out.exists() and not list(tmp_path.glob(".kws-convert-*"))
    if case == "corrupt":
        assert not (run / "dist").exists()


def test_unknown_format_is_a_usage_error(trained_run, tmp_path):
    result = _run_cli(["-m", str(trained_run), "--out", str(tmp_path / "dist"), "--formats", "int8,onnx"])
    assert result.exit_code == 2
    lines = _error_lines(result)
    assert len(lines) == 1 and "onnx" in lines[0] and ERROR_LINE.match(lines[0])
    assert not (tmp_path / "dist").exists()


def test_unwritable_output_is_a_one_line_error(trained_run, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _run_cli(["-m", str(trained_run), "--out", str(blocker / "dist")])
    assert result.exit_code == 1
    lines = _error_lines(result)
    assert len(lines) == 1 and ERROR_LINE.match(lines[0]) and "a_file" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_kws_convert_entry_point_help():
    res = subprocess.run([sys.executable, "-m", "kws.converters.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--formats" in res.stdout and "--max-accuracy-drop" in res.stdout


def test_parse_formats_and_guard_rules():
    assert parse_formats("int8, C") == ("int8", "c")
    assert parse_formats(None) == FORMATS
    for empty in ("", " ", ",,"):
        with pytest.raises(FormatError, match="--formats is empty"):
            parse_formats(empty)
    with pytest.raises(FormatError, match="'tfjs'"):
        parse_formats("float,tfjs")
    ref = Scores(0.9, {"a": 1.0, "b": 0.8}, {"a": 10, "b": 10})
    assert guard_failures(ref, Scores(0.9, {"a": 1.0, "b": 0.8}, {}), 1.0) == []
    # up to round(sqrt(10) / 2) = 2 clips of ten is within a class's sampling noise: tolerated
    assert guard_failures(ref, Scores(0.9, {"a": 0.9, "b": 0.9}, {}), 1.0) == []
    assert guard_failures(ref, Scores(0.9, {"a": 0.8, "b": 1.0}, {}), 1.0) == []
    fails = guard_failures(ref, Scores(0.9, {"a": 0.7, "b": 1.0}, {}), 1.0)
    assert len(fails) == 1 and fails[0].startswith("class a") and "3 of 10 clips" in fails[0]
    assert len(guard_failures(ref, Scores(0.85, {"a": 1.0, "b": 0.5}, {}), 1.0)) == 2
    big = Scores(0.9, {"a": 0.9}, {"a": 400})
    assert guard_failures(big, Scores(0.9, {"a": 0.875}, {}), 1.0) == []  # 10 clips (sqrt(400)/2), 2.5 points
    assert len(guard_failures(big, Scores(0.9, {"a": 0.87}, {}), 1.0)) == 1  # 12 clips, 3 points


def test_builtin_op_names_match_tensorflow_schema():
    from tensorflow.lite.python import schema_py_generated as schema

    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    assert [codes[i] for i in range(len(BUILTIN_OPERATORS))] == list(BUILTIN_OPERATORS)


def _edge_python_or_skip() -> Path:
    python = edge_python()
    if python is None:
        pytest.skip(f"{REPO / '.venv-edge'} does not exist (make edge-venv): tflite-runtime 2.14 checks skipped")
    return python


def test_int8_model_runs_in_tflite_runtime_env_without_tensorflow(converted, test_features):
    python = _edge_python_or_skip()
    out, _ = converted
    x, _ = test_features
    np.save(out.parent / "x.npy", x)
    script = (
        "import importlib.util, json, sys\nimport numpy as np\n"
        "from tflite_runtime.interpreter import Interpreter\n"
        "it = Interpreter(model_path=sys.argv[1], num_threads=1); it.allocate_tensors()\n"
        "i, o = it.get_input_details()[0], it.get_output_details()[0]\n"
        "preds = []\n"
        "for f in np.load(sys.argv[2]):\n"
        "    s, z = i['quantization']\n"
        "    it.set_tensor(i['index'], np.clip(np.round(f / s) + z, -128, 127).astype(np.int8)[None])\n"
        "    it.invoke(); preds.append(int(it.get_tensor(o['index']).argmax()))\n"
        "print(json.dumps({'numpy': np.__version__, 'tf': importlib.util.find_spec('tensorflow') is not None,"
        " 'dtype': str(i['dtype'].__name__), 'preds': preds}))\n")
    res = subprocess.run([str(python), "-c", script, str(out / "model_int8.tflite"), str(out.parent / "x.npy")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["numpy"].startswith("1.") and data["tf"] is False and data["dtype"] == "int8"
    litert = TFLiteModel(out / "model_int8.tflite").predict_batch(x).argmax(axis=1)
    assert np.mean(np.array(data["preds"]) == litert) >= 0.85


def _opcode_only_model(code: int, version: int) -> bytes:
    """A flatbuffer with one operator code and an empty subgraph: loading it asks the runtime
    whether it registers (op, version) and nothing else."""
    import flatbuffers

    b = flatbuffers.Builder(256)
    b.StartObject(4)
    b.PrependInt8Slot(0, min(code, 127), 0)
    b.PrependInt32Slot(2, version, 1)
    b.PrependInt32Slot(3, code, 0)
    opcode = b.EndObject()
    empties = []
    for _ in range(4):
        b.StartVector(4, 0, 4)
        empties.append(b.EndVector())
    b.StartObject(5)
    for slot, vec in enumerate(empties):
        b.PrependUOffsetTRelativeSlot(slot, vec, 0)
    subgraph = b.EndObject()
    b.StartObject(1)
    buffer = b.EndObject()
    vectors = []
    for item in (opcode, subgraph, buffer):
        b.StartVector(4, 1, 4)
        b.PrependUOffsetTRelative(item)
        vectors.append(b.EndVector())
    b.StartObject(8)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, vectors[0], 0)
    b.PrependUOffsetTRelativeSlot(2, vectors[1], 0)
    b.PrependUOffsetTRelativeSlot(4, vectors[2], 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_op_version_table_matches_tflite_runtime_2_14(tmp_path):
    python = _edge_python_or_skip()
    probes = {}
    for name, max_version in TFLITE_RUNTIME_2_14_MAX_VERSIONS.items():
        code = BUILTIN_OPERATORS.index(name)
        probes[name] = [base64.b64encode(_opcode_only_model(code, v)).decode() for v in (max_version, max_version + 1)]
    (tmp_path / "probes.json").write_text(json.dumps(probes))
    script = ("import base64, json, sys\nfrom tflite_runtime.interpreter import Interpreter\n"
              "out = {}\n"
              "for name, blobs in json.load(open(sys.argv[1])).items():\n"
              "    ok = []\n"
              "    for blob in blobs:\n"
              "        try:\n            Interpreter(model_content=base64.b64decode(blob)); ok.append(True)\n"
              "        except Exception:\n            ok.append(False)\n"
              "    out[name] = ok\n"
              "print(json.dumps(out))\n")
    res = subprocess.run([str(python), "-c", script, str(tmp_path / "probes.json")], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = json.loads(res.stdout.strip().splitlines()[-1])
    wrong = {name: ok for name, ok in loaded.items() if ok != [True, False]}
    assert not wrong, f"table disagrees with tflite-runtime 2.14 ([max loads, max+1 loads]): {wrong}"


def test_arena_estimate_covers_tflite_micro(converted):
    """With KWS_TFLM_PYTHON naming a python that has the tflite-micro package, the header's arena
    estimate must cover what the TFLM interpreter really needs (within 25%)."""
    python = os.environ.get("KWS_TFLM_PYTHON")
    if not python:
        pytest.skip("KWS_TFLM_PYTHON not set (a python with tflite-micro): exact arena check skipped")
    sys.path.insert(0, str(REPO))
    from bench.bench_convert import measure_arena

    out, _ = converted
    measured = measure_arena(python, out / "model_int8.tflite")
    assert measured, "tflite-micro could not run the int8 model"
    estimate = int(re.search(r"kKwsTensorArenaSize = (\d+);", (out / "model_int8.h").read_text()).group(1))
    assert measured <= estimate <= 1.25 * measured


def test_guard_tells_a_class_losing_clips_from_sampling_noise():
    from kws.converters.evaluate import Scores
    from kws.converters.report import guard_failures

    def sc(no_right: int, yes_right: int) -> Scores:  # 15 "no" and 100 "yes" test clips
        return Scores((no_right + yes_right) / 115, {"no": no_right / 15, "yes": yes_right / 100},
                      {"no": 15, "yes": 100})

    keras = sc(12, 90)
    # 2 of 15 "no" clips swapped to "yes": 13 points, but within sqrt(15)/2 = 2 clips of noise
    assert guard_failures(keras, sc(10, 92), 1.0) == []
    # 3 of 15 lost is beyond the noise: fails, and so does the overall drop it causes
    failed = guard_failures(keras, sc(9, 90), 1.0)
    assert any(f.startswith("class no: 60.00% vs Keras 80.00%") for f in failed)
    assert any(f.startswith("overall accuracy") for f in failed)
    # on 100 clips, 6 lost (6 points) is more than sqrt(100)/2 = 5 clips: the class fails
    assert [f.split(":")[0] for f in guard_failures(keras, sc(12, 84), 5.5)] == ["class yes"]


def test_guard_counts_silence_and_unknown_as_one_class():
    """Clips moved between _silence_ and _unknown_ are no loss (neither is ever detected); a silence
    clip taken for a keyword still is."""
    from kws.converters.evaluate import NO_KEYWORD, scores
    from kws.converters.report import guard_failures

    labels = ("_silence_", "_unknown_", "yes", "no")
    y = np.repeat(np.arange(4), 20)
    right = np.eye(4)[y]
    keras = scores(right, y, labels)
    silence_as_unknown = right.copy()
    silence_as_unknown[:18] = np.eye(4)[1]  # 18 of 20 silence clips now _unknown_
    moved = scores(silence_as_unknown, y, labels)
    assert moved.per_class["_silence_"] == pytest.approx(0.1) and moved.accuracy == pytest.approx(62 / 80)
    assert moved.keyword_view.per_class == {NO_KEYWORD: 1.0, "yes": 1.0, "no": 1.0}
    assert guard_failures(keras, moved, 1.0) == []
    silence_as_yes = right.copy()
    silence_as_yes[:18] = np.eye(4)[2]  # the same clips taken for a keyword
    failed = guard_failures(keras, scores(silence_as_yes, y, labels), 1.0)
    assert failed[0].startswith("overall accuracy 77.50% vs Keras 100.00% with _silence_ and _unknown_ as one class")
    assert failed[1].startswith(f"class {NO_KEYWORD}: 55.00% vs Keras 100.00%")
    # without both labels nothing is merged
    assert scores(right[:, 2:][40:], y[40:] - 2, ("yes", "no")).keyword_view is None
