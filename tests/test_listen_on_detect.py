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


def test_a_failing_command_is_told_at_once_and_counted(tmp_path):
    """A listener runs for days: a command that fails (a typo, a script that exits 3) was only counted
    in the summary at Ctrl-C; the first failure is now told as it happens, with how it ended."""
    told = []
    runner = CommandRunner(f"{shlex.quote(sys.executable)} -c 'raise SystemExit(3)'", say=told.append)
    for i in range(3):
        runner.submit(Detection(time_s=float(i), label="up", score=0.9))
    runner.close()
    assert told == [f"--on-detect: {sys.executable!r} exited with status 3; later failures are counted in the "
                    "summary"]
    assert runner.problems() == ["3 command(s) failed"]
    missing = tmp_path / "no_such_script"
    told.clear()
    runner = CommandRunner(f"{shlex.quote(str(missing))} {{label}}", say=told.append)
    runner.submit(Detection(time_s=1.0, label="up", score=0.9))
    runner.close()
    assert told == [f"--on-detect: {str(missing)!r} cannot be run (No such file or directory); later failures "
                    "are counted in the summary"]


def test_a_command_that_does_not_end_is_told_and_what_it_held_up_is_counted(monkeypatch):
    """A command that hangs held up every later one: detections past the queue were counted only at
    exit, and those still waiting, and the one running, when kws-listen stopped waiting for them
    were not counted at all (a summary with no word of commands that never ran)."""
    import time

    from kws.edge import listen_cli

    monkeypatch.setattr(listen_cli, "ON_DETECT_QUEUE", 2)
    monkeypatch.setattr(listen_cli, "ON_DETECT_DRAIN_S", 0.2)
    told = []
    runner = CommandRunner("sleep 20", say=told.append)  # outlives the test's waits by far
    runner.submit(Detection(time_s=0.0, label="up", score=0.9))
    started = time.monotonic()
    while runner._running_since is None and time.monotonic() - started < 30:  # the worker took it
        time.sleep(0.01)
    for i in range(3):
        runner.submit(Detection(time_s=1.0 + i, label="up", score=0.9))
    runner.close()
    assert len(told) == 1 and told[0].startswith("--on-detect: 2 commands are waiting to run (the one running "
                                                 "has run for ")
    assert runner.problems() == ["1 skipped (too many waiting)", "2 not run (still waiting at exit)",
                                 "1 still running at exit (after 0.2 s)"]
