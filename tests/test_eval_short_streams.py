"""kws-eval on a stream too short to judge: shorter than the model's window is one line; --calibrate on a
stream with no keyword-free second is one line and leaves the manifest as it was (not all thresholds at
the top of the grid, chosen where no false accept could happen)."""
from __future__ import annotations

import json
import shutil

import numpy as np
from click.testing import CliRunner

from audio_fixtures import SAMPLE_RATE, word_audio
from kws.edge.audio import write_wav
from kws.evaluation.eval_cli import main as eval_main


def last_line(res) -> str:
    return res.output.strip().splitlines()[-1]


def test_too_short_streams_are_one_line_errors(converted_run, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(converted_run, dist)
    manifest = (dist / "manifest.json").read_bytes()
    labels = tmp_path / "labels.csv"
    labels.write_text("label,start_s,end_s\nup,0.1,0.9\n")
    rng = np.random.default_rng(0)
    short = tmp_path / "short.wav"
    write_wav(short, word_audio("up", rng)[:1600], SAMPLE_RATE)  # 0.1 s
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(short), "--labels", str(labels),
                                         "--calibrate"])
    assert res.exit_code == 1, res.output
    assert last_line(res) == (f"Error: {short}: 0.10 s of audio, shorter than the model's 1 s window: "
                              "nothing to score")
    clip = tmp_path / "clip.wav"
    write_wav(clip, word_audio("up", rng), SAMPLE_RATE)  # 1 s: every second is near the word
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(clip), "--labels", str(labels),
                                         "--calibrate"])
    assert res.exit_code == 1, res.output
    assert last_line(res).startswith(f"Error: {clip}: no keyword-free audio to count false accepts on")
    assert (dist / "manifest.json").read_bytes() == manifest
    assert not (dist / "manifest.json.bak").exists()
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(clip), "--labels", str(labels)])
    assert res.exit_code == 0, res.output  # without --calibrate the 1 s stream is still reported
    assert "stream: 1.0 s, 1 keywords, " in res.output  # in seconds, as kws data-stats says it: not '0.0 min'


def test_negatives_without_samples_are_one_line(converted_run, tmp_path):
    """An empty --negatives file is unreadable as everywhere else, not 0 h of keyword-free audio that
    --calibrate then chooses thresholds on."""
    dist = tmp_path / "dist"
    shutil.copytree(converted_run, dist)
    manifest = (dist / "manifest.json").read_bytes()
    rng = np.random.default_rng(1)
    stream = tmp_path / "stream.wav"
    write_wav(stream, np.concatenate([np.zeros(4 * SAMPLE_RATE, np.float32), word_audio("up", rng),
                                      np.zeros(4 * SAMPLE_RATE, np.float32)]), SAMPLE_RATE)
    labels = tmp_path / "labels.csv"
    labels.write_text("label,start_s,end_s\nup,4.1,4.9\n")
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0, np.float32), SAMPLE_RATE)
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(stream), "--labels", str(labels),
                                         "--negatives", str(empty), "--calibrate"])
    assert res.exit_code == 1, res.output
    assert last_line(res) == f"Error: {empty}: not a readable audio file (holds no samples)"
    assert (dist / "manifest.json").read_bytes() == manifest
    # a folder without audio among the sources was skipped without a word (kws-train refuses it)
    (tmp_path / "no_audio" / ".Trashes").mkdir(parents=True)
    write_wav(tmp_path / "no_audio" / ".Trashes" / "old.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(stream), "--labels", str(labels),
                                         "--negatives", f"{tmp_path / 'no_audio'},{stream}", "--calibrate"])
    assert res.exit_code == 1, res.output
    assert last_line(res).startswith(f"Error: {tmp_path / 'no_audio'}: no audio files (.wav")
    assert "hidden files and folders and __MACOSX/ are not read" in last_line(res)
    assert (dist / "manifest.json").read_bytes() == manifest


def test_a_stream_without_keywords_has_no_false_reject_rate_and_is_not_calibrated(converted_run, tmp_path):
    """Labels naming none of the model's keywords (none at all, or words it does not know): the report
    said 'false-reject rate 0.0%' and --calibrate set every threshold to the top of the grid (no miss
    can happen), switching the model off with 'FRR 0.0%'. Now the rate is n/a and --calibrate refuses."""
    dist = tmp_path / "dist"
    shutil.copytree(converted_run, dist)
    manifest = (dist / "manifest.json").read_bytes()
    stream = tmp_path / "talk.wav"
    write_wav(stream, np.random.default_rng(2).normal(0, 0.01, 6 * SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    labels = tmp_path / "labels.csv"
    # yes: not a word of the model, so another word; the _silence_ row is no word at all
    labels.write_text("label,start_s,end_s\nyes,2.0,2.5\n_silence_,3.5,5.5\n")
    out = tmp_path / "report"
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(stream), "--labels", str(labels),
                                         "--report", str(out)])
    assert res.exit_code == 0, res.output
    assert "stream: 6.0 s, 0 keywords, 1 unknown words, 1 silence span, 0.002 keyword-free h" in res.output
    # the tutorial's percentages are of the keywords: eval.json wrote 0.0 for each, as if none was matched
    report = json.loads((out / "eval.json").read_text())
    undefined = {"matched_pct": None, "correctly_matched_pct": None, "wrongly_matched_pct": None,
                 "false_positive_pct": None}
    assert report["at_manifest_thresholds"]["tutorial"] == undefined and report["at_manifest_thresholds"]["frr"] is None
    assert report["curve"] and all(r["tutorial"] == undefined for r in report["curve"])
    assert "no keywords in the stream, so none of the tutorial's matched / false positive percentages" in res.output
    assert "false-reject rate n/a (no keywords in the stream)" in res.output
    curve = res.output.split("threshold  FA/h    FRR\n")[1].splitlines()
    assert curve and all(row.endswith(" n/a") for row in curve), curve
    # the benchmark's write-up of the same report said FRR 0.0% (every keyword found) and latency
    # 'None s' where it has neither
    from bench.bench_eval import result_lines

    lines = result_lines(report, "python -m bench.bench_eval", str(dist), "", tmp_path, "5:20", 1.0)
    summary = next(line for line in lines if line.startswith("At the manifest's thresholds"))
    assert summary.endswith(", FRR n/a, latency after keyword end median n/a, p90 n/a.") and "None" not in summary
    rows = [line.split(" | ") for line in lines if line.startswith("| 0.")]
    assert len(rows) == len(report["curve"]) and all(row[2] == "n/a" for row in rows)
    res = CliRunner().invoke(eval_main, ["-m", str(dist), "--stream", str(stream), "--labels", str(labels),
                                         "--calibrate"])
    assert res.exit_code == 1, res.output
    assert last_line(res) == (f"Error: {labels}: no word of the model's keywords (up, down, beep) to count false "
                              "rejects on: --calibrate needs them in the stream")
    assert (dist / "manifest.json").read_bytes() == manifest and not (dist / "manifest.json.bak").exists()
