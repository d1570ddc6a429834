"""A WAV cut short of its header's length (a copy or recording interrupted) is used as it is by
kws-predict and kws-listen --wav, as kws-train and data-stats do, but never without a word: libsndfile
reads what is there silently."""
from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from audio_fixtures import SAMPLE_RATE, word_audio
from kws.edge.audio import write_wav
from kws.edge.listen_cli import main as listen_main
from kws.evaluation.inspect_cli import inspect_cmd
from kws.evaluation.predict_cli import main as predict_main

NOTE = "WAV cut short of its header's length (0.50 of 1.00 s), used as it is"


def cut_wav(tmp_path):
    path = tmp_path / "up.wav"
    write_wav(path, word_audio("up", np.random.default_rng(0)), SAMPLE_RATE)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - SAMPLE_RATE])  # half of the 16-bit samples gone, header unchanged
    return path


def test_kws_predict_names_a_cut_short_wav_and_still_classifies_it(converted_run, tmp_path):
    wav = cut_wav(tmp_path)
    whole = tmp_path / "whole.wav"
    write_wav(whole, word_audio("up", np.random.default_rng(0)), SAMPLE_RATE)
    res = CliRunner().invoke(predict_main, ["-m", str(converted_run), str(wav), str(whole), "--json"])
    assert res.exit_code == 0, res.output
    assert f"warning: {wav}: {NOTE}" in res.stderr
    assert str(whole) not in res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[0]["path"] == str(wav) and rows[0]["warning"] == NOTE and rows[0]["top"]
    assert "warning" not in rows[1]


def test_kws_listen_says_so_when_it_starts_on_a_cut_short_wav(converted_run, tmp_path):
    wav = cut_wav(tmp_path)
    res = CliRunner().invoke(listen_main, ["-m", str(converted_run), "--wav", str(wav)])
    assert res.exit_code == 0, res.output
    assert f"listening to {wav} (" in res.stderr and f"; {NOTE}" in res.stderr


def test_kws_inspect_warns_on_a_cut_short_wav(converted_run, tmp_path):
    wav = cut_wav(tmp_path)
    res = CliRunner().invoke(inspect_cmd, [str(wav), "-m", str(converted_run)])
    assert res.exit_code == 0, res.output
    assert "0.500 s, 16000 Hz" in res.stdout and "prediction: " in res.stdout
    assert f"warning: {wav}: {NOTE}" in res.stderr
    whole = tmp_path / "whole.wav"
    write_wav(whole, word_audio("up", np.random.default_rng(0)), SAMPLE_RATE)
    assert "warning" not in CliRunner().invoke(inspect_cmd, [str(whole)]).stderr
