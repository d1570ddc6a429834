"""``kws-listen``: continuous keyword detection from a microphone, a WAV file or raw PCM on stdin.

One line per detection on stdout (or JSON lines with ``--json``); start-up information and the
final summary go to stderr. Ctrl-C, SIGTERM or SIGHUP stops cleanly with the summary.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Callable

import click

from .audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from .calibration_fit import ENSEMBLE_SCORED, calibrated_on_other_model
from .clitypes import FiniteFloatRange
from .errors import KwsError, os_error_line
from .manifest_schema import SMOOTHING_RANGES
from .recognizer import Detection, Recognizer
from .stopping import StopRequest, tell

PROG = "kws-listen"
ON_DETECT_QUEUE = 64  # detections waiting for their command before new ones are dropped
ON_DETECT_DRAIN_S = 5.0  # how long to wait for pending commands at exit
PLACEHOLDER_RE = re.compile(r"\{(label|score|time_s)\}")
EXIT_ERROR = 1
MAX_STDIN_CHANNELS = 32  # interleaved channels accepted on --stdin
STDERR_FD = 2  # where --on-detect commands print: stdout carries only the detections
NEGATIVE_INDEX_RE = re.compile(r"-\d+")  # a --device that means an index below 0

EXAMPLES = """
\b
Examples:
  kws-listen -m dist/model_int8.tflite            # default microphone
  kws-listen --list-devices
  kws-listen -m dist/ --device "USB" --json --on-detect 'notify-send {label}'
  kws-listen -m dist/ --wav long_recording.flac --json
  arecord -f S16_LE -r 16000 -c 1 -t raw | kws-listen -m dist/ --stdin
"""


class CommandRunner:
    """Runs ``--on-detect`` commands one after another on a worker thread, never blocking audio.

    A template is split like a shell would (``shlex.split``) and run without a shell, with
    {label}, {score} and {time_s} replaced inside the arguments: a label from a downloaded
    manifest is one argument, never shell syntax. ``shell=True`` (``--on-detect-shell``) runs the
    template through /bin/sh unchanged; it may not contain placeholders (model data reaches it
    only in the environment, $KWS_LABEL...).

    A command reads nothing (its stdin is /dev/null: under ``--stdin`` it would take the audio) and
    what it prints goes to stderr, so stdout holds only the detections (``--json`` stays parseable).

    The first command that fails, and the first detection skipped because commands are still
    waiting behind one that has not ended, are told at once through ``say`` (a listener running for
    days would otherwise learn of them only in its summary); :meth:`problems` counts them all, and
    what :meth:`close` left unfinished."""

    def __init__(self, template: str, shell: bool = False, say: Callable[[str], None] | None = None):
        import queue  # here, not at the top: a run without --on-detect never loads them
        import threading

        self._full, self._empty = queue.Full, queue.Empty
        self._output = _command_output()
        self.template = template
        self.shell = shell
        self.argv = check_on_detect(template, shell)
        self.say = say or (lambda line: tell(f"{PROG}: {line}"))
        self.dropped = 0
        self.failed = 0
        self.not_run = 0  # detections whose command had not started when close() stopped waiting
        self.running_at_exit = False  # a command still running when close() stopped waiting
        self._running_since: float | None = None  # time.monotonic() when the running command started
        self._closed = False
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=ON_DETECT_QUEUE)
        self._thread = threading.Thread(target=self._work, name="on-detect", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        """The command as messages name it."""
        return "the --on-detect-shell command" if self.shell else repr(self.argv[0])

    def command_for(self, det: Detection) -> list[str] | str:
        """The argument list with {label}, {score} and {time_s} filled in (the template as is for a shell)."""
        if self.shell:
            return self.template
        values = _values(det)
        return [PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], arg) for arg in self.argv]

    def submit(self, det: Detection) -> None:
        try:
            self._queue.put_nowait(det)
        except self._full:
            self.dropped += 1
            if self.dropped == 1:
                started = self._running_since
                running = f" (the one running has run for {time.monotonic() - started:.0f} s)" \
                    if started is not None else ""
                self.say(f"--on-detect: {ON_DETECT_QUEUE} commands are waiting to run{running}; detections "
                         f"are heard but get no command until they have run")

    def _work(self) -> None:
        import subprocess

        while True:
            det = self._queue.get()
            if det is None:
                return
            with self._lock:
                if self._closed:
                    self.not_run += 1
                    continue
                self._running_since = time.monotonic()
            env = {f"KWS_{k.upper()}": v for k, v in _values(det).items()}
            try:
                rc = subprocess.run(self.command_for(det), shell=self.shell, env={**os.environ, **env},
                                    stdin=subprocess.DEVNULL, stdout=self._output).returncode
                why = None if rc == 0 else _exit_reason(rc)
            except (OSError, ValueError) as exc:
                why = f"cannot be run ({getattr(exc, 'strerror', None) or exc})"
            with self._lock:
                self._running_since = None
            if why is not None:
                self.failed += 1
                if self.failed == 1:
                    self.say(f"--on-detect: {self.name} {why}; later failures are counted in the summary")

    def close(self) -> None:
        """Wait up to ON_DETECT_DRAIN_S in all for the commands still to run; what has not run by
        then is counted (``not_run``, ``running_at_exit``) and none is started after."""
        deadline = time.monotonic() + ON_DETECT_DRAIN_S
        try:
            self._queue.put(None, timeout=ON_DETECT_DRAIN_S)
        except self._full:
            pass
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._closed = True
            self.running_at_exit = self._running_since is not None
            while True:
                try:
                    det = self._queue.get_nowait()
                except self._empty:
                    break
                if det is not None:
                    self.not_run += 1

    def problems(self) -> list[str]:
        """What went wrong with the commands, as phrases for the summary (none: an empty list)."""
        counts = [(self.failed, "command(s) failed"), (self.dropped, "skipped (too many waiting)"),
                  (self.not_run, "not run (still waiting at exit)"),
                  (int(self.running_at_exit), f"still running at exit (after {ON_DETECT_DRAIN_S:g} s)")]
        return [f"{n} {what}" for n, what in counts if n]


def _exit_reason(returncode: int) -> str:
    """How a command that did not succeed ended, after its name: 'exited with status 2', 'was killed
    by SIGKILL'."""
    import signal

    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _command_output() -> int:
    """Where an --on-detect command's stdout goes: kws-listen's stderr (file descriptor STDERR_FD), or
    /dev/null where the process has none."""
    import subprocess

    try:
        os.fstat(STDERR_FD)
    except OSError:
        return subprocess.DEVNULL
    return STDERR_FD


def _values(det: Detection) -> dict[str, str]:
    return {"label": det.label, "score": f"{det.score:.3f}", "time_s": f"{det.time_s:.3f}"}


def check_on_detect(template: str, shell: bool) -> list[str]:
    """The template's arguments (empty for a shell template); KwsError if it cannot be used safely."""
    if shell:
        found = PLACEHOLDER_RE.search(template)
        if found:
            raise KwsError(f"--on-detect-shell does not replace {found.group(0)} (model data never goes into "
                           f"a shell command); use \"$KWS_{found.group(1).upper()}\" in it, or --on-detect")
        return []
    import shlex

    try:
        argv = shlex.split(template)
    except ValueError as exc:
        raise KwsError(f"--on-detect: cannot split the command ({exc})") from None
    if not argv:
        raise KwsError("--on-detect: the command is empty")
    return argv


@dataclass
class Summary:
    audio_s: float = 0.0
    detections: int = 0
    overflows: int = 0
    dropped_blocks: int = 0
    wall_s: float = 0.0

    def to_dict(self, rec: Recognizer | None) -> dict:
        hop = rec.timer.summary_ms() if rec is not None else {"mean_ms": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
        return {"audio_s": round(self.audio_s, 3), "detections": self.detections, "overflows": self.overflows,
                "dropped_blocks": self.dropped_blocks, "hops": rec.timer.count if rec is not None else 0,
                "form": rec.form if rec is not None else None,
                "runtime": f"{rec.runtime.name} {rec.runtime.version}" if rec is not None else None,
                "hop_mean_ms": round(hop["mean_ms"], 4), "hop_p50_ms": round(hop["p50_ms"], 4),
                "hop_p99_ms": round(hop["p99_ms"], 4), "wall_s": round(self.wall_s, 3),
                "processing_s": round(rec.timer.total_s, 3) if rec is not None else 0.0,
                "real_time_factor": round(rec.timer.total_s / self.audio_s, 5) if rec is not None and self.audio_s
                else 0.0}

    def line(self, rec: Recognizer | None) -> str:
        d = self.to_dict(rec)
        return (f"{d['audio_s']:.1f} s of audio, {d['detections']} detection(s), "
                f"{d['overflows']} input overflow(s), {d['dropped_blocks']} dropped block(s); "
                f"per hop: mean {d['hop_mean_ms']:.2f} ms, p99 {d['hop_p99_ms']:.2f} ms over {d['hops']} hops")


def duration_samples(duration_s: float, sample_rate: int) -> int:
    """How many samples at ``sample_rate`` ``--duration`` lets through (to the nearest sample); a
    duration shorter than that rate's one sample is a usage error (it would hear nothing and succeed)."""
    samples = round(duration_s * sample_rate)
    if samples < 1:
        raise click.BadParameter(f"{duration_s:g} s is less than one sample at the model's {sample_rate} Hz",
                                 param_hint="'--duration'")
    return samples


def _format(det: Detection, as_json: bool) -> str:
    if as_json:
        return json.dumps(det.to_dict())
    return f"{det.time_s:9.2f} s  {det.label:<16} {det.score:.2f}"


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        tell(f"{PROG}: {text}")


def _list_devices() -> None:
    from .sources import list_input_devices

    devices = list_input_devices()
    if not devices:
        click.echo("no input devices found")
        return
    for d in devices:
        mark = "*" if d["default"] else " "
        click.echo(f"{mark} {d['index']:3d}  {d['name']}  ({d['channels']} ch, default {d['default_rate']} Hz)")


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.option("-m", "--model", metavar="PATH", help="A .tflite with manifest.json beside it, a folder from "
              "kws-convert or kws ensemble, or a training run with dist/ inside. Default: models/api, else the "
              "newest model.")
@click.option("--list-devices", is_flag=True, help="List audio input devices and exit.")
@click.option("--device", metavar="NAME|INDEX", help="Input device (index, or part of its name). Default: "
              "the system default input.")
@click.option("--device-rate", type=click.IntRange(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), help="Open the device "
              "at this rate (default: the model's if the device supports it, else one it does; resampled to the "
              "model's rate).")
@click.option("--wav", "wav_path", type=click.Path(dir_okay=False), help="Read this audio file (WAV, FLAC, "
              "OGG, MP3; any rate) instead of a microphone, as fast as possible.")
@click.option("--stdin", "use_stdin", is_flag=True, help="Read raw little-endian int16 PCM from stdin (a piped WAV or OGG file: --wav /dev/stdin).")
@click.option("--rate", type=click.IntRange(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE),
              help="Sample rate of --stdin audio in Hz (default: the model's).")
@click.option("--channels", type=click.IntRange(1, MAX_STDIN_CHANNELS), default=1, show_default=True,
              help="Channels of --stdin audio.")
@click.option("--json", "as_json", is_flag=True, help='JSON lines: {"time_s", "label", "score"}.')
@click.option("--on-detect", metavar="CMD", help="Command per detection, split like a shell would but run "
              "without one; {label}, {score}, {time_s} are replaced inside its arguments (also in $KWS_LABEL, "
              "$KWS_SCORE, $KWS_TIME_S). Runs off the audio thread, with no stdin; its output goes to stderr.")
@click.option("--on-detect-shell", metavar="CMD", help="Shell command per detection, run by /bin/sh; no "
              "{placeholders}: use \"$KWS_LABEL\", \"$KWS_SCORE\", \"$KWS_TIME_S\".")
@click.option("--threshold", type=FiniteFloatRange(0.0, 1.0, min_open=True, max_open=True),
              help="Detection threshold for every label, between 0 and 1 (default: the manifest's, per label).")
@click.option("--hop-ms", type=FiniteFloatRange(min=1.0, max=SMOOTHING_RANGES["hop_ms"][1]), help="Run the model every this many ms "
              "(default: the manifest's smoothing.hop_ms; a multiple of the frontend stride).")
@click.option("--no-streaming", is_flag=True, help="Run the whole-window model every hop even where the "
              "manifest lists a streaming (step) form.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Interpreter threads.")
@click.option("--runtime", type=click.Choice(["litert-c", "litert", "tflite-runtime", "tf"]), help="TFLite "
              "runtime: litert-c is ai-edge-litert's C API, litert its Python interpreter (default: litert-c "
              "where libLiteRt.so loads, else litert, else tflite-runtime, else tf.lite; or $KWS_TFLITE_RUNTIME).")
@click.option("--duration", type=FiniteFloatRange(min=0.0, min_open=True), help="Stop after this many "
              "seconds of audio.")
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Also write the summary as JSON here.")
@click.option("-q", "--quiet", is_flag=True, help="No start-up lines or summary on stderr.")
def main(model, list_devices, device, device_rate, wav_path, use_stdin, rate, channels, as_json, on_detect,
         on_detect_shell, threshold, hop_ms, no_streaming, threads, runtime, duration, summary_json, quiet):
    """Detect keywords continuously and print one line per detection."""
    if list_devices:
        try:
            _list_devices()
        except KwsError as exc:
            raise click.ClickException(str(exc)) from None
        return
    if wav_path and use_stdin:
        raise click.UsageError("give --wav or --stdin, not both")
    if device is not None and NEGATIVE_INDEX_RE.fullmatch(device.strip()):
        # sounddevice takes -1 as PortAudio's "no device", not the default; as a name it matched any "-1"
        raise click.BadParameter(f"{device.strip()} is not a device index (they start at 0; leave --device out "
                                 "for the default input; see kws-listen --list-devices)", param_hint="'--device'")
    if (wav_path or use_stdin) and (device or device_rate):
        raise click.UsageError("--device/--device-rate are for microphone input, not --wav/--stdin")
    if not use_stdin and (rate is not None or channels != 1):
        raise click.UsageError("--rate/--channels describe raw --stdin audio (a --wav file or a microphone "
                               "says its own; --device-rate opens a microphone at a rate)")
    if on_detect and on_detect_shell:
        raise click.UsageError("give --on-detect or --on-detect-shell, not both")
    try:
        if on_detect or on_detect_shell:
            check_on_detect(on_detect or on_detect_shell, shell=bool(on_detect_shell))
    except KwsError as exc:
        raise click.UsageError(str(exc)) from None
    # a stop signal ends the listening like Ctrl-C (kws.edge.stopping); from then on signals wait, so the
    # device is closed, pending --on-detect commands get ON_DETECT_DRAIN_S and the summary is complete
    with StopRequest(immediate=True, once=True) as stop:
        started = time.perf_counter()
        rec = source = runner = heard_s = None
        summary = Summary()
        error: str | None = None
        try:
            from .locate import resolve_model
            from .model_loader import locate
            from .sources import FileSource, MicrophoneSource, RawSource, stdin_binary

            if summary_json:  # a summary that cannot be written fails now, not after the listening
                from .manifest import check_writable_dir

                check_writable_dir(os.path.dirname(os.path.abspath(summary_json)), "--summary-json")
            resolved = resolve_model(model)
            rec = Recognizer.from_manifest(resolved, hop_ms=hop_ms, threshold=threshold,
                                           num_threads=threads, runtime=runtime, streaming=not no_streaming)
            limit = None if duration is None else duration_samples(duration, rec.sample_rate)
            if wav_path:
                source = FileSource(wav_path, rec.sample_rate)
            elif use_stdin:
                source = RawSource(stdin_binary(), rec.sample_rate if rate is None else rate, rec.sample_rate, channels)
            else:
                source = MicrophoneSource(rec.sample_rate, device, device_rate=device_rate)
            if getattr(rec, "members", None):  # an ensemble: its folder; describe_form names the members
                _say(quiet, f"ensemble {rec.path} ({len(rec.labels)} labels, {len(rec.members)} models); "
                            f"hop {rec.hop_ms:g} ms; {rec.describe_form()}")
            else:
                _say(quiet, f"model {rec.model.path} ({len(rec.labels)} labels, {rec.model.input_spec.dtype}, "
                            f"{rec.runtime.name} {rec.runtime.version}); hop {rec.hop_ms:g} ms; "
                            f"{rec.describe_form()}")
            _say(quiet, f"listening to {source.describe()}" + ("" if wav_path or use_stdin else "; Ctrl-C to stop"))
            mismatch = None if threshold is not None else calibrated_on_other_model(
                rec.manifest, ENSEMBLE_SCORED if getattr(rec, "members", None) else rec.model.path.name,
                str(locate(resolved)[0]))
            if mismatch:  # thresholds chosen on another model's scores (float's, run here on int8)
                tell(f"{PROG}: warning: {mismatch}")
            band = rec.manifest.frontend.missing_band(source.input_rate)
            if band:  # a warning, so said under -q too
                tell(f"{PROG}: warning: {band}")
            runner = CommandRunner(on_detect or on_detect_shell, shell=bool(on_detect_shell)) \
                if on_detect or on_detect_shell else None

            def report(detections) -> None:
                for det in detections:
                    summary.detections += 1
                    click.echo(_format(det, as_json))
                    sys.stdout.flush()
                    if runner is not None:
                        runner.submit(det)

            cut = False  # --duration's end reached
            for chunk in source.chunks():
                if limit is not None and rec.samples_seen + len(chunk) >= limit:
                    chunk = chunk[:limit - rec.samples_seen]
                report(rec.process(chunk))
                if limit is not None and rec.samples_seen >= limit:
                    cut = True
                    break
            # the input ended (a file's or pipe's end, or --duration's cut on any source; a microphone
            # has no end of its own): its last second is heard out (Recognizer.finish)
            if cut or wav_path or use_stdin:
                heard_s = rec.time_s
                report(rec.finish())
        except KeyboardInterrupt:
            _say(quiet, "stopped")
        except KwsError as exc:
            error = str(exc)
        finally:
            stop.holding = True
            if source is not None and hasattr(source, "stop"):
                source.stop()
            if runner is not None:
                runner.close()
        summary.wall_s = time.perf_counter() - started
        if rec is not None:
            summary.audio_s = rec.time_s if heard_s is None else heard_s
        if source is not None:
            summary.overflows = source.stats.overflows
            summary.dropped_blocks = source.stats.dropped_blocks
        if error is not None and (rec is None or rec.samples_seen == 0):
            tell(f"Error: {error}")  # nothing was heard: the error alone
            sys.exit(EXIT_ERROR)
        if error is not None:
            tell(f"Error: {error}")
        _say(quiet, summary.line(rec))
        if runner is not None and runner.problems():
            _say(quiet, f"--on-detect: {', '.join(runner.problems())}")
        if summary_json:
            from .manifest import atomic_write_text

            try:
                atomic_write_text(summary_json, json.dumps(summary.to_dict(rec), indent=2) + "\n")
            except OSError as exc:
                tell(f"Error: {os_error_line(exc)}")
                error = error or "summary not written"
        code = EXIT_ERROR if error is not None else 0
        if source is not None and not getattr(source, "closed_cleanly", True):
            # a hung device would also hang PortAudio's exit handler: leave without it
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        if code:
            sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
