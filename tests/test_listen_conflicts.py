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


@pytest.mark.parametrize("index", ["-1", " -3"])
def test_a_negative_device_index_is_a_usage_error(index):
    """--device -1 was looked up as part of a device name (sounddevice's -1 is no device, not the
    default input); no index is below 0."""
    res = CliRunner().invoke(listen_main, ["-m", "x", "--device", index])
    assert res.exit_code == 2, res.output
    assert res.output.strip().splitlines()[-1] == (
        f"Error: Invalid value for '--device': {index.strip()} is not a device index (they start at 0; leave "
        "--device out for the default input; see kws-listen --list-devices)")
