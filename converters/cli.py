"""``kws-convert``: a training run -> int8 / float TFLite, frozen .pb, C array, manifest.json, each
verified on the run's test split (also ``kws convert``)."""
from __future__ import annotations

import sys

import click

from kws.edge.errors import KwsError, os_error_line
from kws.edge.stopping import EXIT_INTERRUPTED, StopRequest, tell

PROG = "kws-convert"
EXAMPLES = """
\b
Examples:
  kws-convert                                   # newest model (or models/api) -> <model>/dist/
  kws-convert -m models/20261123T101500Z --formats int8,float,pb,c --out dist/
  kws-convert -m models/demo --max-accuracy-drop 0.5 --calibration-clips 800
  kws-convert -m models/tcn_run --stream-step-ms 20   # tcn: a 20 ms streaming step (default 30 ms)
\b
Exit status: 0 ok; 1 error (model folder, data, output folder, converter); 2 bad option;
3 the int8 model lost too much accuracy (kept as model_int8.rejected.tflite with the float
artifacts and convert_report.json), a model uses ops tflite-runtime 2.14 cannot run, or a streaming
form does not reproduce its window model (not written); no C files for an int8 model that failed a
check; where the output folder holds an earlier conversion, exit 3 leaves it as it was and writes to
<out>.rejected; 130 stopped by Ctrl-C, SIGTERM or SIGHUP (nothing written, temporary folders removed).
"""


def _fail(message: str, code: int) -> None:
    tell(f"{PROG}: error: {message}")  # where stderr is gone (a hang-up), the exit status still says it
    sys.exit(code)


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.option("-m", "--model", metavar="RUN_DIR", help="Training run folder (model.keras, config.yaml, "
              "split.json). Default: models/api, else the newest finished training run.")
@click.option("--formats", default="int8,float,pb,c", show_default=True, metavar="LIST",
              help="Comma-separated: int8, float, pb, c.")
@click.option("--out", metavar="DIR", help="Output folder (default: <model>/dist/).")
@click.option("--max-accuracy-drop", type=str, default=None, metavar="POINTS",
              help="Largest int8 accuracy loss vs Keras, overall and per class, in percentage points (0..100) "
              "(default: the run's convert.max_accuracy_drop, 1.0).")
@click.option("--calibration-clips", type=str, default=None, metavar="N",
              help="Training clips used to calibrate int8 (default: convert.calibration_clips, 400).")
@click.option("--embedding-quantization", type=str, default=None, metavar="full|dynamic",
              help="Embedding family: how the int8 pipeline's speech embedding is quantized. full: int8 "
              "weights and activations, calibrated; dynamic: int8 weights, each layer's input quantized by the "
              "runtime as it runs (default: the run's convert.embedding_quantization).")
@click.option("--stream-step-ms", type=str, default=None, metavar="MS",
              help="Step of the streaming form (tcn): new audio per step, a multiple of the frontend stride "
              "(default: 30 ms, or the smoothing hop where that is shorter; the manifest's hop becomes the step "
              "where the run's hop is not a whole number of steps).")
@click.option("--no-streaming", is_flag=True, help="Write no streaming (step) form of the model.")
@click.option("--no-edge-check", is_flag=True, help="Skip loading the models with tflite-runtime in .venv-edge.")
@click.option("-q", "--quiet", is_flag=True, help="Only the result table.")
def main(model, formats, out, max_accuracy_drop, calibration_clips, embedding_quantization, stream_step_ms,
         no_streaming, no_edge_check, quiet):
    """Convert a trained model to int8/float TFLite, a frozen .pb, a C array and a manifest."""
    from .errors import EXIT_ERROR, ConvertError
    from .convert import CommittedInterrupt, ConvertOptions, convert, parse_formats
    from .report import format_table

    try:
        fmts = parse_formats(formats)
        drop = _number(max_accuracy_drop, "--max-accuracy-drop", float)
        clips = _number(calibration_clips, "--calibration-clips", int)
        step_ms = _number(stream_step_ms, "--stream-step-ms", float)
    except ConvertError as exc:
        _fail(str(exc), exc.exit_code)
        return
    say = (lambda msg: None) if quiet else (lambda msg: click.echo(msg, err=True))
    stop = StopRequest(immediate=True).install()  # SIGTERM (kill, systemd, a CI timeout), SIGHUP: like Ctrl-C
    try:
        result = convert(ConvertOptions(model=model, formats=fmts, out=out, max_accuracy_drop=drop,
                                        calibration_clips=clips, embedding_quantization=embedding_quantization,
                                        check_edge_env=not no_edge_check,
                                        stream_step_ms=step_ms, streaming=not no_streaming), say=say)
    except ConvertError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            click.echo(format_table(partial.report))
        _fail(str(exc), exc.exit_code)
        return
    except KwsError as exc:
        _fail(str(exc), EXIT_ERROR)
        return
    except CommittedInterrupt:
        where = out or "the run's dist folder"
        _fail(f"interrupted once the conversion had been written to {where}", EXIT_INTERRUPTED)
        return
    except KeyboardInterrupt:
        _fail("interrupted; nothing was written", EXIT_INTERRUPTED)
        return
    except OSError as exc:  # e.g. a full disk while staging: the staging folder is gone, the old dist kept
        _fail(f"{os_error_line(exc)}; nothing was written", EXIT_ERROR)
        return
    finally:
        stop.restore()
    click.echo(format_table(result.report))
    click.echo(f"wrote {', '.join(result.files)} to {result.out}")


def _number(text, option: str, kind):
    from .errors import FormatError

    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise FormatError(f"{option} must be {'an integer' if kind is int else 'a number'}, got {text!r}") from None


if __name__ == "__main__":  # pragma: no cover
    main()
