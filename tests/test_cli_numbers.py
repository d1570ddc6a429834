"""Numeric options: nan and inf are usage errors (exit 2, one line naming the option), not tracebacks."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from kws.edge.listen_cli import main as listen_main
from kws.evaluation.eval_cli import main as eval_main
from kws.evaluation.inspect_cli import data_stats_cmd
from kws.evaluation.mine_cli import main as mine_main
from kws.evaluation.predict_cli import main as predict_main
from kws.synth.cli import main as synth_main

CASES = [
    (predict_main, ["-m", "x", "a.wav", "--max-mb", "nan"], "--max-mb"),
    (predict_main, ["-m", "x", "https://host/a.wav", "--timeout", "inf"], "--timeout"),
    (listen_main, ["-m", "x", "--wav", "a.wav", "--threshold", "nan"], "--threshold"),
    (listen_main, ["-m", "x", "--wav", "a.wav", "--hop-ms", "nan"], "--hop-ms"),
    (listen_main, ["-m", "x", "--wav", "a.wav", "--duration", "inf"], "--duration"),
    (eval_main, ["-m", "x", "--keywords", ".", "--hours", "nan"], "--hours"),
    (eval_main, ["-m", "x", "--keywords", ".", "--target-fa-per-hour", "inf", "--calibrate"],
     "--target-fa-per-hour"),
    (eval_main, ["-m", "x", "--keywords", ".", "--snr", "nan:20"], "--snr"),
    (eval_main, ["-m", "x", "--keywords", ".", "--snr", "5:inf"], "--snr"),
    (mine_main, ["-m", ".", "--margin", "nan"], "--margin"),
    (mine_main, ["-m", ".", "--hop-ms", "inf"], "--hop-ms"),
    (data_stats_cmd, [".", "--testing-percentage", "nan"], "--testing-percentage"),
    # kws-synth: before, nan/inf ranges were a numpy OverflowError traceback after the output folder
    # was made, --level-dbfs nan wrote silent clips and --validation-percent nan an empty validation
    (synth_main, ["--words", "yes", "--out", "x", "--snr", "nan:20"], "--snr"),
    (synth_main, ["--words", "yes", "--out", "x", "--gain", "-inf:inf"], "--gain"),
    (synth_main, ["--words", "yes", "--out", "x", "--speed", "nan"], "--speed"),
    (synth_main, ["--words", "yes", "--out", "x", "--rt60", "0.2:inf"], "--rt60"),
    (synth_main, ["--words", "yes", "--out", "x", "--level-dbfs", "nan"], "--level-dbfs"),
    (synth_main, ["--words", "yes", "--out", "x", "--reverb-prob", "nan"], "--reverb-prob"),
    (synth_main, ["--words", "yes", "--out", "x", "--noise-prob", "nan"], "--noise-prob"),
    (synth_main, ["--words", "yes", "--out", "x", "--validation-percent", "nan"], "--validation-percent"),
    (synth_main, ["--words", "yes", "--out", "x", "--testing-percent", "nan"], "--testing-percent"),
]


@pytest.mark.parametrize("cmd,args,option", CASES, ids=[" ".join(c[1][-2:]) for c in CASES])
def test_nan_and_inf_are_usage_errors(cmd, args, option, tmp_path):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):  # an --out that a regression writes lands there
        res = runner.invoke(cmd, args)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: Invalid value for") and option in last and "finite" in last, res.output


OUT_OF_RANGE = [  # finite, but past what a clip can hold: a 116 TiB reverb tail, or a silent wrong dataset
    (["--rt60", "1e9:1e9"], "--rt60", "must lie within 0.01:3"),
    (["--speed", "100:100"], "--speed", "must lie within 0.5:2"),
    (["--gain", "300:300"], "--gain", "must lie within -60:60"),
    (["--snr", "-500:-500"], "--snr", "must lie within -20:60"),
    (["--level-dbfs", "200"], "--level-dbfs", "is not in the range -90.0<=x<=0.0"),
    (["--seed", "-1"], "--seed", "is not in the range 0<=x<=2147483647"),
    # was exit 1 naming 'sample_rate', not the option; --help now gives both ranges
    (["--sample-rate", "0"], "--sample-rate", "is not in the range 8000<=x<=48000"),
    (["--clip-ms", "20000"], "--clip-ms", "is not in the range 100<=x<=10000"),
]


@pytest.mark.parametrize("args,option,message", OUT_OF_RANGE, ids=[" ".join(c[0]) for c in OUT_OF_RANGE])
def test_kws_synth_ranges_past_any_recording_are_usage_errors(args, option, message, tmp_path):
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):
        res = runner.invoke(synth_main, ["--words", "yes", "--out", "x", *args])
        assert not Path("x").exists()
    assert res.exit_code == 2, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: Invalid value for") and option in last and message in last, res.output


@pytest.mark.parametrize("value", ["0", "1"])
def test_kws_mine_takes_the_detection_thresholds_kws_listen_takes(value, tmp_path):
    """A score fires above the threshold and its hold ends below it: at 0 the first detection of each
    negatives file was held for ever (one false accept per keyword and file, whatever the model), and
    no score is above 1 (every round counted 0 false accepts). kws-listen refuses both; kws-mine took
    them."""
    res = CliRunner().invoke(mine_main, ["-m", str(tmp_path), "--threshold", value])
    assert res.exit_code == 2, res.output
    last = res.output.strip().splitlines()[-1]
    assert last == f"Error: Invalid value for '--threshold': {value}.0 is not in the range 0.0<x<1.0.", res.output
