"""ai-edge-litert's C API (libLiteRt.so through ctypes) as the default runtime: kws-listen names it,
a runtime asked for by name is used as named, a missing or untested library falls back to the Python
interpreter without a word, and a model the C API refuses is one line naming the file. (Its scores are
compared with the Python interpreter's in test_streaming.py.)"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from kws.edge import litert_c, runtime
from kws.edge.errors import RuntimeMissingError
from kws.edge.runtime import ModelLoadError, TFLiteModel, pick_runtime
from kws.edge.stepmodel import StepModel

needs_c = pytest.mark.skipif(litert_c.load() is None, reason="no libLiteRt.so of a tested ai-edge-litert")


@pytest.fixture
def no_c_api(monkeypatch):
    """The process as if libLiteRt.so were missing (load() not tried yet)."""
    monkeypatch.setattr(litert_c, "_API", [])
    monkeypatch.setattr(litert_c, "find_library", lambda: None)


@needs_c
def test_the_c_api_is_the_default_and_a_named_runtime_is_used_as_named(converted_run, monkeypatch):
    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)
    assert pick_runtime().name == "litert-c"
    assert pick_runtime("litert-c").version == pick_runtime().version
    assert pick_runtime("litert").name == "litert"
    monkeypatch.setenv(runtime.RUNTIME_ENV, "litert")
    assert TFLiteModel(converted_run / "model_int8.tflite").runtime.name == "litert"


def test_a_missing_library_falls_back_to_the_python_interpreter(converted_run, no_c_api, monkeypatch):
    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)
    model = TFLiteModel(converted_run / "model_int8.tflite")
    assert model.runtime.name != "litert-c" and model.predict(np.zeros(model.input_shape)).shape == (model.num_labels,)
    with pytest.raises(RuntimeMissingError, match="'litert-c' does not load"):
        pick_runtime("litert-c")


def test_an_untested_library_version_is_not_loaded(monkeypatch, tmp_path):
    fake = tmp_path / "libLiteRt.so"
    fake.write_bytes(b"not a library")
    monkeypatch.setattr(litert_c, "_API", [])
    monkeypatch.setattr(litert_c, "find_library", lambda: (fake, "9.0.0"))
    assert litert_c.load() is None
    monkeypatch.setattr(litert_c, "_API", [])
    monkeypatch.setattr(litert_c, "find_library", lambda: (fake, "2.3.0"))  # tested version, no library
    assert litert_c.load() is None


@needs_c
def test_a_model_the_c_api_refuses_is_one_line_naming_the_file(tmp_path, converted_run):
    bad = tmp_path / "broken.tflite"
    good = (converted_run / "model_int8.tflite").read_bytes()
    bad.write_bytes(good[:8] + b"\0" * 64)  # the TFL3 identifier, then nothing a model needs
    with pytest.raises(ModelLoadError) as err:
        StepModel(bad)  # the C binding finds no signature and hands it on to the Python interpreter
    assert str(err.value).startswith(f"{bad}: litert") and "\n" not in str(err.value)
    with pytest.raises(ModelLoadError) as err:
        StepModel(bad, runtime="litert-c")
    assert str(err.value).startswith(f"{bad}: litert-c ") and "\n" not in str(err.value)
    with pytest.raises(ModelLoadError, match="not a TFLite model"):
        (tmp_path / "x.tflite").write_bytes(b"nope")
        TFLiteModel(tmp_path / "x.tflite")


@needs_c
def test_kws_listen_names_the_c_api_and_loads_no_python_interpreter(converted_run, tmp_path):
    """The start-up line and the summary say which runtime ran; the ai_edge_litert package (its pybind
    interpreter) is never imported."""
    from kws.edge.audio import write_wav

    wav = tmp_path / "quiet.wav"
    write_wav(wav, np.zeros(16000, np.float32), 16000)
    summary = tmp_path / "summary.json"
    code = ("import sys; from kws.edge.listen_cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('ai_edge_litert' in sys.modules, any(m.startswith('ai_edge_litert') for m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, "-m", str(converted_run), "--wav", str(wav),
                           "--summary-json", str(summary)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False False"
    assert f"int8, litert-c {litert_c.load().runtime.version})" in proc.stderr
    assert json.loads(summary.read_text())["runtime"].startswith("litert-c ")


@needs_c
def test_a_model_the_binding_does_not_run_falls_back_unless_the_c_api_was_named(converted_run, monkeypatch):
    """A dynamic batch dimension (kws-mine's float model) or another tensor the binding does not map:
    the Python interpreter runs it; asked for litert-c by name, it is one line naming the file."""
    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)

    def dynamic(self, tensor):
        raise self._unsupported("a tensor of dynamic shape [-1, 98, 40]")

    monkeypatch.setattr(litert_c.CompiledModel, "_spec", dynamic)
    path = converted_run / "model_int8.tflite"
    assert TFLiteModel(path).runtime.name == "litert"
    with pytest.raises(ModelLoadError, match=r"litert-c does not run this model: a tensor of dynamic shape") as err:
        TFLiteModel(path, runtime="litert-c")
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_a_trial_load_that_crashes_is_named_and_the_caller_survives():
    import os
    import signal

    from kws.edge.runtime import _crash_in_child

    assert _crash_in_child(lambda: os.kill(os.getpid(), signal.SIGSEGV)) == "signal SIGSEGV"
    assert _crash_in_child(lambda: None) is None
    assert _crash_in_child(lambda: 1 / 0) is None  # an error: the caller's own load says why
    assert _crash_in_child(lambda: __import__("time").sleep(5), timeout_s=0.2) is None  # no answer: not probed


@needs_c
@pytest.mark.parametrize("damage", ["truncated", "zeroed_middle"])
def test_a_damaged_model_is_one_line_naming_the_file_not_a_crash(tmp_path, converted_run, damage):
    """LiteRT's C API reads a flatbuffer without verifying it: a half file used to kill kws-listen
    with a segmentation fault and no word."""
    good = (converted_run / "model_int8.tflite").read_bytes()
    bad = tmp_path / "damaged.tflite"
    if damage == "truncated":
        bad.write_bytes(good[:len(good) // 2])
    else:
        middle = len(good) // 3
        bad.write_bytes(good[:middle] + b"\xff" * 4096 + good[middle + 4096:])
    code = ("import sys; from kws.edge.runtime import ModelLoadError; from kws.edge.stepmodel import StepModel\n"
            "try:\n    StepModel(sys.argv[1])\nexcept ModelLoadError as e:\n    print(e); sys.exit(3)\n")
    for env_runtime in ("", "litert-c"):
        env = {**__import__("os").environ, runtime.RUNTIME_ENV: env_runtime}
        proc = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, timeout=120,
                              env=env)
        lines = proc.stdout.splitlines()
        # zeroed bytes may land in weights the model still runs with; half a model never loads
        assert proc.returncode in ((3,) if damage == "truncated" else (0, 3)), (proc.returncode, proc.stderr[-500:])
        if proc.returncode == 3:
            assert len(lines) == 1 and lines[0].startswith(f"{bad}: "), proc.stdout


def test_the_tf_lite_runtime_named_in_the_readme_runs_a_model(converted_run, monkeypatch):
    """--runtime tf said "does not import" with TensorFlow 2.21 installed: the module imported was
    tensorflow.lite, which has no Interpreter of its own."""
    pytest.importorskip("tensorflow")
    monkeypatch.delenv(runtime.RUNTIME_ENV, raising=False)
    tf_model = TFLiteModel(converted_run / "model_int8.tflite", runtime="tf")
    assert tf_model.runtime.name == "tf"
    features = np.random.default_rng(3).normal(size=tf_model.input_shape).astype(np.float32)
    reference = TFLiteModel(converted_run / "model_int8.tflite", runtime="litert")
    assert np.allclose(tf_model.predict(features), reference.predict(features), atol=1e-6)
