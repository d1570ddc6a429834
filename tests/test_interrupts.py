"""Stop signals (kws.edge.stopping): Ctrl-C during training is a flag, so it is never lost inside a
finalizer; SIGTERM and SIGHUP end a command like Ctrl-C; a second signal does not cut short the
cleanup kws-listen's first one started; a job started under nohup keeps running when its terminal
goes away; where the terminal has gone, the last line is dropped and the exit status stays 130."""
import errno
import gc
import io
import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kws.edge.stopping import StopRequest, cleanup_held, signals_held
from signal_helpers import first_stop, signal_self, stopped_again_in

KWS_LISTEN = Path(sys.executable).parent / "kws-listen"
STDIN_AUDIO = bytes(3 * 16000 * 2)  # 3 s of 16 kHz int16 silence


class _SignalsInFinalizer:
    """Sends Ctrl-C to this process from __del__, as when Keras frees tensors between batches."""

    def __del__(self):
        signal_self(signal.SIGINT)  # its Python-level handler runs still inside __del__


def _interrupt_inside_finalizer():
    obj = _SignalsInFinalizer()
    del obj
    gc.collect()


def test_plain_ctrl_c_inside_a_finalizer_is_lost(monkeypatch):
    """Why StopRequest exists: a KeyboardInterrupt raised in __del__ is printed and dropped."""
    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: dropped.append(info.exc_type))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    _interrupt_inside_finalizer()  # returns normally: the interrupt went nowhere
    assert dropped == [KeyboardInterrupt]


def test_stop_request_keeps_a_ctrl_c_that_arrives_inside_a_finalizer():
    with StopRequest() as stop:
        _interrupt_inside_finalizer()
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            stop.check()


def test_second_signal_interrupts_at_once_and_handlers_are_restored():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with StopRequest() as stop:
        stop.check()  # nothing requested yet
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested
        with pytest.raises(KeyboardInterrupt):
            signal_self(signal.SIGINT)
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_immediate_mode_interrupts_at_the_first_signal():
    """Before a job's checked loop starts (start-up, data reading), SIGTERM stops it at once too,
    as a KeyboardInterrupt, instead of killing the process without a word."""
    with StopRequest(immediate=True) as stop:
        with pytest.raises(KeyboardInterrupt):
            signal_self(signal.SIGTERM)
        assert stop.requested


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["sigterm", "sighup"])
@pytest.mark.parametrize("tool, kept", [("ensemble_cli", "nothing was written"),
                                        ("eval_cli", "the manifest was not changed")])
def test_sigterm_to_kws_ensemble_and_kws_eval_ends_like_ctrl_c(tool, kept, sig, capsys):
    """SIGTERM left kws-ensemble's staging folder (3.5 MB each) for good, and Ctrl-C was click's
    'Aborted!' with exit 1 where kws-train and kws-convert say what was kept and exit 130. The signal
    goes to this process, whose handlers stop_cleanly installs for the command's run."""
    import importlib

    from kws.evaluation.stopping import stop_cleanly

    def command():
        assert signal.getsignal(sig) not in (signal.SIG_DFL, signal.SIG_IGN)  # else the signal would end pytest
        signal_self(sig)

    before = signal.getsignal(sig)
    with pytest.raises(SystemExit) as ended:
        stop_cleanly("kws-x", kept)(command)()
    assert ended.value.code == 130 and capsys.readouterr().err.strip() == f"kws-x: interrupted; {kept}"
    assert signal.getsignal(sig) is before  # put back
    cli = importlib.import_module(f"kws.evaluation.{tool}")
    assert getattr(cli.main.callback, "__wrapped__", None) is not None  # the command runs under stop_cleanly


def test_once_a_stop_has_interrupted_later_signals_wait_for_the_cleanup():
    """kws-listen's mode: SIGINT and SIGTERM together raised a second KeyboardInterrupt in its
    cleanup, which ended as click's "Aborted!" (exit 1) without the summary."""
    with StopRequest(immediate=True, once=True) as stop:
        with pytest.raises(KeyboardInterrupt):
            signal_self(signal.SIGINT)
        signal_self(signal.SIGTERM)  # during the cleanup: noted, not raised
        assert stop.requested and stop.holding
    with StopRequest(immediate=True) as stop:  # without once, as kws-convert: every signal interrupts
        for sig in (signal.SIGINT, signal.SIGTERM):
            with pytest.raises(KeyboardInterrupt):
                signal_self(sig)


def test_signals_held_raises_after_the_block_or_drops_the_stop():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            signal_self(signal.SIGTERM)
            done.append("held")
    with signals_held(then=None):
        signal_self(signal.SIGINT)
        done.append("dropped")
    assert done == ["held", "dropped"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_cleanup_held_drops_a_stop_during_a_stop_and_raises_one_otherwise():
    with StopRequest(immediate=True):
        with cleanup_held(KeyboardInterrupt()):  # the cleanup of a stop: the stop is under way
            signal_self(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            with cleanup_held(OSError("disk full")):  # the cleanup of an error: the stop is honoured after it
                signal_self(signal.SIGTERM)


def test_a_second_stop_cannot_leave_an_atomic_writes_temporary_file(tmp_path, monkeypatch):
    """kws-eval's report, kws-mine's mining.json, kws-listen's summary, kws-train's state: Ctrl-C then
    SIGTERM left .<name>.<pid>.0.tmp beside the file for good."""
    from kws.edge.manifest import atomic_file

    target = tmp_path / "report.json"
    target.write_text("old")
    stopped_again_in(monkeypatch, os, "unlink")
    with StopRequest(immediate=True), pytest.raises(KeyboardInterrupt):
        with atomic_file(target) as f:
            f.write(b"half")
            first_stop()
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"] and target.read_text() == "old"


def test_a_second_stop_cannot_leave_a_checkpoints_temporary_file(tmp_path, monkeypatch):
    """kws-train stopped twice while a checkpoint was saved: .last.tmp.keras stayed in ckpts/."""
    from kws.trainer.run import save_keras_atomic

    class SavedHalf:
        def save(self, path):
            Path(path).write_bytes(b"half a model")
            first_stop()

    stopped_again_in(monkeypatch, os, "unlink")
    with StopRequest(immediate=True), pytest.raises(KeyboardInterrupt):
        save_keras_atomic(SavedHalf(), tmp_path / "last.keras")
    assert list(tmp_path.iterdir()) == []


def test_a_second_stop_cannot_leave_half_a_new_run_folder(tmp_path, monkeypatch):
    """A run stopped before its config was saved is removed; a second stop in the removal left the
    half-removed folder, which --resume then refuses."""
    from kws.trainer import train as tr
    from kws.trainer.run import RunDir

    run = RunDir(tmp_path / "run")

    def open_new_run(*args):
        (run.path / "logs").mkdir(parents=True)
        (run.path / "logs" / "events").write_bytes(b"x")
        return run, None, {}, True

    def stopped(*args):
        first_stop()

    monkeypatch.setattr(tr, "_open_run", open_new_run)
    monkeypatch.setattr(tr, "_train_run", stopped)
    stopped_again_in(monkeypatch, tr.shutil, "rmtree")
    with pytest.raises(tr.TrainingInterrupted, match="nothing of .* was kept"):
        tr.train()
    assert list(tmp_path.iterdir()) == []


def test_a_second_stop_cannot_leave_a_partial_download_or_unpacking_in_the_cache(tmp_path, monkeypatch):
    """kws-train --data URL stopped twice: .download-* (up to the archive's size) or .unpack-* (up to
    the dataset's) stayed in the cache for good."""
    from kws.trainer import fetch

    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path))

    def half_a_download(url, write, **kwargs):
        write(b"part of the archive")
        first_stop()

    def half_unpacked(archive, target, max_bytes):
        (target / "yes").mkdir()
        (target / "yes" / "a.wav").write_bytes(b"RIFF")
        first_stop()

    monkeypatch.setattr(fetch, "stream_url", half_a_download)
    stopped_again_in(monkeypatch, os, "unlink")
    with StopRequest(immediate=True), pytest.raises(KeyboardInterrupt):
        fetch.download("https://example.org/words.tar.gz", 10**6, quiet=True)
    archive = tmp_path / "downloads" / "words.tar.gz"
    assert list(archive.parent.iterdir()) == []
    archive.write_bytes(b"an archive")
    monkeypatch.setattr(fetch, "download", lambda *args, **kwargs: archive)
    monkeypatch.setattr(fetch, "safe_extract", half_unpacked)
    stopped_again_in(monkeypatch, fetch.shutil, "rmtree")
    with StopRequest(immediate=True), pytest.raises(KeyboardInterrupt):
        fetch.fetch_dataset("https://example.org/words.tar.gz", 1, quiet=True)
    assert list((tmp_path / "datasets").iterdir()) == []


def test_a_second_stop_cannot_leave_kws_mines_float_model_in_the_run(tmp_path, monkeypatch):
    from kws.converters import tflite
    from kws.edge import runtime
    from kws.evaluation import mining

    def stopped_while_loading(path):
        first_stop()

    monkeypatch.setattr(tflite, "convert_float", lambda model: b"a float model")
    monkeypatch.setattr(runtime, "TFLiteModel", stopped_while_loading)
    stopped_again_in(monkeypatch, os, "unlink")
    with StopRequest(immediate=True), pytest.raises(KeyboardInterrupt):
        mining.float_tflite_scores(None, [], None, 30.0, tmp_path)
    assert list(tmp_path.iterdir()) == []


def _listen(converted_run, summary: Path, **popen) -> subprocess.Popen:
    """kws-listen on raw PCM from a pipe kept open (it listens until stopped), once it is listening."""
    proc = subprocess.Popen([str(KWS_LISTEN), "-m", str(converted_run), "--stdin", "--summary-json", str(summary)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, **popen)
    proc.stdin.write(STDIN_AUDIO)
    proc.stdin.flush()
    return proc


def _wait_for_listening(read) -> None:
    seen = ""
    while "listening to" not in seen:
        text = read()
        assert text, f"kws-listen ended before it listened: {seen}"
        seen += text


def _check_summary(summary: Path) -> dict:
    data = json.loads(summary.read_text())
    assert 0 <= data["audio_s"] <= 3.0 and data["detections"] == 0
    assert [p.name for p in summary.parent.iterdir()] == [summary.name]  # no temporary file beside it
    return data


@pytest.mark.parametrize("signals", [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)],
                         ids=["int-term", "term-hup-int"])
def test_kws_listen_stopped_twice_still_ends_with_its_summary(converted_run, tmp_path, signals):
    summary = tmp_path / "out" / "summary.json"
    proc = _listen(converted_run, summary, stderr=subprocess.PIPE)
    try:
        _wait_for_listening(lambda: proc.stderr.readline().decode())
        for sig in signals:
            proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    data = _check_summary(summary)
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0] == "kws-listen: stopped", err
    assert lines[1].startswith(f"kws-listen: {data['audio_s']:.1f} s of audio, 0 detection(s)")


def test_kws_listen_whose_terminal_hung_up_writes_its_summary(converted_run, tmp_path):
    """ssh dropped (SIGHUP): the default action killed kws-listen without its --summary-json, and
    writing "stopped" to the gone terminal (EIO) would have failed before it."""
    summary = tmp_path / "out" / "summary.json"
    controller, terminal = pty.openpty()
    proc = _listen(converted_run, summary, stderr=terminal)
    os.close(terminal)
    try:
        read = (lambda: os.read(controller, 4096).decode())
        _wait_for_listening(read)
        os.close(controller)  # the terminal goes away: writing to it fails from now on
        proc.send_signal(signal.SIGHUP)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    _check_summary(summary)


def test_kws_listen_under_nohup_outlives_its_terminal(converted_run, tmp_path):
    """nohup starts it with SIGHUP ignored, and ignored it stays: the hang-up does not stop it, and
    the audio ends as a recording does (no "stopped"), all of it heard."""
    summary = tmp_path / "out" / "summary.json"
    proc = _listen(converted_run, summary, stderr=subprocess.PIPE,
                   preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        _wait_for_listening(lambda: proc.stderr.readline().decode())
        proc.send_signal(signal.SIGHUP)
        proc.stdin.close()  # the end of the audio
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "stopped" not in err, err
    assert _check_summary(summary)["audio_s"] == 3.0



# command: (its module, the module and name of the job it runs, its arguments); the job is replaced by
# one that waits to be stopped, so each command is stopped in its own code, without doing its work
_HUNG_UP_COMMANDS = {
    "kws-train": ("kws.trainer.cli", "kws.trainer.train", "train", ["--data", "{tmp}"]),
    "kws-convert": ("kws.converters.cli", "kws.converters.convert", "convert", ["-m", "{tmp}"]),
    "kws-mine": ("kws.evaluation.mine_cli", "kws.evaluation.mine_cli", "mine", ["-m", "{tmp}"]),
    "kws-eval": ("kws.evaluation.eval_cli", "kws.evaluation.models", "manifest_path_for",
                 ["-m", "{tmp}", "--keywords", "{tmp}"]),
    "kws-ensemble": ("kws.evaluation.ensemble_cli", "kws.evaluation.ensemble_cli", "member_source",
                     ["{tmp}/a", "{tmp}/b", "--out", "{tmp}/pair"]),
    "kws-synth": ("kws.synth.cli", "kws.synth.dataset", "generate", ["--words", "yes", "--out", "{tmp}/synth"]),
}
# all of them run in turn in one process (one Python start-up, not six); each is stopped by its own
# SIGHUP, and the last one's exit status is the process's own, through the interpreter's exit with a
# gone stderr
_STOP_EACH_IN_TURN = """
import importlib, json, signal, sys, time
from kws.edge.stopping import StopRequest
commands = json.loads(sys.argv[1])
def waiting(name):
    def wait(*args, **kwargs):
        with StopRequest(immediate=True):  # as the real job installs, where the command does not
            print("ready", name, flush=True)
            time.sleep(60)
    return wait
for n, (name, (cli, job_module, job, args)) in enumerate(commands.items()):
    before = signal.getsignal(signal.SIGHUP)
    setattr(importlib.import_module(job_module), job, waiting(name))
    try:
        importlib.import_module(cli).main(args)
    except SystemExit as exc:
        if n == len(commands) - 1:
            raise
        restored = signal.getsignal(signal.SIGHUP) == before  # the next command starts as a fresh one would
        print("exit", name, exc.code, "restored" if restored else "not restored", flush=True)
"""


def test_a_command_whose_terminal_hung_up_still_exits_130(tmp_path):
    """ssh dropped: SIGHUP stops the command, and its "interrupted" line to the gone terminal failed
    (EPIPE here, EIO from a terminal): a traceback or click's error, exit 1 instead of 130."""
    names = sorted(_HUNG_UP_COMMANDS)
    commands = {}
    for name in names:
        cli, job_module, job, args = _HUNG_UP_COMMANDS[name]
        (tmp_path / name).mkdir()
        commands[name] = (cli, job_module, job, [arg.format(tmp=tmp_path / name) for arg in args])
    proc = subprocess.Popen([sys.executable, "-c", _STOP_EACH_IN_TURN, json.dumps(commands)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ended = []
    try:
        for name in names:
            assert proc.stdout.readline().split() == ["ready", name], ended
            if not proc.stderr.closed:
                proc.stderr.close()  # the terminal goes away: writing to stderr fails from now on
            proc.send_signal(signal.SIGHUP)
            if name != names[-1]:
                ended.append(proc.stdout.readline().split())
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ended == [["exit", name, "130", "restored"] for name in names[:-1]]
    assert proc.returncode == 130  # the last one, kws-train
    assert [list((tmp_path / name).iterdir()) for name in names] == [[]] * len(names)  # nothing was written


def test_kws_train_drops_a_progress_line_its_gone_terminal_refuses(monkeypatch):
    """A hang-up during an epoch's validation waits for the next batch to stop the run; the epoch's
    line to the gone terminal failed the run first ('Input/output error', exit 1, not 130)."""
    from kws.trainer.train import _Printer

    class GoneTerminal(io.TextIOBase):
        def write(self, text):
            raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(sys, "stderr", GoneTerminal())
    _Printer(quiet=False)("epoch 1/3: loss 0.9000 acc 0.5000")
