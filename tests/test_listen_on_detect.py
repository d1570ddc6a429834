"""--on-detect never builds a shell command from model data: labels from a downloaded manifest
with shell syntax reach the command as one plain argument (real subprocesses)."""
from __future__ import annotations

import shlex
import sys

from click.testing import CliRunner

from kws.edge.listen_cli import CommandRunner, main as listen_main
from kws.edge.recognizer import Detection

WRITER = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"


def _hostile_labels(tmp_path):
    marks = [tmp_path / f"pwned{i}" for i in range(4)]
    labels = [f"a;touch {marks[0]}", f"$(touch {marks[1]})", f"`touch {marks[2]}`", f"x' ; touch {marks[3]} ; '"]
    return labels, marks


def test_on_detect_passes_labels_as_plain_arguments(tmp_path):
    labels, marks = _hostile_labels(tmp_path)
    out = tmp_path / "heard.txt"
    # the user's template quotes {label}, as the README's notify-send example would
    runner = CommandRunner(f"{shlex.quote(sys.executable)} -c \"{WRITER}\" {shlex.quote(str(out))} 'Heard {{label}}'")
    for i, label in enumerate(labels):
        runner.submit(Detection(time_s=float(i), label=label, score=0.9))
    runner.close()
    assert out.read_text().splitlines() == [f"Heard {label}" for label in labels]
    assert runner.failed == 0 and not any(m.exists() for m in marks)


def test_on_detect_shell_gets_model_data_only_in_the_environment(tmp_path):
    labels, marks = _hostile_labels(tmp_path)
    out = tmp_path / "env.txt"
    runner = CommandRunner(f'printf "%s|%s\\n" "$KWS_LABEL" "$KWS_SCORE" >> {shlex.quote(str(out))}', shell=True)
    for label in labels:
        runner.submit(Detection(time_s=1.0, label=label, score=0.75))
    runner.close()
    assert out.read_text().splitlines() == [f"{label}|0.750" for label in labels]
    assert not any(m.exists() for m in marks)


def test_shell_template_with_placeholders_is_a_usage_error():
    res = CliRunner().invoke(listen_main, ["--wav", "x.wav", "--on-detect-shell", "notify-send 'Heard {label}'"])
    assert res.exit_code == 2 and '"$KWS_LABEL"' in res.output
    res = CliRunner().invoke(listen_main, ["--wav", "x.wav", "--on-detect", "a", "--on-detect-shell", "b"])
    assert res.exit_code == 2 and "not both" in res.output
    res = CliRunner().invoke(listen_main, ["--wav", "x.wav", "--on-detect", "notify-send 'unclosed"])
    assert res.exit_code == 2 and "cannot split" in res.output
