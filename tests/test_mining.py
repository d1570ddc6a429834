"""kws-mine (hard-negative mining) and kws-eval --calibrate --negatives on the fixture model."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audio_fixtures import SAMPLE_RATE, other_audio, word_audio
from kws.edge.audio import write_wav
from kws.edge.manifest import load_manifest

WORDS = ("up", "down", "beep")


def _confusing_recording(seconds: int, seed: int) -> np.ndarray:
    """Keyword-free by declaration, but every fourth second holds an 'up' or 'beep': what the
    fixture model fires on, as a real model fires on words that sound like its keyword."""
    rng = np.random.default_rng(seed)
    parts = [word_audio(("up", "beep")[k // 4 % 2], rng) if k % 4 == 1 else other_audio(rng)
             for k in range(seconds)]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def confusers(tmp_path_factory):
    root = tmp_path_factory.mktemp("confusers")
    write_wav(root / "a.wav", _confusing_recording(40, 1), SAMPLE_RATE)
    write_wav(root / "b.wav", _confusing_recording(24, 2), SAMPLE_RATE)
    return root


@pytest.fixture()
def run_copy(trained_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(trained_run, out)
    return out


@pytest.fixture(scope="module")
def score_once():
    """``float_tflite_scores`` that scores each recording once per model weights, hop and frontend: the
    tests whose training is stubbed score the unchanged fixture model round after round, and a round's
    count after training is the next round's before. A model with other weights is scored anew, so a
    hit also shows that two counts were taken on the same weights."""
    from kws.evaluation.mining import float_tflite_scores

    done: dict[tuple, object] = {}

    def scores(model, paths, frontend, hop_ms, folder):
        digest = hashlib.sha256()
        for w in model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
        key = (digest.hexdigest(), repr(frontend), float(hop_ms))
        missing = [p for p in paths if (key, str(p)) not in done]
        if missing:
            for path, part in zip(missing, float_tflite_scores(model, missing, frontend, hop_ms, folder)):
                done[key, str(path)] = part
        return [done[key, str(p)] for p in paths]

    return scores


def test_mining_keeps_hard_windows_trains_on_them_and_resumes(run_copy, confusers, monkeypatch, score_once, capsys):
    """Also: with train.time_budget_s used up, kws-train --resume trains one epoch and stops; so does
    each mining round, which said nothing of the epochs it was asked for and did not train."""
    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.mining import Miner, MiningOptions, keras_scores
    from kws.evaluation.scoring import negatives_false_accepts
    from kws.trainer.config import load_config, save_config

    monkeypatch.setattr(mining, "float_tflite_scores", score_once)
    # named relative to the working folder, as typed: mining.json keeps them absolute
    monkeypatch.chdir(confusers.parent)
    opts = MiningOptions(rounds=1, epochs_per_round=1, windows_per_round=8, margin=0.3, negatives=(confusers.name,))
    epochs_before = json.loads((run_copy / "state.json").read_text())["epochs_done"]
    real_train = train_module.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    miner = Miner(run_copy, opts, quiet=True)
    parts, fa = miner.score()
    # every scored window ends on a hop boundary, one per 40 ms once a full clip has arrived and on
    # through one clip of silence after the file's end (as kws-listen hears a file out)
    assert [len(p.times) for p in parts] == [40 * 1000 // 40 + 1, 24 * 1000 // 40 + 1]
    assert parts[0].times[-1] == pytest.approx(41.0) and parts[0].duration_s == pytest.approx(40.0)
    assert parts[0].times[0] == pytest.approx(1.0) and parts[0].times[1] == pytest.approx(1.04)
    assert fa["hours"] == pytest.approx(64 / 3600, rel=1e-3) and fa["false_accepts"] > 0
    with pytest.raises(KeyboardInterrupt):
        miner.run_rounds()
    record = json.loads((run_copy / "mining.json").read_text())
    (first,) = record["rounds"]
    assert first["fa_before"] == fa and first["fa_after"] is None
    assert first["windows_added"] == len(record["windows"]) == 8
    assert all(w["score"] >= 0.7 - 0.3 for w in record["windows"])
    starts = sorted((w["file"], w["start_s"]) for w in record["windows"])
    assert all(not (a[0] == b[0] and b[1] - a[1] < 0.5) for a, b in zip(starts, starts[1:]))
    assert record["negatives"] == [str(confusers)] and all(Path(w["file"]).is_absolute() for w in record["windows"])

    # the rerun, from another folder and with the negatives of mining.json, trains on the stored
    # windows (not mined again) and measures after
    monkeypatch.chdir(run_copy)
    monkeypatch.setattr(train_module, "train", real_train)
    record = Miner(run_copy, dataclasses.replace(opts, negatives=()), quiet=True).run_rounds()
    assert [(w["file"], w["start_s"]) for w in record["windows"]] == [(w["file"], w["start_s"]) for w in
                                                                      json.loads((run_copy / "mining.json")
                                                                                 .read_text())["windows"]]
    (first,) = record["rounds"]
    assert first["fa_after"]["hours"] == fa["hours"] and first["windows_added"] == 8
    state = json.loads((run_copy / "state.json").read_text())
    assert state["epochs_done"] == epochs_before + 1
    metrics = json.loads((run_copy / "metrics.json").read_text())
    assert metrics["mining"] == [{"round": 1, "windows_added": 8, "fa_per_hour_before": fa["fa_per_hour"],
                                  "fa_per_hour_after": first["fa_after"]["fa_per_hour"]}]
    # the after-count is exactly kws-eval's count over the new model's scores (scored once: a
    # model.keras with other weights than the round measured would be scored anew)
    import keras
    model = keras.models.load_model(run_copy / "model.keras")
    paths = [str(p) for p in sorted(confusers.glob("*.wav"))]
    scored = score_once(model, paths, miner.cfg.features, 40.0, run_copy)
    again = negatives_false_accepts(scored, miner.manifest, dict.fromkeys(WORDS, 0.7))
    assert again == first["fa_after"] and not (run_copy / ".mining_float.tflite").exists()
    # the float TFLite scores are Keras' scores
    keras_parts = keras_scores(model, paths, miner.cfg.features, 40.0)
    assert all(np.allclose(a.scores, b.scores, atol=1e-5) and np.array_equal(a.times, b.times)
               for a, b in zip(scored, keras_parts))

    # a second round adds new windows, none within 0.5 s of a kept one, and trains one more epoch:
    # asked for two, with the run's time budget used up it trains one, and says so
    config = run_copy / "config.yaml"
    save_config(load_config(config, ("train.time_budget_s=1",)), config)  # the fixture trained for longer
    capsys.readouterr()
    record = Miner(run_copy, dataclasses.replace(opts, rounds=2, epochs_per_round=2, negatives=()),
                   quiet=True).run_rounds()
    assert [r["round"] for r in record["rounds"]] == [1, 2]
    assert record["rounds"][1]["fa_before"] == record["rounds"][0]["fa_after"]
    assert len(record["windows"]) == 8 + record["rounds"][1]["windows_added"]
    starts = sorted((w["file"], w["start_s"]) for w in record["windows"])
    assert all(not (a[0] == b[0] and b[1] - a[1] < 0.5) for a, b in zip(starts, starts[1:]))
    state = json.loads((run_copy / "state.json").read_text())
    assert state["epochs_done"] == epochs_before + 2
    assert record["rounds"][1]["fa_after"] is not None
    lines = capsys.readouterr().err.splitlines()
    assert [l for l in lines if "kws-mine" in l] == [
        f"kws-mine: warning: round 2 trained 1 of its 2 epochs: the run's train.time_budget_s (1 s) is used up "
        f"({state['train_seconds']:.0f} s trained); raise it in {config} (0: no limit), and a rerun trains this "
        "round on"]


def test_mine_cli_needs_negatives(run_copy):
    from kws.evaluation.mine_cli import main as mine_main

    res = CliRunner().invoke(mine_main, ["-m", str(run_copy)])
    assert res.exit_code == 1 and "no negatives to mine: give --negatives DIR" in res.output


@pytest.fixture()
def dist(converted_run, tmp_path):
    out = tmp_path / "dist"
    shutil.copytree(converted_run, out)
    return out


def test_calibrate_on_negatives_writes_thresholds_for_their_fa(dist, tiny_dataset, confusers):
    from kws.evaluation.eval_cli import main as eval_main
    from kws.evaluation.scoring import file_scores, negatives_false_accepts

    target = 60.0
    common = ["-m", str(dist), "--keywords", str(tiny_dataset), "--hours", "0.02", "--snr", "10:25", "--seed", "3",
              "--negatives", str(confusers)]
    res = CliRunner().invoke(eval_main, common + ["--json"])
    assert res.exit_code == 0, res.output
    at_default = json.loads(res.stdout)["negatives"]["at_manifest_thresholds"]
    assert at_default["hours"] == pytest.approx(64 / 3600, rel=1e-3) and at_default["fa_per_hour"] > target

    res = CliRunner().invoke(eval_main, common + ["--calibrate", "--target-fa-per-hour", str(target), "--json"])
    assert res.exit_code == 0, res.output
    cal = json.loads(res.stdout)["calibration"]
    m = load_manifest(dist)
    assert m.thresholds == cal["thresholds"] and set(m.thresholds) == set(WORDS)
    assert m.calibration["fa_measured_on"] == "negatives" and m.calibration["negatives"] == [str(confusers)]
    assert m.calibration["negatives_hours"] == pytest.approx(64 / 3600, rel=1e-3)
    assert m.calibration["fa_per_hour"] == cal["fa_per_hour"] <= target
    # the rate counting the near misses' tail where none is seen meets the target too
    assert m.calibration["fa_per_hour_expected"] == cal["fa_per_hour_expected"] <= target
    assert set(m.calibration["near_misses"]) == set(WORDS)
    assert m.calibration["chosen_for"] == f"{target:g} FA/h on {64 / 3600:.3f} h of negatives"
    # recounted independently at the written thresholds and window: the same false accepts
    parts = [file_scores(dist / "manifest.json", p) for p in sorted(confusers.glob("*.wav"))]
    recount = negatives_false_accepts(parts, m, dict(m.thresholds))
    assert recount["fa_per_hour"] == m.calibration["fa_per_hour"]
    assert recount["false_accepts"] == m.calibration["negatives_false_accepts"]


def test_calibrating_on_the_models_own_training_negatives_is_flagged(dist, tiny_dataset, confusers, tmp_path):
    """Negatives a model trained on understate its false accepts on new audio: kws-eval says so and
    the manifest's calibration records how many of them it was chosen on."""
    from kws.edge.manifest import save_manifest
    from kws.evaluation.eval_cli import main as eval_main

    run = tmp_path / "source_run"
    run.mkdir()
    (run / "config.yaml").write_text(f"data:\n  negatives:\n  - {confusers / 'a.wav'}\n")
    m = load_manifest(dist)
    save_manifest(m.with_updates(extra={**m.extra, "source_run": str(run)}), dist / "manifest.json")
    common = ["-m", str(dist), "--keywords", str(tiny_dataset), "--hours", "0.02", "--seed", "3",
              "--negatives", str(confusers), "--calibrate", "--target-fa-per-hour", "60", "--json"]
    res = CliRunner().invoke(eval_main, common)
    assert res.exit_code == 0, res.output
    assert (f"warning: 1 of the 2 --negatives files trained this model ({run})" in res.stderr
            and "calibrate on recordings held out of training" in res.stderr)
    assert json.loads(res.stdout)["negatives"]["trained_on"] == 1
    assert load_manifest(dist).calibration["negatives_files_trained_on"] == 1

    (run / "config.yaml").write_text("data:\n  negatives: []\n")  # held-out negatives: no warning
    res = CliRunner().invoke(eval_main, common)
    assert res.exit_code == 0 and "trained this model" not in res.stderr
    assert json.loads(res.stdout)["negatives"]["trained_on"] == 0


def test_negative_false_accepts_equal_full_smoothing_of_every_file():
    from kws.edge.frontend import FrontendConfig
    from kws.edge.manifest import Manifest
    from kws.evaluation.scoring import ScoredAudio, negatives_false_accepts, smooth
    from kws.evaluation.streaming_metrics import streaming_report

    manifest = Manifest(labels=("_silence_", "_unknown_", "a", "b"), frontend=FrontendConfig())
    rng = np.random.default_rng(0)
    parts = []
    for _ in range(30):  # files that fire somewhere and files whose keyword scores stay low
        scores = rng.dirichlet([1, 1, 0.3, 0.3], size=300).astype(np.float32) * rng.uniform(0.2, 1.0)
        parts.append(ScoredAudio(times=np.arange(1, 301) * 0.04, scores=scores, duration_s=13.0))
    counts = []
    for th in (0.1, 0.2, 0.5):
        fa = negatives_false_accepts(parts, manifest, {"a": th, "b": th})
        full = [streaming_report(smooth(p.times, p.scores, manifest, None, {"a": th, "b": th}), [], 13.0, ["a", "b"])
                for p in parts]
        assert fa["false_accepts"] == sum(r["false_accepts"] for r in full)
        assert fa["per_label"] == {l: sum(r["per_label"][l]["false_accepts"] for r in full) for l in "ab"}
        assert fa["hours"] == pytest.approx(30 * 13.0 / 3600, abs=1e-4)  # per-file hours are rounded to 1e-5
        counts.append(fa["false_accepts"])
    assert counts[0] > counts[1] > 0 == counts[2]  # the check covers files that fire and files that cannot


@pytest.mark.parametrize("window_ms,hop_ms,batch", [(30.0, 40.0, 7), (25.0, 1300.0, 3)])
def test_scoring_transforms_each_frame_once_and_scores_what_the_per_window_frontend_gives(tmp_path, monkeypatch,
                                                                                         window_ms, hop_ms, batch):
    """kws-mine's scoring ran the frontend's FFT over every whole 1 s window at every hop (98 frames for
    each 4 new ones at a 40 ms hop: three quarters of a scoring pass). Each frame of a recording is now
    transformed once; the "scores" here are the features themselves, which must be, to the bit, what
    ``Frontend.features`` gives for each batch of the windows' clips (files read in odd-sized blocks,
    batches split across files). Also where the frames stop short of a clip's end (25 ms windows), and
    where a hop is longer than a clip: there the windows after the first block held later audio than
    their times said, and one more window was scored past the clip of silence after the end."""
    from functools import partial

    import kws.evaluation.mining as mining
    from kws.edge.audio import load_audio, stream_audio
    from kws.edge.frontend import Frontend, FrontendConfig

    cfg = FrontendConfig(window_ms=window_ms)
    fe = Frontend(cfg)
    rng = np.random.default_rng(5)
    paths = [str(tmp_path / f"{k}.wav") for k in range(2)]
    for path, n in zip(paths, (5 * SAMPLE_RATE + 123, 2 * SAMPLE_RATE)):
        write_wav(path, rng.normal(0, 0.1, n).astype(np.float32), SAMPLE_RATE)
    transformed = []
    real_power_spectrum = Frontend.power_spectrum

    def counted(self, frames):
        transformed.append(int(np.prod(frames.shape[:-1])))
        return real_power_spectrum(self, frames)

    monkeypatch.setattr(Frontend, "power_spectrum", counted)
    monkeypatch.setattr(mining, "stream_audio", partial(stream_audio, block_frames=999))
    monkeypatch.setattr(mining, "SCORE_BATCH", batch)
    n_labels = cfg.num_frames * cfg.num_features
    parts = mining.window_scores(lambda feats: feats.reshape(len(feats), -1), n_labels, paths, cfg, hop_ms)
    monkeypatch.undo()

    clip, hop = cfg.clip_samples, int(SAMPLE_RATE * hop_ms / 1000)
    recordings = [load_audio(path, SAMPLE_RATE)[0] for path in paths]
    heard = [np.concatenate([a, np.zeros(clip, np.float32)]) for a in recordings]  # and one clip of silence
    ends = [np.arange(clip, len(h) + 1, hop) for h in heard]
    clips = [h[end - clip:end] for h, e in zip(heard, ends) for end in e]
    own = np.concatenate([fe.features(np.stack(clips[i:i + batch])) for i in range(0, len(clips), batch)])
    assert [len(p.times) for p in parts] == [len(e) for e in ends]
    for audio, part, e in zip(recordings, parts, ends):
        assert np.array_equal(part.times, e / SAMPLE_RATE) and part.duration_s == len(audio) / SAMPLE_RATE
    assert np.array_equal(np.concatenate([p.scores for p in parts]), own.reshape(len(clips), -1))
    assert sum(transformed) == sum(fe.num_frames_for(len(h)) for h in heard)


def test_a_rerun_on_other_negatives_records_them_too(run_copy, confusers, monkeypatch, score_once):
    """mining.json's negatives are what kws-eval checks calibration negatives against: a rerun that
    mined b.wav after a.wav kept only a.wav there, so calibrating on b.wav raised no warning."""
    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.eval_cli import trained_negatives
    from kws.evaluation.mining import Miner, MiningOptions

    a, b = str(confusers / "a.wav"), str(confusers / "b.wav")
    (run_copy / "mining.json").write_text(json.dumps({"negatives": [a], "rounds": [], "windows": []}))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mining, "float_tflite_scores", score_once)
    monkeypatch.setattr(train_module, "train", interrupted)
    miner = Miner(run_copy, MiningOptions(rounds=1, windows_per_round=4, negatives=(b,)), quiet=True)
    assert [f.path for f in miner.negatives.files] == [b]
    with pytest.raises(KeyboardInterrupt):
        miner.run_rounds()
    assert json.loads((run_copy / "mining.json").read_text())["negatives"] == [a, b]
    from types import SimpleNamespace
    assert trained_negatives(SimpleNamespace(extra={"source_run": str(run_copy)})) == {
        Path(a).resolve(), Path(b).resolve()}


def test_a_rerun_finishes_a_round_at_the_threshold_and_hop_it_began_with(run_copy, confusers, monkeypatch, score_once):
    """After Ctrl-C, the README's rerun of plain ``kws-mine -m RUN`` measured the round's after-count
    at the run's threshold and hop, its before-count at the --threshold / --hop-ms of the command
    that began it: a model training left as it was went from one count of false accepts to another."""
    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.mining import Miner, MiningOptions

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mining, "float_tflite_scores", score_once)
    monkeypatch.setattr(train_module, "train", interrupted)
    # the shorter recording alone: what is checked is at which threshold and hop each count is taken
    began = MiningOptions(rounds=1, windows_per_round=4, threshold=0.05, hop_ms=80.0,
                          negatives=(str(confusers / "b.wav"),))
    with pytest.raises(KeyboardInterrupt):
        Miner(run_copy, began, quiet=True).run_rounds()
    unfinished = (run_copy / "mining.json").read_text()
    monkeypatch.setattr(train_module, "train", lambda **kwargs: None)  # the model stays as it was
    # a rerun without the options goes on with them; one given others finishes the round with its own
    for rerun, now in ((MiningOptions(rounds=1), (0.05, 80.0)),
                       (MiningOptions(rounds=1, threshold=0.9, hop_ms=40.0), (0.9, 40.0))):
        (run_copy / "mining.json").write_text(unfinished)
        record = Miner(run_copy, rerun, quiet=True).run_rounds()
        (first,) = record["rounds"]
        assert first["fa_after"] == first["fa_before"] and first["fa_before"]["false_accepts"] > 0
        assert (first["threshold"], first["hop_ms"]) == (0.05, 80.0)
        assert (record["threshold"], record["hop_ms"]) == now


def test_a_bare_rerun_mines_new_rounds_with_the_recorded_margin_windows_and_epochs(run_copy, confusers, monkeypatch,
                                                                                   score_once):
    """The README's rerun of plain ``kws-mine -m RUN`` after Ctrl-C went on with the recorded
    --threshold and --hop-ms but chose its new rounds' windows with the default margin 0.2, and kept
    the default 500 windows and trained the default 3 epochs whatever --windows and --epochs began."""
    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.mining import Miner, MiningOptions

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mining, "float_tflite_scores", score_once)
    monkeypatch.setattr(train_module, "train", interrupted)
    # threshold 0.7 - margin 0.7: every window is hard enough, most of them far below 0.7 - 0.2, and
    # far more of them than 40 (each round keeps windows 0.5 s apart over 64 s of negatives)
    began = MiningOptions(rounds=2, windows_per_round=40, epochs_per_round=2, margin=0.7,
                          negatives=(str(confusers),))
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        Miner(run_copy, began, quiet=True, say=said.append).run_rounds()
    assert not [l for l in said if "going on with" in l]  # nothing recorded yet
    monkeypatch.setattr(train_module, "train", lambda **kwargs: None)
    said.clear()
    record = Miner(run_copy, MiningOptions(rounds=2), quiet=True, say=said.append).run_rounds()
    second = [w for w in record["windows"] if w["round"] == 2]
    assert record["margin"] == record["rounds"][1]["margin"] == 0.7
    assert len(second) == record["rounds"][1]["windows_added"] == 40
    assert record["rounds"][1]["target_epochs"] - record["rounds"][1]["start_epoch"] == 2
    assert min(w["score"] for w in second) < 0.7 - 0.2
    assert said[0] == ("kws-mine: going on with mining.json's --threshold 0.7 --hop-ms 40 --margin 0.7 --windows 40 "
                       "--epochs 2 (an option given wins)")
    # a rerun given --margin and --windows mines with them, and records them
    said.clear()
    record = Miner(run_copy, MiningOptions(rounds=3, margin=0.1, windows_per_round=3), quiet=True,
                   say=said.append).run_rounds()
    assert record["margin"] == record["rounds"][2]["margin"] == 0.1
    assert all(w["score"] >= 0.7 - 0.1 for w in record["windows"] if w["round"] == 3)
    assert record["windows_per_round"] == 3 and record["rounds"][2]["windows_added"] <= 3
    assert record["epochs_per_round"] == record["rounds"][2]["target_epochs"] - record["rounds"][2]["start_epoch"] == 2
    assert said[0] == ("kws-mine: going on with mining.json's --threshold 0.7 --hop-ms 40 --epochs 2 "
                       "(an option given wins)")


def test_a_bare_rerun_goes_on_with_the_recorded_rounds_and_one_that_stops_short_says_so(run_copy, confusers,
                                                                                         monkeypatch, capsys):
    """After kws-mine --rounds 5 was stopped in round 4, the README's bare rerun (--rounds 3 by
    default, counting rounds in all) left round 4 unfinished, its windows chosen and never trained on,
    without a word. --rounds is now recorded and carried over as --windows and --epochs are, and a
    --rounds that stops before a begun round says which one finishes it."""
    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.mining import Miner, MiningOptions

    epochs = json.loads((run_copy / "state.json").read_text())["epochs_done"]
    counted = {"false_accepts": 2, "fa_per_hour": 1.0, "hours": 2.0}
    began = [{"round": n, "fa_before": counted, "windows_added": 0, "windows_total": 0, "start_epoch": epochs,
              "target_epochs": epochs, "fa_after": counted if n < 4 else None} for n in (1, 2, 3, 4)]
    trained: list[dict] = []
    monkeypatch.setattr(mining.Miner, "score", lambda self, threshold=None, hop_ms=None: ([], counted))
    monkeypatch.setattr(train_module, "train", lambda **kwargs: trained.append(kwargs))
    warning = ("kws-mine: warning: round 4{} is unfinished, and --rounds 3 stops before it; "
               "give --rounds {} to finish it")

    # a mining.json of an earlier kws-mine, which did not record --rounds: a bare rerun runs 3
    (run_copy / "mining.json").write_text(json.dumps({"negatives": [str(confusers)], "rounds": began, "windows": []}))
    record = Miner(run_copy, MiningOptions(), quiet=True).run_rounds()
    assert capsys.readouterr().err.splitlines() == [warning.format("", 4)]
    assert trained == [] and record["rounds"][3]["fa_after"] is None

    (run_copy / "mining.json").write_text(json.dumps({"negatives": [str(confusers)], "rounds": began, "windows": [],
                                                      "rounds_in_all": 5}))
    Miner(run_copy, MiningOptions(rounds=3), quiet=True).run_rounds()  # given: it wins, and says what it leaves
    assert capsys.readouterr().err.splitlines() == [warning.format(" of an earlier --rounds 5", 5)]
    said: list[str] = []
    record = Miner(run_copy, MiningOptions(), quiet=True, say=said.append).run_rounds()
    assert said[0] == "kws-mine: going on with mining.json's --rounds 5 (an option given wins)"
    assert capsys.readouterr().err == "" and len(trained) == 2  # rounds 4 and 5
    assert [r["round"] for r in record["rounds"] if r["fa_after"] is not None] == [1, 2, 3, 4, 5]
    assert json.loads((run_copy / "mining.json").read_text())["rounds_in_all"] == 5


def test_kws_mine_drops_tensorflows_retracing_warning_and_only_that(run_copy, confusers, monkeypatch):
    """From round 2 on kws-mine printed two 'WARNING:tensorflow:5 out of the last 6 calls to <function
    TensorFlowTrainer.make_predict_function...> triggered tf.function retracing' lines: each round's
    training makes new Keras models that trace their predict step, and TensorFlow counts the traces
    across models. The stub training logs what that training logs; kws-mine now drops that warning,
    keeps TensorFlow's others, and no longer drops it once it has returned."""
    import logging

    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.mine_cli import main as mine_main

    retracing = ("5 out of the last 6 calls to <function TensorFlowTrainer.make_predict_function.<locals>."
                 "one_step_on_data_distributed at 0x7f> triggered tf.function retracing. Tracing is expensive")
    tf_logger = logging.getLogger("tensorflow")

    def training(**kwargs):
        tf_logger.warning(retracing)
        tf_logger.warning("another TensorFlow warning")

    heard: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: heard.append(record.getMessage())
    counted = {"false_accepts": 2, "fa_per_hour": 1.0, "hours": 2.0}
    monkeypatch.setattr(mining.Miner, "score", lambda self, threshold=None, hop_ms=None: ([], counted))
    monkeypatch.setattr(train_module, "train", training)
    tf_logger.addHandler(handler)
    try:
        res = CliRunner().invoke(mine_main, ["-m", str(run_copy), "--negatives", str(confusers), "--rounds", "2",
                                             "--epochs", "1", "-q"])
        assert res.exit_code == 0, res.output
        assert heard == ["another TensorFlow warning"] * 2
        tf_logger.warning(retracing)  # said again outside kws-mine
        assert heard[-1] == retracing
    finally:
        tf_logger.removeHandler(handler)


def _round(number: int, threshold: float, before: float, after: float, hours: float = 0.5) -> dict:
    """A finished round of mining.json, its false accepts counted at ``threshold``."""
    return {"round": number, "threshold": threshold, "hop_ms": 40.0, "windows_added": 4,
            "fa_before": {"false_accepts": int(before * hours), "hours": hours, "fa_per_hour": before},
            "fa_after": {"false_accepts": int(after * hours), "hours": hours, "fa_per_hour": after}}


@pytest.mark.parametrize("rounds,now,said", [
    ([_round(1, 0.7, 900.0, 300.0), _round(2, 0.7, 300.0, 100.0)], 0.7,
     "FA/h on 0.500 h of negatives 900.00 -> 100.00 (threshold 0.7);"),
    # a rerun with --threshold 0.9: round 1's 900 before at 0.7 against round 3's 20 after at 0.9
    # read as mining taking the false accepts from 900 to 20
    ([_round(1, 0.7, 900.0, 300.0), _round(2, 0.9, 100.0, 50.0), _round(3, 0.9, 50.0, 20.0)], 0.9,
     "FA/h on 0.500 h of negatives 100.00 -> 20.00 (in rounds 2-3, at threshold 0.9; round 1 counted at another "
     "threshold, hop or on other negatives);"),
    ([_round(1, 0.7, 900.0, 300.0), _round(2, 0.7, 300.0, 100.0), _round(3, 0.7, 40.0, 20.0, hours=2.0)], 0.7,
     "FA/h on 2.000 h of negatives 40.00 -> 20.00 (in round 3, at threshold 0.7; rounds 1-2 counted at another "
     "threshold, hop or on other negatives);"),
    # a round begun at 0.5 and finished by a rerun given --threshold 0.9 was counted at 0.5
    ([_round(1, 0.5, 900.0, 300.0)], 0.9, "FA/h on 0.500 h of negatives 900.00 -> 300.00 (threshold 0.5);"),
    # the run's train.time_budget_s stopped round 1 after one of its three epochs
    ([{**_round(1, 0.7, 900.0, 300.0), "start_epoch": 8, "target_epochs": 11, "epochs_trained": 1},
      {**_round(2, 0.7, 300.0, 100.0), "start_epoch": 9, "target_epochs": 12, "epochs_trained": 3}], 0.7,
     "FA/h on 0.500 h of negatives 900.00 -> 100.00 (threshold 0.7); round 1 trained 1 of its 3 epochs "
     "(train.time_budget_s);"),
], ids=["one-threshold", "threshold-changed", "other-negatives", "finished-by-another-threshold", "cut-short"])
def test_the_summary_compares_only_rounds_counted_alike(tmp_path, monkeypatch, rounds, now, said):
    import kws.evaluation.mine_cli as mine_cli

    record = {"threshold": now, "hop_ms": 40.0, "rounds": rounds, "windows": [{}] * 4 * len(rounds)}
    monkeypatch.setattr(mine_cli, "mine", lambda *args, **kwargs: record)
    res = CliRunner().invoke(mine_cli.main, ["-m", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert res.stdout == (f"kws-mine: {len(rounds)} round{'s' * (len(rounds) > 1)}, {4 * len(rounds)} hard "
                          f"negatives; {said} model: {tmp_path}\n")


def test_the_summary_says_fa_per_hour_as_kws_eval_does_and_counts_in_words(tmp_path, monkeypatch):
    """kws-mine's summary said '1 rounds, 1 hard negatives' and FA/h to four decimals ('475.2165')
    where kws-eval says two: one round, one window, and kws-eval's precision now."""
    import kws.evaluation.mine_cli as mine_cli

    record = {"threshold": 0.7, "hop_ms": 40.0, "rounds": [_round(1, 0.7, 475.2165, 12.3456)], "windows": [{}]}
    monkeypatch.setattr(mine_cli, "mine", lambda *args, **kwargs: record)
    res = CliRunner().invoke(mine_cli.main, ["-m", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert res.stdout == (f"kws-mine: 1 round, 1 hard negative; FA/h on 0.500 h of negatives 475.22 -> 12.35 "
                          f"(threshold 0.7); model: {tmp_path}\n")


@pytest.mark.parametrize("converted_after", [False, True])
def test_a_conversion_older_than_the_mined_model_is_named(tmp_path, monkeypatch, converted_after):
    """After kws-mine on a run converted before, kws-listen -m RUN went on running the unmined dist/
    with nothing said: the summary ended 'model: RUN' as if the mined model were in use."""
    import os

    import kws.evaluation.mine_cli as mine_cli

    (tmp_path / "dist").mkdir()
    manifest, model = tmp_path / "dist" / "manifest.json", tmp_path / "model.keras"
    manifest.write_text("{}")
    model.write_text("")
    os.utime(manifest, (1_000_000, 1_000_000))
    os.utime(model, (2_000_000, 2_000_000))  # mining trained the run after its conversion
    if converted_after:
        os.utime(manifest, (3_000_000, 3_000_000))
    record = {"threshold": 0.7, "hop_ms": 40.0, "rounds": [_round(1, 0.7, 900.0, 300.0)], "windows": [{}] * 4}
    monkeypatch.setattr(mine_cli, "mine", lambda *args, **kwargs: record)
    res = CliRunner().invoke(mine_cli.main, ["-m", str(tmp_path)])
    assert res.exit_code == 0, res.output
    note = (f"kws-mine: note: {tmp_path / 'dist'} was converted before the run's last training, and kws-listen, "
            f"kws-eval and kws serve run what it holds: kws-convert -m {tmp_path} puts the mined model there")
    assert res.stderr.splitlines() == ([] if converted_after else [note])


def test_a_rerun_trains_on_the_last_round_a_raised_time_budget_leaves_time_for(run_copy, confusers, monkeypatch,
                                                                                score_once, capsys):
    """A round that train.time_budget_s cut short counted as finished: the rerun the warning asks for,
    with the budget raised, trained nothing more and kept the count after the short training."""
    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.mine_cli import main as mine_main
    from kws.evaluation.mining import Miner, MiningOptions
    from kws.trainer.config import load_config, save_config

    config = run_copy / "config.yaml"
    save_config(load_config(config, ("train.time_budget_s=1",)), config)  # the fixture trained for longer
    epochs_before = json.loads((run_copy / "state.json").read_text())["epochs_done"]
    asked = []

    def train_within_budget(resume, overrides, quiet):
        """As kws-train --resume trains: one epoch once the budget is used up, else up to train.epochs."""
        asked.append(overrides)
        state = json.loads((run_copy / "state.json").read_text())
        target = int(overrides[0].split("=")[1])
        budget = load_config(config).train.time_budget_s
        used_up = budget and state["train_seconds"] >= budget
        state["epochs_done"] = state["epochs_done"] + 1 if used_up else target
        (run_copy / "state.json").write_text(json.dumps(state))

    monkeypatch.setattr(mining, "float_tflite_scores", score_once)
    monkeypatch.setattr(train_module, "train", train_within_budget)
    opts = MiningOptions(rounds=1, epochs_per_round=3, windows_per_round=4, negatives=(str(confusers),))
    (first,) = Miner(run_copy, opts, quiet=True).run_rounds()["rounds"]
    assert first["epochs_trained"] == 1 and first["fa_after"] is not None
    capsys.readouterr()

    # the budget still used up: the round stays as it was, and the rerun and its summary say so
    spent = json.loads((run_copy / "state.json").read_text())["train_seconds"]
    res = CliRunner().invoke(mine_main, ["-m", str(run_copy), "--rounds", "1"])
    assert res.exit_code == 0, res.output
    assert len(asked) == 1
    assert (f"kws-mine: round 1 stays cut short at 1 of its 3 epochs: the run's train.time_budget_s (1 s) is still "
            f"used up ({spent:.0f} s trained); raise it in {config} (0: no limit) and rerun to train the round on"
            in res.stderr.splitlines())
    assert "round 1 trained 1 of its 3 epochs (train.time_budget_s); model:" in res.stdout

    # raised: the rerun trains the round on to its three epochs and counts its false accepts again
    save_config(load_config(config, ("train.time_budget_s=0",)), config)
    res = CliRunner().invoke(mine_main, ["-m", str(run_copy), "--rounds", "1"])
    assert res.exit_code == 0, res.output
    assert asked == [(f"train.epochs={epochs_before + 3}",)] * 2
    assert json.loads((run_copy / "state.json").read_text())["epochs_done"] == epochs_before + 3
    (again,) = json.loads((run_copy / "mining.json").read_text())["rounds"]
    assert again["epochs_trained"] == 3 and again["windows_added"] == first["windows_added"]
    assert again["fa_after"] == first["fa_after"]  # the stubbed training left the model as it was
    err = res.stderr.splitlines()
    assert ("kws-mine: round 1 trained 1 of its 3 epochs before the run's train.time_budget_s stopped it; training "
            "it on and measuring it again") in err
    assert [l for l in err if l.startswith("mining round 1: FA/h on the negatives")]
    assert "(train.time_budget_s)" not in res.stdout and "kws-mine: 1 round," in res.stdout


def test_training_after_mining_says_the_best_epoch_is_chosen_anew(run_copy, confusers, monkeypatch, score_once):
    """kws-mine resets the run's best score so that the best checkpoint comes from the epochs that saw
    the mined windows; the resumed training then said "(no best epoch chosen yet)", as of a run that
    never chose one. It now says that mining reset it; other runs say what they said."""
    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.mining import Miner, MiningOptions
    from kws.trainer.run import RunDir
    from kws.trainer.train import best_so_far

    said = []
    monkeypatch.setattr(mining, "float_tflite_scores", score_once)
    monkeypatch.setattr(train_module, "train",
                        lambda resume, overrides, quiet: said.append(best_so_far(RunDir(resume).read_state())))
    opts = MiningOptions(rounds=1, epochs_per_round=1, windows_per_round=4, negatives=(str(confusers),))
    Miner(run_copy, opts, quiet=True).run_rounds()
    assert said == ["best epoch chosen anew after kws-mine, among the epochs trained from here on"]
    assert best_so_far({"epochs_done": 3, "best_val_accuracy": -1.0}) == "no best epoch chosen yet"
    assert best_so_far({"epochs_done": 3, "best_val_accuracy": 0.875}) == "best validation accuracy 0.8750"


def test_a_rounds_count_after_is_the_next_rounds_before_without_scoring_again(run_copy, confusers, monkeypatch,
                                                                             score_once):
    """Round r's count after training and round r+1's count before score the same model.keras on the
    same negatives: the negatives are scored once for both (three passes for two rounds, not four), and
    a model file written since is scored anew."""
    import keras

    import kws.evaluation.mining as mining
    import kws.trainer.train as train_module
    from kws.evaluation.mining import Miner, MiningOptions

    passes = []

    def counted(model, paths, *args):
        passes.append(len(paths))
        return score_once(model, paths, *args)

    def resaved(**kwargs):  # a new model.keras (one bias moved), as a round's training writes one
        model_file = run_copy / "model.keras"
        model = keras.models.load_model(model_file, compile=False)
        weights = model.get_weights()
        weights[-1] = weights[-1] + np.float32(0.01)
        model.set_weights(weights)
        model.save(model_file)

    monkeypatch.setattr(mining, "float_tflite_scores", counted)
    monkeypatch.setattr(train_module, "train", resaved)
    record = Miner(run_copy, MiningOptions(rounds=2, windows_per_round=2, epochs_per_round=1,
                                           negatives=(str(confusers / "b.wav"),)), quiet=True).run_rounds()
    assert passes == [1, 1, 1]  # round 1 before, round 1 after = round 2 before, round 2 after
    assert record["rounds"][1]["fa_before"] == record["rounds"][0]["fa_after"]
    assert record["rounds"][1]["fa_before"] is not record["rounds"][0]["fa_after"]
