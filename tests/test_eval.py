"""kws-eval: stream builder ground truth, streaming metrics, FA/h and FRR, calibration."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kws.edge.errors import KwsError
from kws.edge.manifest import load_manifest
from kws.evaluation.eval_cli import main as eval_main
from audio_fixtures import keyword_stream, word_audio
from kws.edge.audio import write_wav
from kws.evaluation.stream import (KWS_FORMAT, TUTORIAL_FORMAT, Event, build_stream, load_clips, load_noise,
                                   pink_noise, read_ground_truth, read_labels, speech_bounds, write_labels)
from kws.evaluation.streaming_metrics import Detection, keyword_free_seconds, streaming_report

SR = 16000
WORDS = ("up", "down", "beep")
STREAM_HOURS = "0.05"  # 3 minutes


@pytest.fixture(scope="module")
def dist(converted_run, tmp_path_factory) -> Path:
    """A private copy of the converted fixture run (calibration may rewrite its manifest)."""
    out = tmp_path_factory.mktemp("dist") / "dist"
    shutil.copytree(converted_run, out)
    return out


def test_stream_ground_truth_is_where_the_speech_is(tiny_dataset):
    clips = load_clips(tiny_dataset, WORDS, SR)
    assert set(clips) == {*WORDS, "_unknown_"}  # "other" becomes unknown, noise folder skipped
    noise = [pink_noise(SR * 10, np.random.default_rng(0))]
    audio, events = build_stream(clips, noise, 120.0, (20.0, 20.0), SR, seed=1)
    assert len(audio) == 120 * SR and len(events) >= 15
    assert {e.label for e in events} == {*WORDS, "_unknown_"}
    for a, b in zip(events, events[1:]):
        assert b.start_s - a.end_s >= 2.0
    bed_rms = np.sqrt(np.mean(audio[: int(events[0].start_s * SR)] ** 2))
    for e in events:
        inside = audio[int(e.start_s * SR):int(e.end_s * SR)]
        before = audio[int((e.start_s - 0.5) * SR):int((e.start_s - 0.1) * SR)]
        after = audio[int((e.end_s + 0.1) * SR):int((e.end_s + 0.5) * SR)]
        level = 20 * np.log10(np.sqrt(np.mean(inside ** 2)) / bed_rms)
        assert 15 < level < 25, (e, level)  # 20 dB SNR measured over the speech
        for quiet in (before, after):
            assert 20 * np.log10(np.sqrt(np.mean(quiet ** 2)) / bed_rms) < 3


def test_stream_clips_pass_by_what_kws_train_passes_by(tmp_path):
    """kws-eval --keywords read a hidden folder (.Trashes) as other words, tried every ._ companion
    a Mac leaves beside a clip and said 'skipped' for each; like kws-train it now passes both by, and
    reads no '_' folder but _unknown_ (the caller names those holding audio)."""
    rng = np.random.default_rng(4)
    for folder in ("up", "_unknown_", ".Trashes", "_silence_"):
        write_wav(tmp_path / "words" / folder / "a.wav", rng.normal(0, 0.1, SR).astype(np.float32), SR)
    (tmp_path / "words" / "up" / "._a.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    (tmp_path / "words" / "__MACOSX" / "up").mkdir(parents=True)
    (tmp_path / "words" / "__MACOSX" / "up" / "._a.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    skipped = []
    clips = load_clips(tmp_path / "words", ["up"], SR, on_skip=lambda path, why: skipped.append(path))
    assert skipped == [] and {label: len(c) for label, c in clips.items()} == {"up": 1, "_unknown_": 1}
    write_wav(tmp_path / "noise" / "n.wav", rng.normal(0, 0.1, SR).astype(np.float32), SR)
    (tmp_path / "noise" / "._n.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    assert len(load_noise(tmp_path / "noise", SR, rng, on_skip=lambda path, why: skipped.append(path))) == 1
    assert skipped == []
    # keyword folders holding only what is passed by (or no audio) were called missing
    (tmp_path / "hidden_only" / "up").mkdir(parents=True)
    (tmp_path / "hidden_only" / "up" / "._a.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    (tmp_path / "hidden_only" / "up" / "notes.txt").write_text("take 2 was best")
    with pytest.raises(KwsError, match=r"hidden_only: no readable, non-silent audio in its keyword folders \(up/;"):
        load_clips(tmp_path / "hidden_only", ["up", "down"], SR)


def test_speech_bounds_of_a_burst():
    clip = np.zeros(SR, np.float32)
    clip[4000:9000] = np.sin(np.arange(5000) * 0.3)
    assert speech_bounds(clip, SR) == (4000, 9120)  # 10 ms frames


def test_labels_csv_round_trip(tmp_path):
    events = [Event("up", 1.25, 1.75), Event("_unknown_", 4.0, 4.5)]
    write_labels(tmp_path / "l.csv", events)
    assert read_labels(tmp_path / "l.csv") == events


def test_the_tutorials_label_time_ms_files_are_read_in_milliseconds(tmp_path):
    """generate_streaming_test_wav.py writes '%s, %f' of label and clip start in ms, no header."""
    path = tmp_path / "streaming_test_labels.txt"
    path.write_text("up, 1500.000000\n_unknown_, 5250.500000\ndown, 9000.000000\n")
    truth = read_ground_truth(path, clip_s=1.0)
    assert truth.format == TUTORIAL_FORMAT
    assert truth.events == [Event("up", 1.5, 2.5), Event("_unknown_", 5.2505, 6.2505), Event("down", 9.0, 10.0)]
    (tmp_path / "with_header.csv").write_text("label,time_ms\nup,250\n")
    assert read_ground_truth(tmp_path / "with_header.csv", clip_s=0.5).events == [Event("up", 0.25, 0.75)]
    (tmp_path / "ours.csv").write_text("up,1.5,2.0\n")  # no header, three columns: kws's seconds
    assert read_ground_truth(tmp_path / "ours.csv") == type(truth)([Event("up", 1.5, 2.0)], KWS_FORMAT)
    (tmp_path / "odd.csv").write_text("label,when\nup,1\n")
    with pytest.raises(KwsError, match="unknown header 'label,when'"):
        read_ground_truth(tmp_path / "odd.csv")


def test_a_spreadsheets_labels_file_reads_and_a_row_without_a_label_is_an_error(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark; a row with an empty label was dropped, so
    its word then counted as a false accept."""
    path = tmp_path / "excel.csv"
    path.write_bytes("label,start_s,end_s\r\nup,1.5,2.0\r\n".encode("utf-8-sig"))
    assert read_ground_truth(path).events == [Event("up", 1.5, 2.0)]
    path.write_text("label,start_s,end_s\nup,1.5,2.0\n,3,3.5\n")
    with pytest.raises(KwsError, match=r"excel.csv:3: no label in ',3,3.5'"):
        read_ground_truth(path)
    path.write_text("label,start_s,end_s\n" + "x" * 200_000 + ",1,2\n")  # over the csv module's field limit
    with pytest.raises(KwsError, match="cannot read labels"):
        read_ground_truth(path)


def test_only_keywords_that_overlap_each_other_are_refused():
    from kws.evaluation.stream import check_keywords_apart

    check_keywords_apart([Event("up", 1.0, 1.5), Event("down", 1.5, 2.0), Event("_unknown_", 1.2, 1.8),
                          Event("_silence_", 0.0, 3.0), Event("up", 4.0, 4.0), Event("up", 4.5, 4.5)], "l.csv")
    for events, first in (([Event("up", 1.0, 3.0), Event("down", 1.5, 2.0), Event("up", 2.5, 2.8)],
                           "keyword down at 1.5..2 s overlaps up at 1..3 s (and 1 more overlaps)"),
                          ([Event("up", 4.0, 4.0), Event("up", 4.0, 4.0)],
                           "keyword up at 4..4 s overlaps up at 4..4 s:")):
        with pytest.raises(KwsError, match=re.escape(f"l.csv: {first}")):
            check_keywords_apart(events, "l.csv")


def test_keyword_free_time_never_exceeds_the_stream():
    """Labels far past the stream's end (ms read as s) once gave 'keyword-free' time larger than it."""
    assert keyword_free_seconds([Event("up", 5000.0, 5001.0)], 60.0) == pytest.approx(60.0)
    assert keyword_free_seconds([Event("up", 58.0, 59.0)], 60.0) == pytest.approx(60.0 - 2.5)


def test_eval_on_a_tutorial_stream_reads_ms_labels_and_refuses_labels_outside_it(dist, tmp_path):
    words = ("up", "down", "beep", "up", "down", "beep")
    audio, truth = keyword_stream(words, np.random.default_rng(5))
    write_wav(tmp_path / "stream.wav", audio, SR)
    # the tutorial's file: the start of each 1 s clip in ms (keyword_stream gives each clip's end)
    (tmp_path / "labels.txt").write_text("".join(f"{w}, {(end - 1.0) * 1000:f}\n" for w, end in truth))
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(tmp_path / "stream.wav"),
                                         "--labels", str(tmp_path / "labels.txt"), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["labels"]["format"] == TUTORIAL_FORMAT and report["labels"]["events"] == len(words)
    at = report["at_manifest_thresholds"]
    duration_h = len(audio) / SR / 3600
    assert at["keywords"] == len(words) and 0 < at["keyword_free_hours"] < duration_h
    assert min(r["frr"] for r in report["curve"]) < 0.5  # the words are found where the labels put them
    text = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(tmp_path / "stream.wav"),
                                          "--labels", str(tmp_path / "labels.txt")])
    assert f"labels: {tmp_path / 'labels.txt'}, read as {TUTORIAL_FORMAT}" in text.output
    # the same times given as kws's seconds lie far past the stream's end: refused, not scored
    (tmp_path / "seconds.csv").write_text("label,start_s,end_s\n" + "".join(
        f"{w},{(end - 1.0) * 1000:f},{end * 1000:f}\n" for w, end in truth))
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(tmp_path / "stream.wav"),
                                         "--labels", str(tmp_path / "seconds.csv")])
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert f"6 of 6 labels lie outside the stream's {len(audio) / SR:.1f} s" in res.output
    # a word starting after the stream's end (within the end's slack) or given twice could only be
    # missed: the false-reject rate came out 1/7 too high without a word
    seconds = len(audio) / SR
    for name, row, said in (("late", f"up,{seconds + 0.2:.3f},{seconds + 0.6:.3f}", "1 of 7 labels lie outside"),
                            ("twice", f"{words[0]},{truth[0][1] - 0.8:.3f},{truth[0][1] - 0.2:.3f}",
                             f"keyword {words[0]} at {truth[0][1] - 0.8:g}..{truth[0][1] - 0.2:g} s overlaps")):
        (tmp_path / f"{name}.csv").write_text("label,start_s,end_s\n" + "".join(
            f"{w},{end - 0.8:.3f},{end - 0.2:.3f}\n" for w, end in truth) + row + "\n")
        res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(tmp_path / "stream.wav"),
                                             "--labels", str(tmp_path / f"{name}.csv")])
        assert res.exit_code == 1 and res.output.count("\n") == 1, res.output
        assert said in res.output, res.output


def test_eval_scores_the_tflite_file_named_not_the_manifests_default(dist, tmp_path, monkeypatch):
    """kws-eval -m dist/model_float.tflite measures the float model (as kws-listen runs it), on the
    stream and on --negatives alike, and its report names that file."""
    import kws.evaluation.scoring as scoring

    opened = []
    real = scoring.Recognizer.from_manifest

    def spy(*args, **kwargs):
        rec = real(*args, **kwargs)
        opened.append(rec.model.path.name)
        return rec

    monkeypatch.setattr(scoring.Recognizer, "from_manifest", spy)
    audio, truth = keyword_stream(("up", "down"), np.random.default_rng(3))
    write_wav(tmp_path / "stream.wav", audio, SR)
    (tmp_path / "labels.csv").write_text("".join(f"{w},{end - 1.0:f},{end:f}\n" for w, end in truth))
    write_wav(tmp_path / "quiet.wav", np.random.default_rng(4).normal(0, 0.003, 2 * SR).astype(np.float32), SR)
    res = CliRunner().invoke(eval_main, ["-m", str(dist / "model_float.tflite"), "--stream",
                                         str(tmp_path / "stream.wav"), "--labels", str(tmp_path / "labels.csv"),
                                         "--negatives", str(tmp_path / "quiet.wav"), "--json"])
    assert res.exit_code == 0, res.output
    assert opened == ["model_float.tflite", "model_float.tflite"]  # the stream, then the negatives file
    assert json.loads(res.stdout)["model"] == str(dist / "model_float.tflite")


def test_calibration_records_the_model_file_it_was_chosen_on(converted_run, tmp_path):
    """kws-eval --calibrate -m dist/model_float.tflite chose the thresholds on the float model's scores and
    wrote them into the manifest int8 shares, without saying so: its calibration section and the
    calibrated line now name the model file, and a folder given names the default int8 model."""
    dist = tmp_path / "dist"
    shutil.copytree(converted_run, dist)
    audio, truth = keyword_stream(("up", "down", "beep"), np.random.default_rng(3), gap_s=2.5)
    write_wav(tmp_path / "stream.wav", audio, SR)
    (tmp_path / "labels.csv").write_text("".join(f"{w},{end - 1.0:f},{end:f}\n" for w, end in truth))
    stream = ["--stream", str(tmp_path / "stream.wav"), "--labels", str(tmp_path / "labels.csv"),
              "--calibrate", "--target-fa-per-hour", "100"]
    for given, file in ((dist / "model_float.tflite", "model_float.tflite"), (dist, "model_int8.tflite")):
        res = CliRunner().invoke(eval_main, ["-m", str(given)] + stream)
        assert res.exit_code == 0, res.output
        assert f"(target 100.0), chosen on {file}'s scores; written to {dist / 'manifest.json'}" in res.stdout
        assert load_manifest(dist).calibration["model_file"] == file


def test_thresholds_calibrated_on_another_model_file_are_said_by_eval_and_listen(converted_run, tmp_path):
    """Thresholds kws-eval --calibrate chose on model_float.tflite's scores were run on int8 by
    kws-listen and kws-eval without a word: both now say it in one warning line naming both files,
    and nothing where the model that runs is the one they were chosen on (or --threshold replaces them)."""
    from kws.edge.listen_cli import main as listen_main
    from kws.edge.manifest import save_manifest

    dist = tmp_path / "dist"
    shutil.copytree(converted_run, dist)
    manifest = load_manifest(dist / "manifest.json")
    save_manifest(manifest.with_updates(calibration={"model_file": "model_float.tflite"}), dist / "manifest.json")
    audio, truth = keyword_stream(("up",), np.random.default_rng(3), gap_s=1.0)
    write_wav(tmp_path / "stream.wav", audio, SR)
    (tmp_path / "labels.csv").write_text("".join(f"{w},{end - 1.0:f},{end:f}\n" for w, end in truth))
    stream = ["--stream", str(tmp_path / "stream.wav"), "--labels", str(tmp_path / "labels.csv")]
    warning = (f"warning: {dist / 'manifest.json'}: its thresholds were calibrated on model_float.tflite's "
               "scores and model_int8.tflite runs with them: its scores are distributed differently, so they "
               "may not hold; kws-eval --calibrate on model_int8.tflite chooses its own")
    runs = {"kws-eval": (eval_main, stream), "kws-listen": (listen_main, ["-q", "--wav", str(tmp_path / "stream.wav")])}
    for prog, (main, args) in runs.items():
        said = CliRunner().invoke(main, ["-m", str(dist)] + args)
        assert said.exit_code == 0, said.output
        assert [l for l in said.stderr.splitlines() if "calibrated on" in l] == [f"{prog}: {warning}"]
        quiet = CliRunner().invoke(main, ["-m", str(dist / "model_float.tflite")] + args)
        assert quiet.exit_code == 0, quiet.output
        assert "calibrated on" not in quiet.stderr
    replaced = CliRunner().invoke(listen_main, ["-m", str(dist), "--threshold", "0.5"] + runs["kws-listen"][1])
    assert replaced.exit_code == 0 and "calibrated on" not in replaced.stderr


def test_eval_names_what_it_left_out_and_what_it_cannot_rate(dist, tiny_dataset, tmp_path):
    """Unreadable keyword/noise files and labels the model lacks are said in one line each; a stream
    with no keyword-free time has no false-accept rate, said in words (not 'None'). Recordings at a
    rate that leaves the model's top mel bands empty are said once per run, as kws-listen says it."""
    keywords = tmp_path / "kw"
    for word in ("up", "down"):
        shutil.copytree(tiny_dataset / word, keywords / word)
    (keywords / "up" / "broken.wav").write_bytes(b"RIFF junk")
    rng = np.random.default_rng(3)
    for name, rate in (("phone0", 8000), ("phone1", 8000), ("radio", 22050)):  # 22.05 kHz covers 7600 Hz
        write_wav(keywords / "up" / f"{name}.wav", word_audio("up", rng, sample_rate=rate), rate)
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "hum.wav").write_bytes(b"not audio at all")
    write_wav(noise / "pink.wav", pink_noise(3 * SR, np.random.default_rng(1)), SR)
    write_wav(noise / "street.wav", pink_noise(3 * 8000, np.random.default_rng(4)), 8000)
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--keywords", str(keywords), "--noise", str(noise),
                                         "--hours", "0.01"])
    assert res.exit_code == 0, res.output
    for bad in (keywords / "up" / "broken.wav", noise / "hum.wav"):
        assert f"kws-eval: skipped {bad}: not a readable audio file" in res.output
    assert [line for line in res.output.splitlines() if "warning" in line] == [
        f"kws-eval: warning: {keywords / 'up' / 'phone0.wav'} (first of 3 files below 15200 Hz): 8000 Hz audio "
        "holds nothing above 4000 Hz, and the model hears up to 7600 Hz: expect missed words and false detections "
        "(record at 16000 Hz)"]

    audio, _ = keyword_stream(("up", "down"), np.random.default_rng(2), sample_rate=8000)  # a phone call's rate
    write_wav(tmp_path / "s.wav", audio, 8000)
    write_wav(tmp_path / "quiet.wav", np.zeros(2 * 11025, np.float32), 11025)  # nothing above 5512 Hz
    seconds = len(audio) / 8000
    ends = np.arange(1.0, seconds + 2.0, 2.0)  # every word's +-1.5 s span overlaps the next: no free time
    (tmp_path / "all.csv").write_text("label,start_s,end_s\n" + "".join(
        f"up,{max(0.0, end - 0.5):.3f},{min(end, seconds):.3f}\n" for end in ends) + "banana,0.2,0.6\n")
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(tmp_path / "s.wav"),
                                         "--labels", str(tmp_path / "all.csv"),
                                         "--negatives", str(tmp_path / "quiet.wav")])
    assert res.exit_code == 0, res.output
    assert [line for line in res.output.splitlines() if "Hz audio" in line] == [
        f"kws-eval: warning: {tmp_path / 's.wav'} (first of 2 files below 15200 Hz): 8000 Hz audio holds nothing "
        "above 4000 Hz, and the model hears up to 7600 Hz: expect missed words and false detections (record at "
        "16000 Hz)"]
    assert "'banana' is not a label of this model" in res.output
    assert f"{len(ends)} keywords, 1 unknown words" in res.output  # banana is not taken for a keyword
    assert "no keyword-free audio to rate them per hour" in res.output and "None" not in res.output


def test_streaming_report_without_keywords_has_no_tutorial_percentages():
    """The TF tutorial's percentages are of the keywords in the stream: with none they were 0.0, as
    if the model had matched none and fired falsely never, though it fired once."""
    events = [Event("_unknown_", 2.0, 2.5), Event("_silence_", 5.0, 6.0)]
    rep = streaming_report([Detection(2.7, "up", 0.9)], events, 60.0, ["up", "down"])
    assert (rep["keywords"], rep["false_accepts"], rep["frr"]) == (0, 1, None)
    assert rep["tutorial"] == {"matched_pct": None, "correctly_matched_pct": None, "wrongly_matched_pct": None,
                               "false_positive_pct": None}


def test_streaming_report_by_hand():
    """A _silence_ row of a --labels file is counted apart from the unknown words (kws-eval's summary
    called it one) and, like them, changes neither the keyword-free time nor FA/h nor FRR."""
    events = [Event("up", 2.0, 2.5), Event("down", 6.0, 6.5), Event("up", 10.0, 10.4), Event("_unknown_", 14.0, 14.5),
              Event("_silence_", 20.0, 22.0)]
    dets = [Detection(2.7, "up", 0.9),       # correct, latency 0.2
            Detection(6.9, "up", 0.8),       # wrongly matched (down)
            Detection(14.6, "down", 0.8),    # false accept on an unknown word
            Detection(30.0, "_unknown_", 0.9)]  # background labels ignored
    rep = streaming_report(dets, events, 3600.0, ["up", "down"])
    assert rep["keywords"] == 3 and rep["false_accepts"] == 2  # the wrong match and the unknown word's
    assert (rep["unknown_word_events"], rep["silence_events"], rep["non_keyword_events"]) == (1, 1, 2)
    assert rep["tutorial"] == {"matched_pct": pytest.approx(66.667), "correctly_matched_pct": pytest.approx(33.333),
                               "wrongly_matched_pct": pytest.approx(33.333), "false_positive_pct": pytest.approx(33.333)}
    free_h = (3600 - 3 * 3.0) / 3600
    assert keyword_free_seconds(events, 3600.0) == pytest.approx(3600 - 9.0)
    assert rep["fa_per_hour"] == pytest.approx(2 / free_h, abs=1e-3)
    assert rep["frr"] == pytest.approx(2 / 3, abs=1e-5)
    assert rep["latency_s"]["median"] == pytest.approx(0.2)
    assert rep["per_label"]["up"] == {"keywords": 2, "detected": 1, "frr": 0.5, "false_accepts": 1,
                                      "fa_per_hour": pytest.approx(1 / free_h, abs=1e-3)}


def test_eval_reports_and_calibration_meets_target(dist, tiny_dataset, tmp_path):
    runner = CliRunner()
    out = tmp_path / "rep"
    common = ["-m", str(dist), "--keywords", str(tiny_dataset), "--hours", STREAM_HOURS, "--snr", "10:25",
              "--seed", "3"]
    res = runner.invoke(eval_main, common + ["--report", str(out), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (out / "fa_frr_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "eval.json").read_text())["curve"] == report["curve"]
    events = read_labels(out / "stream_labels.csv")
    curve = report["curve"]
    # FRR never falls and FA/h never rises as the threshold goes up
    assert all(a["frr"] <= b["frr"] + 1e-9 for a, b in zip(curve, curve[1:]))
    assert all(a["fa_per_hour"] >= b["fa_per_hour"] - 1e-9 for a, b in zip(curve, curve[1:]))
    # the fixture model (8 epochs) scores its words around 0.5 in a stream: many found at 0.3, few at 0.99
    assert curve[0]["frr"] < 0.65 and curve[-1]["frr"] > 0.8 and curve[-1]["frr"] - curve[0]["frr"] > 0.3
    at = report["at_manifest_thresholds"]
    assert at["keywords"] == sum(e.label in WORDS for e in events) >= 15
    assert 0 < at["keyword_free_hours"] < 0.05
    assert at["latency_s"]["median"] is not None and -0.5 < at["latency_s"]["median"] < 1.5

    target = 1.0
    manifest_file = dist / "manifest.json"
    before = manifest_file.read_text()
    res = runner.invoke(eval_main, common + ["--calibrate", "--target-fa-per-hour", str(target), "--json"])
    assert res.exit_code == 0, res.output
    cal = json.loads(res.stdout)["calibration"]
    assert (dist / "manifest.json.bak").read_text() == before
    m = load_manifest(dist)
    assert m.thresholds == cal["thresholds"] and set(m.thresholds) == set(WORDS)
    assert m.smoothing.average_window_ms == cal["average_window_ms"]
    assert m.calibration["target"] == target and m.calibration["fa_per_hour"] <= target
    assert m.calibration["hours"] == pytest.approx(0.05) and m.calibration["date"]
    assert cal["frr"] <= min(r["frr"] for r in curve if r["fa_per_hour"] <= target) + 1e-9
    # 1 FA/h on 0.05 h means none seen: the best any thresholds could do with none on this stream
    # bounds what calibration found (one word of slack: the bound leaves out the smoother's suppression)
    best = json.loads(res.stdout)["best_possible"]
    assert set(best["per_label"]) == set(WORDS)
    assert 1 - cal["frr"] - 1 / at["keywords"] - 1e-9 <= best["recall_at_zero_fa"] <= 1
    # a rerun reads the calibrated manifest and meets the target on the same stream
    res = runner.invoke(eval_main, common + ["--json"])
    again = json.loads(res.stdout)["at_manifest_thresholds"]
    assert again["fa_per_hour"] <= target
    assert again["frr"] == pytest.approx(cal["frr"])
    # the given-stream path (--stream + --labels) agrees with the built one
    res = runner.invoke(eval_main, common + ["--report", str(out), "--save-stream"])
    res = runner.invoke(eval_main, ["-m", str(dist), "--stream", str(out / "stream.wav"),
                                    "--labels", str(out / "stream_labels.csv"), "--json"])
    assert res.exit_code == 0, res.output
    given = json.loads(res.stdout)["at_manifest_thresholds"]
    assert given["keywords"] == again["keywords"]
    assert abs(given["frr"] - again["frr"]) <= 0.1  # the WAV is 16-bit: tiny score changes only
    # one threshold for every keyword: the manifest says which rule chose it, and it meets the target
    res = runner.invoke(eval_main, common + ["--calibrate", "--target-fa-per-hour", str(target), "--shared-threshold"])
    assert res.exit_code == 0, res.output
    assert "calibrated (one threshold shared by the keywords): thresholds" in res.output
    m = load_manifest(dist)
    assert len(set(m.thresholds.values())) == 1 and set(m.thresholds) == set(WORDS)
    assert m.calibration["shared_threshold"] is True and m.calibration["fa_per_hour"] <= target
    res = runner.invoke(eval_main, common + ["--json"])
    assert json.loads(res.stdout)["at_manifest_thresholds"]["fa_per_hour"] <= target


def test_eval_errors_are_one_line(dist, tmp_path):
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", "x.wav"])
    assert res.exit_code == 2 and "--stream needs --labels" in res.output
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--keywords", str(tmp_path)])
    assert res.exit_code == 1 and "no folder named after a keyword" in res.output
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--keywords", str(tmp_path), "--snr", "20:5"])
    assert res.exit_code == 2 and "LOW <= HIGH" in res.output
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--keywords", str(tmp_path), "--shared-threshold"])
    assert res.exit_code == 2 and "--shared-threshold is an option of --calibrate" in res.output
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--keywords", str(tmp_path), "--no-tail"])
    assert res.exit_code == 2 and "--no-tail is an option of --calibrate" in res.output
    # a target without --calibrate used to be ignored: the report was at the manifest's thresholds
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--keywords", str(tmp_path), "--target-fa-per-hour", "1"])
    assert res.exit_code == 2 and "--target-fa-per-hour is an option of --calibrate" in res.output
    # a stream is built (--keywords, --noise, --hours, --snr, --seed, --save-stream) or read
    # (--stream --labels); the other side's options used to be ignored without a word
    read = ["-m", str(dist), "--stream", "s.wav", "--labels", "s.csv"]
    res = CliRunner().invoke(eval_main, read + ["--keywords", str(tmp_path), "--hours", "2", "--save-stream"])
    assert res.exit_code == 2
    assert "--hours, --keywords, --save-stream build a stream; --stream reads one: give one or the other" in res.output
    res = CliRunner().invoke(eval_main, read + ["--seed", "0"])  # the default, typed: still not used
    assert res.exit_code == 2 and "--seed builds a stream; --stream reads one" in res.output
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--keywords", str(tmp_path), "--labels", "s.csv"])
    assert res.exit_code == 2 and "--labels describes a --stream WAV" in res.output


def test_clip_stream_holds_every_clip_once_at_its_snr():
    from kws.evaluation.stream import build_clip_stream

    rng = np.random.default_rng(4)
    clips = {"up": [np.concatenate([np.zeros(4000), np.sin(np.arange(8000) * 0.3) * a, np.zeros(4000)])
                    .astype(np.float32) for a in (0.1, 0.5, 0.9)],
             "down": [np.concatenate([np.zeros(2000), np.sin(np.arange(6000) * 0.2) * 0.4, np.zeros(6000)])
                      .astype(np.float32)]}
    noise = [rng.normal(0, 1, SR * 3).astype(np.float32)]
    audio, events = build_clip_stream(clips, noise, (10.0, 10.0), SR, seed=1)
    assert sorted(e.label for e in events) == ["down", "up", "up", "up"]
    assert all(b.start_s - a.end_s >= 2.0 for a, b in zip(events, events[1:]))  # MIN_GAP_S apart at least
    assert len(audio) / SR <= sum(len(c) for cs in clips.values() for c in cs) / SR + 5 * 6.0
    for e in events:  # speech 10 dB above the noise bed: RMS ratio sqrt(1 + 10) over the event
        seg = audio[int(e.start_s * SR) + 200:int(e.end_s * SR) - 200]
        bed = audio[int(e.start_s * SR) - 1800:int(e.start_s * SR) - 200]
        ratio = np.sqrt(np.mean(seg.astype(np.float64) ** 2) / np.mean(bed.astype(np.float64) ** 2))
        assert ratio == pytest.approx(np.sqrt(11.0), rel=0.15)
    again, same = build_clip_stream(clips, noise, (10.0, 10.0), SR, seed=1)
    assert np.array_equal(again, audio) and same == events


def test_a_word_that_would_clip_is_turned_down_alone_not_the_whole_stream():
    """One loud, peaky word, or a slam in the noise, must not take the rest of the stream below the
    level it was built for."""
    from kws.evaluation.stream import NOISE_RMS, PEAK_LIMIT, build_clip_stream

    rng = np.random.default_rng(3)
    spiky = np.concatenate([np.zeros(4000), np.sin(np.arange(8000) * 0.3) * 0.05, np.zeros(4000)]).astype(np.float32)
    spiky[8000] = 1.0  # crest factor ~30 dB: at 20 dB SNR this sample alone would pass full scale
    plain = [np.concatenate([np.zeros(4000), np.sin(np.arange(8000) * 0.2) * 0.3, np.zeros(4000)]).astype(np.float32)
             for _ in range(3)]
    noise = [rng.normal(0, 1, SR * 3).astype(np.float32)]
    noise[0][SR] = 80.0  # a slam in the noise recording: 2.4 at the bed's level, past full scale alone
    audio, events = build_clip_stream({"up": [spiky], "down": plain}, noise, (20.0, 20.0), SR, seed=2)
    assert np.max(np.abs(audio)) <= PEAK_LIMIT + 1e-6
    gaps = np.concatenate([audio[int(a.end_s * SR) + 1600:int(b.start_s * SR) - 1600]
                           for a, b in zip(events, events[1:])])
    assert np.sqrt(np.mean(gaps.astype(np.float64) ** 2)) == pytest.approx(NOISE_RMS, rel=0.05)
    for e in events:
        seg = audio[int(e.start_s * SR) + 200:int(e.end_s * SR) - 200].astype(np.float64)
        bed = audio[int(e.start_s * SR) - 1800:int(e.start_s * SR) - 200].astype(np.float64)
        snr = 10 * np.log10(np.mean(seg ** 2) / np.mean(bed ** 2))
        if e.label == "down":
            assert snr == pytest.approx(20.0, abs=1.0)  # untouched by the loud word
        else:
            assert snr < 19.0  # the loud word itself was turned down to fit


def test_offline_smoothing_fires_where_the_recognizer_does_at_the_edge_of_the_refractory_time():
    """kws-eval re-runs the smoother over the per-hop times the recognizer kept in seconds; the hop at
    65.6 s is exactly 1000 ms (the suppression time) after a detection at 64.6 s. kws-listen's
    smoother got 64600.0 and 65600.0 ms and waits one more hop; 65.6 * 1000 - 64.6 * 1000 is a hair
    over 1000, which fired a second detection 40 ms early offline."""
    from kws.edge.frontend import FrontendConfig
    from kws.edge.manifest import Manifest, SmoothingConfig
    from kws.edge.recognizer import hop_time_ms
    from kws.edge.smoothing import PosteriorSmoother
    from kws.evaluation.scoring import smooth

    labels = ("_silence_", "_unknown_", "yes")
    fe = FrontendConfig()
    hop = int(fe.sample_rate * 0.040)
    manifest = Manifest(labels=labels, frontend=fe, smoothing=SmoothingConfig(hop_ms=40.0), thresholds={"yes": 0.5})
    n = 1700
    yes = np.zeros(n)
    yes[1608:1618] = yes[1632:1642] = 1.0  # two words 0.96 s apart, each 0.4 s of hops
    scores = np.stack([1 - yes, np.zeros(n), yes], axis=1)
    live_ms = [hop_time_ms((k + 1) * hop, fe.sample_rate) for k in range(n)]
    times_s = np.array(live_ms) / 1000.0  # as Recognizer.pop_scores keeps them
    live = PosteriorSmoother(labels, manifest.smoothing, manifest.thresholds)
    fired = [t / 1000.0 for t, s in zip(live_ms, scores) if live.update(s, t).is_detection]
    assert fired == [64.6, 65.64]
    assert [d.time_s for d in smooth(times_s, scores, manifest)] == pytest.approx(fired, abs=1e-9)


def test_two_words_close_together_are_both_found_by_their_own_detections():
    """Each word fires 0.6 s after it ends. Pairing each detection with the nearest word gave the
    first detection the second word (0.4 s away) and left the second one unmatched or on the wrong
    word: a hit and a false accept, or two wrong matches, for two words both found."""
    same = [Event("up", 9.5, 10.0), Event("up", 10.5, 11.0)]
    rep = streaming_report([Detection(10.6, "up", 0.9), Detection(12.4, "up", 0.9)], same, 60.0, ["up"])
    assert (rep["per_label"]["up"]["detected"], rep["false_accepts"]) == (2, 0)
    assert rep["latency_s"]["median"] == pytest.approx(1.0)  # 0.6 and 1.4
    other = [Event("up", 9.5, 10.0), Event("down", 10.5, 11.0)]
    rep = streaming_report([Detection(10.6, "up", 0.9), Detection(11.3, "down", 0.9)], other, 60.0, ["up", "down"])
    assert rep["tutorial"]["correctly_matched_pct"] == pytest.approx(100.0)
    assert rep["tutorial"]["wrongly_matched_pct"] == 0.0 and rep["false_accepts"] == 0
    # a word taken for another is the tutorial's wrong match, not its false positive
    rep = streaming_report([Detection(10.3, "down", 0.9)], [Event("up", 9.5, 10.0)], 60.0, ["up", "down"])
    assert (rep["tutorial"]["wrongly_matched_pct"], rep["tutorial"]["false_positive_pct"]) == (pytest.approx(100.0), 0)
    # a missed word just before a found one: the detection is the found word's, 0.25 s after its end
    rep = streaming_report([Detection(11.45, "up", 0.9)], [Event("up", 9.5, 10.0), Event("up", 10.7, 11.2)],
                           60.0, ["up"])
    assert rep["latency_s"]["median"] == pytest.approx(0.25) and rep["per_label"]["up"]["detected"] == 1


def test_a_keyword_fired_on_another_spoken_keyword_is_one_false_accept_overall_and_for_its_label():
    """'down' fired on a spoken 'up' is one false 'down' trigger whether or not 'up' fired too. Overall
    it counted only when 'up' fired as well (the 'down' then unmatched), not when it took the 'up'
    word as a wrong match, while the per-label count (what calibration sums) counted it both times:
    the per-label false accepts did not add up to the reported one."""
    up = [Event("up", 9.5, 10.0)]
    for dets in ([Detection(10.3, "down", 0.9)], [Detection(10.3, "up", 0.9), Detection(10.5, "down", 0.9)]):
        rep = streaming_report(dets, up, 60.0, ["up", "down"])
        assert rep["false_accepts"] == 1 == rep["per_label"]["down"]["false_accepts"]
        assert rep["per_label"]["up"]["false_accepts"] == 0
        assert rep["fa_per_hour"] == rep["per_label"]["down"]["fa_per_hour"] == pytest.approx(3600 / 57.0, abs=1e-3)


def test_false_accepts_inside_keyword_spans_are_counted_and_told_apart():
    """A second 'up' 1.4 s after the one that found the word (the smoother's refractory time over) is a
    second trigger: a false accept, though its time lies in the word's span, outside keyword-free time.
    The report says how many false accepts are such repeats, how many lie on other keywords, and how
    many in the keyword-free time the rate is per hour of."""
    events = [Event("up", 9.5, 10.0), Event("down", 19.5, 20.0), Event("_unknown_", 29.5, 30.0)]
    dets = [Detection(10.3, "up", 0.9),     # finds the 'up'
            Detection(11.4, "up", 0.9),     # fires again on it: a repeat
            Detection(10.6, "down", 0.9),   # 'down' on the found 'up': on another keyword
            Detection(20.3, "up", 0.9),     # takes the 'down' word (wrong match): on another keyword
            Detection(30.2, "down", 0.9),   # on the unknown word: keyword-free time
            Detection(100.0, "up", 0.9)]    # on noise: keyword-free time
    rep = streaming_report(dets, events, 3600.0, ["up", "down"])
    assert rep["false_accepts"] == 5
    assert rep["false_accept_kinds"] == {"in_keyword_free_time": 2, "repeats": 1, "on_other_keywords": 2}
    assert rep["fa_per_hour"] == pytest.approx(5 * 3600 / (3600 - 2 * 3.0), abs=1e-3)
    assert {l: r["false_accepts"] for l, r in rep["per_label"].items()} == {"up": 3, "down": 2}


def test_detections_pair_with_as_many_words_as_any_assignment_could():
    """Brute force over small random streams: no other pairing (each detection with at most one word
    within 1.5 s, each word once) pairs more."""
    import itertools

    from kws.evaluation.streaming_metrics import pair_in_time

    rng = np.random.default_rng(5)
    for _ in range(300):
        ends = np.sort(rng.uniform(0, 8, rng.integers(0, 6)))
        dets = np.sort(rng.uniform(0, 9, rng.integers(0, 6)))
        pairs = pair_in_time(dets, ends, 1.5)
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
        assert all(abs(dets[a] - ends[b]) <= 1.5 for a, b in pairs)
        most = 0
        for k in range(min(len(dets), len(ends)), 0, -1):
            if any(all(abs(dets[a] - ends[b]) <= 1.5 for a, b in zip(ds, ws))
                   for ds in itertools.combinations(range(len(dets)), k)
                   for ws in itertools.permutations(range(len(ends)), k)):
                most = k
                break
        assert len(pairs) == most


def test_eval_of_an_unconverted_run_gives_the_kws_convert_command(tmp_path):
    """kws-eval said 'no manifest.json ... run kws-convert first' of a run folder; kws-listen says the
    command. Both now say it, whether given the run folder or its model.keras."""
    run = tmp_path / "r3"
    run.mkdir()
    (run / "model.keras").write_bytes(b"PK")
    for given in (run, run / "model.keras"):
        res = CliRunner().invoke(eval_main, ["-m", str(given), "--keywords", str(tmp_path)])
        assert res.exit_code == 1, res.output
        assert res.output == (f"Error: {run}: a training run without converted models; "
                              f"run: kws-convert -m {run}\n")


def test_eval_names_the_model_it_took_and_prints_rates_at_one_precision(converted_run, tmp_path, monkeypatch):
    """Without -m kws-eval took the newest model without a word, and its text report named none (only
    eval.json did). It now names the model on stderr as kws-predict and kws-listen do, and opens its
    report with it. Its threshold table printed FA/h as eval.json rounds them (222.2222, 200.0, 0.0):
    now two decimals, thresholds three; eval.json keeps the exact values."""
    models = tmp_path / "models"
    shutil.copytree(converted_run, models / "20260101T000000Z" / "dist")
    monkeypatch.setenv("KWS_MODELS_DIR", str(models))
    audio, truth = keyword_stream(WORDS * 2, np.random.default_rng(7), gap_s=3.5)
    write_wav(tmp_path / "s.wav", audio, SR)
    # the second three words are left out of the labels: detections there are false accepts
    (tmp_path / "s.csv").write_text("label,start_s,end_s\n" + "".join(
        f"{w},{end - 0.8:.3f},{end - 0.2:.3f}\n" for w, end in truth[:3]))
    out = tmp_path / "rep"
    res = CliRunner().invoke(eval_main, ["--stream", str(tmp_path / "s.wav"), "--labels", str(tmp_path / "s.csv"),
                                         "--report", str(out)])
    assert res.exit_code == 0, res.output
    chosen = models / "20260101T000000Z" / "dist" / "manifest.json"
    assert res.stderr.splitlines()[0] == (f"kws-eval: model {chosen} (no -m: models/api, else the newest model; "
                                          "-m picks another)")
    assert res.stdout.splitlines()[0] == f"model: {chosen}"
    report = json.loads((out / "eval.json").read_text())
    curve = report["curve"]
    assert any(r["fa_per_hour"] for r in curve)  # the rates are not all 0
    rows = res.stdout.split("threshold  FA/h    FRR\n")[1].splitlines()[:len(curve[::4])]
    assert [row.split()[:2] for row in rows] == [[f"{r['threshold']:.3f}", f"{r['fa_per_hour']:.2f}"]
                                                 for r in curve[::4]]
    assert f"= {report['at_manifest_thresholds']['fa_per_hour']:.2f} per hour" in res.stdout
