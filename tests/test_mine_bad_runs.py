"""kws-mine on a run folder with a corrupt mining.json, labels.txt or model.keras, or a threshold or hop it
cannot mine at: one line naming the file, exit 1, and the folder left as it was (the record is not
overwritten, nothing trained)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from audio_fixtures import SAMPLE_RATE, other_audio
from kws.edge.audio import write_wav
from kws.evaluation.mine_cli import main as mine_main

LABELS = b"_silence_\n_unknown_\nup\ndown\n"


@pytest.mark.parametrize("files,parts", [
    ({"mining.json": b"{bad json"}, ("mining.json: not a kws-mine record (Expecting property name",
                                     "move it away")),
    ({"mining.json": b"\xd2\xff\x00"}, ("mining.json: not a kws-mine record (", "utf-8")),
    ({"mining.json": b"[1]"}, ("mining.json: not a kws-mine record (not a JSON object)",)),
    ({"mining.json": b'{"threshold": "high"}'}, ("mining.json: threshold 'high' is not a number in 0..1",
                                                 "move the file away")),
    ({"mining.json": b'{"windows_per_round": 0}'}, ("mining.json: windows_per_round 0 is not a whole number >= 1",
                                                    "move the file away")),
    ({"mining.json": b'{"rounds_in_all": 2.5}'}, ("mining.json: rounds_in_all 2.5 is not a whole number >= 1",
                                                   "move the file away")),
    ({"labels.txt": b"\xf4\x80\xff\xfe\n"}, ("labels.txt: unreadable",)),
    ({"labels.txt": b""}, ("labels.txt: needs at least two labels, found 0",)),
    ({"model.keras": b"not a zip"}, ("model.keras: cannot load the Keras model",)),
], ids=["bad-json", "binary-record", "record-not-object", "recorded-threshold", "recorded-windows",
        "recorded-rounds", "binary-labels", "empty-labels", "corrupt-keras"])
def test_corrupt_run_files_are_one_line(tmp_path, files, parts):
    run = tmp_path / "run"
    run.mkdir()
    contents = {"config.yaml": b"", "labels.txt": LABELS, "model.keras": b"not a zip", **files}
    for name, data in contents.items():
        (run / name).write_bytes(data)
    negatives = tmp_path / "talk.wav"
    write_wav(negatives, np.concatenate([other_audio(np.random.default_rng(k)) for k in range(3)]), SAMPLE_RATE)
    res = CliRunner().invoke(mine_main, ["-m", str(run), "--negatives", str(negatives), "-q"])
    assert res.exit_code == 1, res.output
    assert not isinstance(res.exception, (ValueError, AttributeError)), res.exception
    last = res.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: {run}/") and all(p in last for p in parts), res.output
    assert sorted(p.name for p in run.iterdir()) == sorted(contents)
    assert all((run / name).read_bytes() == data for name, data in contents.items())


@pytest.mark.parametrize("hop_ms,line", [
    # one result per 500 ms window never decides: every round counted 0 false accepts
    ("1000", "hop 1000 ms: results that far apart never span the 125 ms a decision needs within the 500 ms "
             "smoothing window, so nothing would ever be detected; use a shorter hop"),
    # kws-listen and kws-eval refuse it, and the run's config could not hold it: mining measured false
    # accepts at a hop the model is never run at
    ("25", "hop 25 ms must be a multiple of the frontend stride (10 ms)"),
], ids=["never-decides", "between-strides"])
def test_a_hop_the_recognizer_cannot_run_is_refused_before_mining(trained_run, tmp_path, hop_ms, line):
    negatives = tmp_path / "talk.wav"
    write_wav(negatives, np.concatenate([other_audio(np.random.default_rng(k)) for k in range(3)]), SAMPLE_RATE)
    res = CliRunner().invoke(mine_main, ["-m", str(trained_run), "--negatives", str(negatives), "--hop-ms", hop_ms,
                                         "-q"])
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines()[-1] == f"Error: {line}"
    assert not (trained_run / "mining.json").exists()


@pytest.mark.parametrize("threshold,reason", [
    (0, "at 0 the first detection is held for ever (no score falls below 0)"),
    (1, "no score is above 1, so nothing would ever be detected"),
], ids=["zero", "one"])
def test_an_old_runs_threshold_of_0_or_1_is_refused_unless_given(trained_run, tmp_path, threshold, reason):
    """A run trained before kws-train refused smoothing.detection_threshold 0 or 1 still loads: kws-mine
    without --threshold counted false accepts and kept windows at it, where every window counts (0) or
    none does (1), and trained on what that chose."""
    from kws.evaluation.mining import Miner, MiningOptions
    from kws.trainer.config import load_config, save_config

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    config = run / "config.yaml"
    save_config(load_config(config, (f"smoothing.detection_threshold={threshold}",)), config)
    negatives = tmp_path / "talk.wav"
    write_wav(negatives, np.concatenate([other_audio(np.random.default_rng(k)) for k in range(3)]), SAMPLE_RATE)
    before = sorted(p.name for p in run.iterdir())
    res = CliRunner().invoke(mine_main, ["-m", str(run), "--negatives", str(negatives), "-q"])
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"Error: {config}: smoothing.detection_threshold {threshold} is no threshold to mine at: {reason}; "
        "give --threshold (between 0 and 1)")
    assert sorted(p.name for p in run.iterdir()) == before  # no mining.json, nothing trained
    # an earlier kws-mine (before this check) recorded the config's threshold: a rerun goes on with it
    (run / "mining.json").write_text(json.dumps({"threshold": threshold}))
    res = CliRunner().invoke(mine_main, ["-m", str(run), "--negatives", str(negatives), "-q"])
    assert res.exit_code == 1, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"Error: {run / 'mining.json'}: threshold {threshold} is no threshold to mine at: {reason}; "
        "give --threshold (between 0 and 1)")
    # the threshold given is mined at
    assert Miner(run, MiningOptions(threshold=0.6, negatives=(str(negatives),)), quiet=True).threshold == 0.6


def test_a_folder_or_file_inside_a_run_names_the_run_to_mine(tmp_path):
    """kws-mine -m RUN/dist said "train it with kws-train first" of a run already trained, and of
    RUN/model.keras or a file in RUN/dist said only "Directory ... is a file"; each now names the
    run to give, and nothing is written."""
    run = tmp_path / "run"
    (run / "dist").mkdir(parents=True)
    for name in ("config.yaml", "split.json", "model.keras", "dist/manifest.json", "dist/model_int8.tflite"):
        (run / name).write_bytes(b"{}")
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    for given in (run / "dist", run / "dist" / "model_int8.tflite", run / "model.keras"):
        res = CliRunner().invoke(mine_main, ["-m", str(given)])
        assert res.exit_code == 1, res.output
        assert res.output == (f"Error: {given}: not a finished training run (no config.yaml / model.keras); "
                              f"it lies inside the run {run}: kws-mine -m {run}\n")
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
    (tmp_path / "elsewhere").mkdir()  # nothing of a run above it: as before
    res = CliRunner().invoke(mine_main, ["-m", str(tmp_path / "elsewhere")])
    assert res.output.endswith("model.keras); train it with kws-train first\n")
