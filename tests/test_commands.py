"""The ``kws`` group: every installed ``kws-X`` tool is also ``kws X``, and help never loads TensorFlow."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from kws.cli import SUBCOMMANDS, main

SETUP = Path(__file__).resolve().parent.parent / "setup.py"


def test_every_console_script_is_a_subcommand_with_the_same_command():
    scripts = dict(re.findall(r'"kws-([a-z-]+)=([\w.]+:\w+)"', SETUP.read_text()))
    assert {"train", "convert", "listen", "mine"} <= set(scripts)
    for name, target in scripts.items():
        assert name in SUBCOMMANDS, f"kws-{name} is installed but 'kws {name}' does not exist"
        assert SUBCOMMANDS[name][0] == target


def test_subcommand_help_lists_its_options():
    res = CliRunner().invoke(main, ["mine", "--help"])
    assert res.exit_code == 0 and "--negatives" in res.output
    res = CliRunner().invoke(main, ["--help"])
    assert all(name in res.output for name in SUBCOMMANDS)


def test_group_help_does_not_import_tensorflow():
    code = ("import sys; from kws.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr


def test_every_option_of_every_command_says_what_it_does():
    ctx = click.Context(main)
    silent = [f"kws {name} {opt}" for name in SUBCOMMANDS
              for param in main.get_command(ctx, name).params
              if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
              for opt in param.opts[-1:]]
    assert silent == [], f"--help gives no description for: {', '.join(silent)}"
