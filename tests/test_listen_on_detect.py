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


def test_a_command_neither_reads_the_audio_on_stdin_nor_prints_among_the_detections(capfd):
    """Under --stdin a command that reads its stdin (ssh, cat, mail) took the PCM stream that
    kws-listen was reading, and what it printed went between the detections on stdout (no longer
    JSON lines with --json): a command gets /dev/null to read and kws-listen's stderr to print on."""
    import os

    read_end, write_end = os.pipe()  # kws-listen's stdin, holding audio
    os.write(write_end, b"PCM")
    os.close(write_end)
    saved_stdin = os.dup(0)
    os.dup2(read_end, 0)
    try:
        runner = CommandRunner(f"{shlex.quote(sys.executable)} -c \"import sys; print('read ' + repr(sys.stdin.read()))\"")
        runner.submit(Detection(time_s=1.0, label="up", score=0.9))
        runner.close()
    finally:
        os.dup2(saved_stdin, 0)
        os.close(saved_stdin)
        os.close(read_end)
    out, err = capfd.readouterr()
    assert runner.failed == 0
    assert out == "" and err == "read ''\n"
