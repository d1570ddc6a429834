"""Training end to end on the synthetic fixture: outputs, metrics, TensorBoard, resume, mirrored."""
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURE_WORDS

REPO = Path(__file__).resolve().parent.parent
KWS_TRAIN = [sys.executable, "-m", "kws.trainer.cli"]
FAST = ["--set", "train.batch_size=16", "--set", "augment.time_masks=0"]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def test_run_folder_holds_everything(trained_run):
    names = {p.name for p in trained_run.iterdir()}
    assert {"config.yaml", "labels.txt", "split.json", "model.keras", "metrics.json", "confusion_matrix.png",
            "model_info.json", "ckpts", "logs", "state.json"} <= names
    assert {p.name for p in (trained_run / "ckpts").iterdir()} == {"last.keras", "best.keras"}
    assert (trained_run / "labels.txt").read_text().split() == ["_silence_", "_unknown_", *FIXTURE_WORDS]
    cfg = yaml.safe_load((trained_run / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 8 and cfg["model"]["architecture"] == "ds_cnn"
    assert (trained_run / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_are_complete_and_the_model_learned(trained_run):
    m = json.loads((trained_run / "metrics.json").read_text())
    for split in ("train", "validation", "test"):
        assert set(m[split]) >= {"accuracy", "per_class", "confusion_matrix"}
        cm = m[split]["confusion_matrix"]
        assert sum(map(sum, cm)) == m[split]["count"] and len(cm) == 5
    assert m["validation"]["accuracy"] >= 0.85
    assert m["test"]["accuracy"] >= 0.8
    assert set(m["test"]["per_class"]["up"]) == {"precision", "recall", "f1", "support"}
    info = json.loads((trained_run / "model_info.json").read_text())
    assert info["architecture"] == "ds_cnn" and 20_000 < info["params"] < 30_000 and info["macs"] > 1e7


def test_tensorboard_logs_have_scalars_and_confusion_images(trained_run):
    from tensorflow.core.util import event_pb2
    import tensorflow as tf

    def tags(folder):
        found = set()
        for f in (trained_run / "logs" / folder).glob("events.out.tfevents.*"):
            for rec in tf.data.TFRecordDataset(str(f)):
                ev = event_pb2.Event.FromString(rec.numpy())
                found |= {v.tag for v in ev.summary.value}
        return found
    assert {"loss", "accuracy", "learning_rate"} <= tags("train")
    assert {"loss", "accuracy", "confusion_matrix"} <= tags("validation")


def test_registry_counts_params_and_macs():
    import keras
    from kws.trainer.config import ModelConfig
    from kws.trainer.models import MODEL_BUILDERS, build_model, model_info

    assert set(MODEL_BUILDERS) == {"conv", "low_latency_conv", "tiny_conv", "ds_cnn", "tcn", "embedding"}
    head = model_info(build_model("embedding", (16, 96), 4, ModelConfig(architecture="embedding")))
    # the embedding family's head: 1536 -> 128 -> 128 -> 4 dense layers
    assert head["macs"] == 16 * 96 * 128 + 128 * 128 + 128 * 4
    assert head["params"] == head["macs"] + 128 + 128 + 4

    def built(name):  # each architecture at its own width (model.width: auto)
        return build_model(name, (98, 40), 12, ModelConfig(architecture=name))

    tiny = model_info(built("tiny_conv"))
    # conv 10x8 stride 2 "same" -> 49x20x8 outputs of 80 MACs each, then a 7840x12 dense layer
    assert tiny["macs"] == 49 * 20 * 8 * 80 + 49 * 20 * 8 * 12
    conv = model_info(built("conv"))
    ds = model_info(built("ds_cnn"))
    assert 900_000 < conv["params"] < 960_000  # the tutorial's ~940k
    assert ds["macs"] * 5 < conv["macs"] and ds["params"] * 20 < conv["params"]
    tcn_model = built("tcn")
    tcn = model_info(tcn_model)
    assert tcn["macs"] < ds["macs"]  # less per 1 s window, before streaming
    # streamed, a 20 ms step computes 2 new frames of every temporal layer (plus the classifier),
    # where ds_cnn recomputes its whole window every hop: under a fifth of it by far
    per_frame = 0
    for layer in tcn_model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            per_frame += layer.output.shape[-1] * layer.kernel_size[0]
        elif isinstance(layer, keras.layers.Conv2D):
            per_frame += layer.output.shape[-1] * layer.kernel_size[0] * layer.input.shape[-1]
    step = 2 * per_frame + 128 * 12
    assert step * 5 < ds["macs"] and step < 400_000


def test_input_standardisation_layer_centres_and_scales_every_feature():
    import numpy as np
    from kws.trainer.config import Config
    from kws.trainer.models import FeatureStats, build_model, is_normalized

    rng = np.random.default_rng(0)
    # MFCC-like scales: c0 around -44 with std 32, the rest small
    scale = np.r_[32.0, np.linspace(8.0, 0.3, 39)]
    x = (rng.normal(size=(64, 98, 40)) * scale + np.r_[-44.0, np.zeros(39)]).astype(np.float32)
    stats = FeatureStats.of(x)
    np.testing.assert_allclose(stats.mean, x.reshape(-1, 40).mean(axis=0), rtol=1e-4, atol=1e-4)
    model = build_model("tiny_conv", (98, 40), 5, Config().model, feature_stats=stats)
    assert is_normalized(model) and not is_normalized(build_model("tiny_conv", (98, 40), 5, Config().model))
    import keras
    head = keras.Model(model.input, model.get_layer("standardize").output)
    z = np.asarray(head(x)).reshape(-1, 40)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-3)
    # a constant feature is centred, not divided by zero
    x[..., 5] = 3.0
    assert np.isfinite(np.asarray(head(x))).all()
    assert np.isclose(FeatureStats.of(x).variance[5], 1e-6)


@pytest.mark.slow
def test_conv_learns_with_the_default_settings(tiny_dataset, tmp_path):
    """The tutorial's conv model at train.learning_rate=auto (at 0.002 it stays at chance on the demo data)."""
    out = tmp_path / "conv"
    res = subprocess.run(KWS_TRAIN + ["--data", str(tiny_dataset), "--words", ",".join(FIXTURE_WORDS),
                                      "--out", str(out), "--arch", "conv", "-q", "--set", "train.epochs=6",
                                      *FAST], env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["train"]["learning_rate"] == 0.0005 and cfg["model"]["input_normalization"] is False
    info = json.loads((out / "model_info.json").read_text())
    assert info["input_normalization"] is False and "feature_stats" not in info
    m = json.loads((out / "metrics.json").read_text())
    # chance is 0.2; at 0.002 this data reaches about 0.85, at 0.0005 1.0
    assert m["validation"]["accuracy"] >= 0.9, m["validation"]["accuracy"]


@pytest.mark.slow
def test_input_normalization_is_saved_and_converts_to_builtin_int8_ops(tiny_dataset, tmp_path):
    from kws.converters.convert import ConvertOptions, convert
    from kws.converters.flatbuffer import parse_model
    from kws.converters.opcheck import op_uses, unsupported

    out = tmp_path / "norm"
    res = subprocess.run(KWS_TRAIN + ["--data", str(tiny_dataset), "--words", ",".join(FIXTURE_WORDS),
                                      "--out", str(out), "--arch", "tiny_conv", "-q", "--set", "train.epochs=3",
                                      "--set", "model.input_normalization=true", *FAST],
                         env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    info = json.loads((out / "model_info.json").read_text())
    assert info["input_normalization"] is True and len(info["feature_stats"]["std"]) == 40
    assert info["feature_stats"]["mean"][0] < -5 < 0 < min(info["feature_stats"]["std"])  # c0 is far below 0
    dist = tmp_path / "dist"
    convert(ConvertOptions(model=str(out), formats=("int8",), out=str(dist), check_edge_env=False,
                           max_accuracy_drop=100.0), say=lambda msg: None)
    model = parse_model((dist / "model_int8.tflite").read_bytes())
    uses = op_uses(model)
    assert {"SUB", "MUL"} <= {u.name for u in uses} and unsupported(uses) == []


@pytest.mark.slow
def test_ctrl_c_leaves_a_resumable_run_and_resume_finishes_it(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    cmd = KWS_TRAIN + ["--data", str(tiny_dataset), "--words", ",".join(FIXTURE_WORDS), "--out", str(out),
                       "--set", "train.epochs=40", *FAST]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        state = out / "state.json"
        if state.exists() and json.loads(state.read_text())["epochs_done"] >= 2:
            break
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.communicate()}")
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"kws-train --resume {out}" in err
    done = json.loads((out / "state.json").read_text())["epochs_done"]
    assert 2 <= done < 40 and (out / "ckpts" / "last.keras").is_file()
    assert not (out / "model.keras").exists()
    split_before = (out / "split.json").read_text()

    res = subprocess.run(KWS_TRAIN + ["--resume", str(out), "--set", f"train.epochs={done + 2}", "-q"],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    state = json.loads((out / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == list(range(1, done + 3))
    assert (out / "split.json").read_text() == split_before
    assert (out / "model.keras").is_file() and "test accuracy:" in res.stdout
    # the new epoch count is the run's: a later --resume (and its learning-rate schedule) keeps it
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == done + 2


@pytest.mark.slow
def test_ctrl_c_before_the_first_epoch_says_how_to_resume(tiny_dataset, tmp_path):
    """Ctrl-C while TensorFlow starts or the model is built (config and split saved, no epoch done)
    exits 130 with the resume command, like a Ctrl-C between epochs, and the run resumes."""
    out = tmp_path / "run"
    cmd = KWS_TRAIN + ["--data", str(tiny_dataset), "--words", ",".join(FIXTURE_WORDS), "--out", str(out),
                       "--arch", "tiny_conv", "--set", "train.epochs=2", *FAST]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "config.yaml").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Aborted!" not in err and f"Resume with: kws-train --resume {out}" in err
    if not (out / "state.json").exists():
        assert "no epoch had finished" in err
    res = subprocess.run(KWS_TRAIN + ["--resume", str(out), "-q"], env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 2


def test_ctrl_c_while_reading_the_data_keeps_no_run_folder(tiny_dataset, tmp_path, monkeypatch):
    """Interrupted before anything of the run was saved: a one-line message and no folder left."""
    import kws.trainer.train as train_module
    from kws.trainer.config import load_config, with_data

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "prepare_data", ctrl_c)
    out = tmp_path / "run"
    cfg = with_data(load_config(None, ["train.epochs=1"]), str(tiny_dataset), list(FIXTURE_WORDS), [])
    with pytest.raises(train_module.TrainingInterrupted, match="nothing of .* was kept"):
        train_module.train(cfg, out=out, quiet=True)
    assert not out.exists()


@pytest.mark.slow
def test_resume_continues_exactly_as_an_uninterrupted_run(tiny_dataset, tmp_path):
    """Stopped after epoch 1 and resumed to 3, a run ends with the same losses and weights as one
    that ran 3 epochs straight: every random stream (mixup's too) depends on (seed, epoch) alone,
    and the _unknown_ clips are redrawn from the same sample of a pool larger than it."""
    import numpy as np

    args = ["--data", str(tiny_dataset), "--words", ",".join(FIXTURE_WORDS), "--arch", "tiny_conv", "-q", *FAST,
            "--set", "train.mixup_alpha=0.4", "--set", "data.unknown_percentage=3"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for out, epochs in ((straight, 3), (stopped, 1)):
        res = subprocess.run(KWS_TRAIN + args + ["--out", str(out), "--set", f"train.epochs={epochs}"],
                             env=_env(), capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    # the first run's schedule must not depend on its epoch count for this to be a fair stop:
    # epoch 1 is the warm-up epoch in both (train.warmup_epochs = 1)
    res = subprocess.run(KWS_TRAIN + ["--resume", str(stopped), "--set", "train.epochs=3", "-q"],
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    h1 = json.loads((straight / "state.json").read_text())["history"]
    h2 = json.loads((stopped / "state.json").read_text())["history"]
    assert [h["loss"] for h in h1] == [h["loss"] for h in h2]
    assert [h["val_accuracy"] for h in h1] == [h["val_accuracy"] for h in h2]
    import keras
    w1 = keras.models.load_model(straight / "ckpts" / "last.keras").get_weights()
    w2 = keras.models.load_model(stopped / "ckpts" / "last.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))


@pytest.mark.slow
def test_a_kill_before_the_epochs_state_is_saved_trains_that_epoch_once(tiny_dataset, tmp_path, monkeypatch):
    """Killed after epoch 2's checkpoint was written but before state.json counted it, a run
    resumed from epoch 1's state and trained epoch 2 again on top of epoch 2's weights: its model
    was no longer the uninterrupted run's. The checkpoint now waits for the state."""
    import numpy as np
    import keras
    from kws.trainer.config import load_config, with_data
    from kws.trainer.run import RunDir
    from kws.trainer.train import TrainingInterrupted, train

    overrides = ["train.epochs=2", "train.batch_size=16", "model.architecture=tiny_conv", "augment.time_masks=0"]
    cfg = with_data(load_config(None, overrides), str(tiny_dataset), list(FIXTURE_WORDS))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(cfg, out=straight, quiet=True)

    write_state = RunDir.write_state

    def killed_before_epoch_2s_state(self, state):
        if state["epochs_done"] == 2:
            raise KeyboardInterrupt  # where a kill -9 or a power cut would stop the process
        write_state(self, state)

    monkeypatch.setattr(RunDir, "write_state", killed_before_epoch_2s_state)
    with pytest.raises(TrainingInterrupted):
        train(cfg, out=killed, quiet=True)
    monkeypatch.setattr(RunDir, "write_state", write_state)
    assert json.loads((killed / "state.json").read_text())["epochs_done"] == 1
    train(resume=killed, quiet=True)
    assert list((killed / "ckpts").glob("epoch-*")) == []
    h1 = json.loads((straight / "state.json").read_text())["history"]
    h2 = json.loads((killed / "state.json").read_text())["history"]
    assert [h["loss"] for h in h1] == [h["loss"] for h in h2]
    w1 = keras.models.load_model(straight / "ckpts" / "last.keras").get_weights()
    w2 = keras.models.load_model(killed / "ckpts" / "last.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(w1, w2))


def test_test_accuracy_is_reported_per_unseen_speaker(trained_run):
    m = json.loads((trained_run / "metrics.json").read_text())
    split = json.loads((trained_run / "split.json").read_text())
    test = m["test"]
    spk = test["by_speaker"]
    groups = {g for _, _, g in split["splits"]["testing"] if g is not None}
    trained = {g for _, _, g in split["splits"]["training"] if g is not None}
    assert spk["speakers"] == len(groups) > 0
    assert spk["unseen_speakers"] == len(groups - trained) == spk["speakers"]  # the split keeps voices apart
    # per-speaker results add up to the accuracy over the clips that have a speaker (all but _silence_)
    cm = test["confusion_matrix"]
    correct = sum(cm[i][i] for i in range(1, len(cm)))
    total = test["count"] - sum(cm[0])
    per = spk["per_speaker"].values()
    assert sum(v["count"] for v in per) == total
    assert sum(v["accuracy"] * v["count"] for v in per) == pytest.approx(correct, abs=0.01)
    assert spk["worst"][0]["accuracy"] == spk["min_accuracy"] == min(v["accuracy"] for v in per)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(tiny_dataset, tmp_path):
    out = tmp_path / "mirrored"
    res = subprocess.run(KWS_TRAIN + ["--data", str(tiny_dataset), "--words", "up,down", "--out", str(out),
                                      "--distribute", "mirrored", "--set", "train.epochs=2", *FAST],
                         env=_env(KWS_LOGICAL_CPUS="2"), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "strategy MirroredStrategy x2" in res.stderr
    # stderr is a pipe here: per-epoch summary lines, no progress bars filling a log file
    assert "epoch 2/2: loss" in res.stderr and "step/s" not in res.stderr and "file/s" not in res.stderr
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 2
    assert (out / "model.keras").is_file()


def test_cli_errors_are_one_line(tmp_path, trained_run):
    def run(*args):
        return subprocess.run(KWS_TRAIN + list(args), env=_env(), capture_output=True, text=True, timeout=120)
    before = set(os.listdir(os.environ["KWS_MODELS_DIR"]))
    res = run("--data", str(tmp_path / "missing"))
    assert set(os.listdir(os.environ["KWS_MODELS_DIR"])) == before  # no empty run folder left behind
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [f"Error: {tmp_path / 'missing'}: no such data folder"]
    res = run("--data", str(tmp_path), "--set", "train.epocs=3")
    assert res.returncode == 1 and "unknown key 'train.epocs'" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run("--data", str(tmp_path), "--out", str(trained_run))
    assert res.returncode == 1 and "already holds a training run" in res.stderr
    res = run("--resume", str(tmp_path))
    assert res.returncode == 1 and "not a resumable run" in res.stderr
    res = run("--data", "ftp://example.com/words.zip")
    assert res.returncode == 1 and "Error: ftp://example.com/words.zip: ftp:// URLs are not supported" in res.stderr
    res = run("--resume", str(trained_run), "--set", "model.width=32")  # a usage error, like --resume --data
    assert res.returncode == 2 and "only --set train.epochs=N may be added" in res.stderr
    res = run("--resume", str(tmp_path / "nowhere"))
    assert res.returncode == 1 and f"{tmp_path / 'nowhere'}: no such run folder" in res.stderr
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.yaml").write_text("mine: true\n")
    (theirs / "notes.txt").write_text("precious\n")
    for out in (theirs, theirs.parent / "other"):
        if out.name == "other":
            out.mkdir()
            (out / "notes.txt").write_text("precious\n")
        res = run("--data", str(trained_run.parent), "--out", str(out))
        assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert (out / "notes.txt").read_text() == "precious\n" and set(os.listdir(out)) <= {"config.yaml", "notes.txt"}
    assert "exists and holds other files" in res.stderr
    assert (theirs / "config.yaml").read_text() == "mine: true\n"


def test_a_model_that_cannot_be_built_or_diverges_is_one_line_and_leaves_nothing_half_made(tiny_dataset, tmp_path):
    """A clip too short for tcn's layers was a Keras traceback that left config.yaml, so the folder looked
    resumable and failed the same way; a loss gone NaN was saved as the model with exit 0."""
    def run(out, *sets):
        args = [a for kv in sets for a in ("--set", kv)]
        return subprocess.run(KWS_TRAIN + ["--data", str(tiny_dataset), "--out", str(out), "-q", *FAST, *args],
                              env=_env(), capture_output=True, text=True, timeout=600)

    short = tmp_path / "short"
    res = run(short, "features.clip_ms=300", "model.architecture=tcn")
    lines = [line for line in res.stderr.strip().splitlines() if line.startswith("Error:")]
    assert res.returncode == 1 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-800:]
    assert lines[0].startswith("Error: model.architecture tcn: cannot be built for input (28, 40)")
    assert not short.exists()

    diverged = tmp_path / "diverged"
    res = run(diverged, "train.learning_rate=1e30", "train.warmup_epochs=0", "train.epochs=3")
    assert res.returncode == 1 and "Error: training diverged: loss nan in epoch" in res.stderr, res.stderr[-800:]
    state = json.loads((diverged / "state.json").read_text()) if (diverged / "state.json").is_file() else {}
    assert all(math.isfinite(h["loss"]) for h in state.get("history", []))  # only finite epochs were kept
    assert not (diverged / "model.keras").exists()


@pytest.mark.parametrize("name, damage, message", [
    ("state.json", b"{garbage", "state.json: damaged run state: not valid JSON (line 1: Expecting property name"),
    ("state.json", b"[]", "state.json: damaged run state: a JSON object was expected, got list"),
    ("split.json", b"{garbage", "split.json: damaged split: not valid JSON (line 1: Expecting property name"),
    ("split.json", b"{}", "split.json: damaged split: not as kws-train writes it (KeyError: 'root')"),
    ("ckpts/last.keras", b"not a zip", "ckpts/last.keras: cannot load the checkpoint (damaged?)"),
    ("state.json", b'{"epochs_done": "x"}', "state.json: damaged run state: epochs_done must be a whole number"),
], ids=["state-garbage", "state-list", "split-garbage", "split-empty", "last-ckpt", "state-epochs"])
def test_resume_of_a_damaged_run_file_is_one_line_naming_it(trained_run, tmp_path, name, damage, message):
    """Before, each of these was a traceback (JSONDecodeError, AttributeError, KeyError, keras' ValueError
    saying the checkpoint was not found); the run folder is left as it was."""
    import shutil

    from click.testing import CliRunner

    from kws.trainer.cli import main

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / name).write_bytes(damage)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    res = CliRunner().invoke(main, ["--resume", str(run), "--set", "train.epochs=9", "-q"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith(f"Error: {run / name.split('/')[0]}") and message in lines[0], lines[0]
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before and (run / name).read_bytes() == damage


@pytest.mark.parametrize("edit, message", [
    ({"features": {"num_features": 20, "num_mel_bins": 20}}, "(input (98, 40), config (98, 20))"),
    ({"model": {"architecture": "tiny_conv"}}, "config tiny_conv)"),
], ids=["features", "architecture"])
def test_resume_after_a_hand_edit_of_the_config_is_one_line(trained_run, tmp_path, edit, message):
    """--resume keeps the saved config; an edit since was a Keras shape traceback, or (architecture)
    a run that went on training the old model filed under the new name."""
    import shutil

    from click.testing import CliRunner

    from kws.trainer.cli import main

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    for section, values in edit.items():
        cfg[section].update(values)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(main, ["--resume", str(run), "--set", "train.epochs=9", "-q"])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert lines[0].startswith(f"Error: {run / 'config.yaml'}: no longer describes the run's checkpoint")
    assert message in lines[0], lines[0]
    assert json.loads((run / "state.json").read_text()) == json.loads((trained_run / "state.json").read_text())


def test_only_the_chief_writes_the_run_folder(monkeypatch):
    from kws.trainer.train import worker_subdir

    cluster = {"worker": ["a:1", "b:1"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert worker_subdir("multiworker") is None
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert worker_subdir("multiworker") == ".worker-1"
    assert worker_subdir("mirrored") is None


def test_a_run_folder_being_trained_is_refused_to_a_second_kws_train(tmp_path):
    """Two kws-train with one --out (or two --resume of one run) both ran to the end in one folder:
    config.yaml from one, checkpoints and metrics from the other, both exit 0."""
    from kws.edge.errors import KwsError
    from kws.trainer import train as train_module
    from kws.trainer.run import RunDir

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    before = len(train_module._RUN_LOCKS)
    train_module._lock_run(run)
    try:
        other = subprocess.run([sys.executable, "-c", "import sys; from kws.trainer.train import _lock_run; "
                                "from kws.trainer.run import RunDir; _lock_run(RunDir(sys.argv[1]))", str(run.path)],
                               capture_output=True, text=True, timeout=60)
        assert other.returncode == 1 and "another kws-train is writing this run folder now" in other.stderr
    finally:
        while len(train_module._RUN_LOCKS) > before:
            os.close(train_module._RUN_LOCKS.pop())
    with pytest.raises(KwsError):  # the refusal is a one-line KwsError in this process too
        other_fd = os.open(run.path, os.O_RDONLY)
        try:
            import fcntl
            fcntl.flock(other_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            train_module._lock_run(run)
        finally:
            os.close(other_fd)


def test_resume_of_a_folder_inside_a_run_names_the_run_to_resume(tmp_path):
    """kws-train --resume models/r2/dist (kws-convert's output) or models/r2/ckpts said only 'not a
    resumable run'; it now names the run folder they lie in, with its command. Nothing is written."""
    from click.testing import CliRunner

    from kws.trainer.cli import main

    run = tmp_path / "r2"
    for sub in ("dist", "ckpts"):
        (run / sub).mkdir(parents=True)
    (run / "config.yaml").write_text("")
    (run / "split.json").write_text("{}")
    (run / "dist" / "manifest.json").write_text("{}")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for sub in ("dist", "ckpts"):
        res = CliRunner().invoke(main, ["--resume", str(run / sub), "-q"])
        assert res.exit_code == 1, res.output
        assert res.output == (f"Error: {run / sub}: not a resumable run (no config.yaml / split.json); it lies "
                              f"inside the run {run}: kws-train --resume {run}\n")
    res = CliRunner().invoke(main, ["--resume", str(tmp_path), "-q"])  # no run above: said as before
    assert res.output == f"Error: {tmp_path}: not a resumable run (no config.yaml / split.json)\n"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
