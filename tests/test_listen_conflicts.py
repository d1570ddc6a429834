"""kws-listen options that do not apply to the chosen source are usage errors, not silently ignored."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from kws.edge.listen_cli import main as listen_main


@pytest.mark.parametrize("args", [
    ["--wav", "a.wav", "--rate", "8000"],
    ["--wav", "a.wav", "--channels", "2"],
    ["--rate", "48000"],  # the microphone: --device-rate is its option
])
def test_stdin_format_options_without_stdin_are_usage_errors(args):
    res = CliRunner().invoke(listen_main, ["-m", "x"] + args)
    assert res.exit_code == 2, res.output
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("Error: --rate/--channels describe raw --stdin audio"), res.output
