"""kws-convert's numeric options: nan and inf are one-line usage errors (exit 2), before any work."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from kws.converters.cli import main as convert_main


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
def test_non_finite_stream_step_is_a_usage_error(tmp_path, value):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("")  # defaults: a tcn, so a streaming form would be made
    (run / "labels.txt").write_text("_silence_\n_unknown_\nup\ndown\n")
    for name in ("split.json", "model.keras"):
        (run / name).write_text("{}")
    res = CliRunner().invoke(convert_main, ["-m", str(run), "--out", str(tmp_path / "dist"),
                                            "--stream-step-ms", value])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == (
        "kws-convert: error: --stream-step-ms must be a multiple of the frontend stride (10 ms) up to the "
        f"clip, got {float(value):g}")
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "150"])
def test_max_accuracy_drop_must_be_a_finite_number_of_points(tmp_path, value):
    """A negative drop would reject every int8 model, inf (or any drop over 100 points) would turn the
    guard off without saying so; the run's convert.max_accuracy_drop obeys the same rule."""
    res = CliRunner().invoke(convert_main, ["-m", str(tmp_path / "nowhere"), "--out", str(tmp_path / "dist"),
                                            "--max-accuracy-drop", value])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"kws-convert: error: --max-accuracy-drop must be a number of points in [0, 100], got {float(value):g}")
    assert not (tmp_path / "dist").exists()
