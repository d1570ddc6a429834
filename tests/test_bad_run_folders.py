"""kws-predict and kws inspect on a training run folder whose labels.txt or model.keras is corrupt or does
not match: one line naming the file, exit 1, no traceback (as kws-convert already says)."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from audio_fixtures import SAMPLE_RATE, word_audio
from kws.edge.audio import write_wav
from kws.evaluation.inspect_cli import inspect_cmd
from kws.evaluation.predict_cli import main as predict_main

LABELS = "_silence_\n_unknown_\nup\ndown\n"


@pytest.fixture()
def clip(tmp_path):
    path = tmp_path / "clip.wav"
    write_wav(path, word_audio("up", np.random.default_rng(0)), SAMPLE_RATE)
    return path


def make_run(path, labels: bytes = LABELS.encode(), model: bytes = b"not a zip") -> str:
    path.mkdir()
    (path / "config.yaml").write_text("")  # every default
    (path / "labels.txt").write_bytes(labels)
    (path / "model.keras").write_bytes(model)
    return str(path)


def one_line_error(res, *parts):
    assert res.exit_code == 1, res.output
    assert not isinstance(res.exception, (ValueError, IndexError, UnicodeDecodeError)), res.exception
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and all(p in last for p in parts), res.output


@pytest.mark.parametrize("cmd", [predict_main, inspect_cmd], ids=["predict", "inspect"])
@pytest.mark.parametrize("labels,model,parts", [
    (LABELS.encode(), b"not a zip", ("model.keras", "cannot load the Keras model")),
    (b"\xf4\x80\xff\xfe\n", b"not a zip", ("labels.txt", "unreadable")),
    (b"", b"not a zip", ("labels.txt", "needs at least two labels, found 0")),
], ids=["corrupt-keras", "binary-labels", "empty-labels"])
def test_corrupt_run_folder_is_one_line(cmd, labels, model, parts, tmp_path, clip):
    run = make_run(tmp_path / "run", labels, model)
    args = ["-m", run, str(clip)] if cmd is predict_main else [str(clip), "-m", run]
    one_line_error(CliRunner().invoke(cmd, args), *parts)


def keras_run(path, outputs: int) -> str:
    """A run folder with a tiny untrained Keras model of ``outputs`` labels (4 match labels.txt)."""
    from kws.trainer.tfimport import import_tensorflow

    import_tensorflow()
    import keras

    model = keras.Sequential([keras.Input((98, 40)), keras.layers.Flatten(),
                              keras.layers.Dense(outputs, activation="softmax")])
    run = make_run(path)
    model.save(path / "model.keras")
    return run


def test_labels_not_matching_the_model_is_one_line(tmp_path, clip):
    run = keras_run(tmp_path / "run", 12)
    res = CliRunner().invoke(predict_main, ["-m", run, str(clip)])
    one_line_error(res, "model.keras", "-> 12 labels", "-> 4")


def test_binary_list_is_one_line(tmp_path, clip):
    run = keras_run(tmp_path / "run", 4)
    res = CliRunner().invoke(predict_main, ["-m", run, "--list", str(clip)])  # a WAV given as the list
    one_line_error(res, "clip.wav", "not a text list")
