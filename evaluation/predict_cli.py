"""kws-predict: classify audio files (WAV, FLAC, OGG, MP3), folders, http(s) URLs, or a labelled test list."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import click

from kws.edge.clitypes import FiniteFloatRange
from kws.edge.errors import KwsError, os_error_line
from kws.edge.locate import chosen_model_line
from kws.edge.manifest import atomic_write_bytes, atomic_write_text, check_writable_dir
from kws.trainer.config import DEFAULT_GROUP_PATTERN

from .lowrate import LowRateFiles
from .predict import (DEFAULT_TOP_K, MAX_URL_BYTES, URL_TIMEOUT_S, expand_inputs, label_by_folder, predict_sources,
                      read_list)

REPORT_JSON = "predictions.json"
METRICS_JSON = "metrics.json"
CONFUSION_PNG = "confusion_matrix.png"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1)
@click.option("-m", "--model", "model", default=None,
              help="A .tflite (with manifest.json beside it), a converted folder, or a training run "
                   "folder (Keras, needs TensorFlow). Default: models/api, else the newest model.")
@click.option("--list", "list_file", type=click.Path(dir_okay=False), default=None,
              help="Test list: one 'path[,label]' per line, paths relative to the list's folder.")
@click.option("--label-from-folder", is_flag=True,
              help="A clip without a label (a --list line without one, or a file or folder given as input) "
                   "takes its parent folder's name if it is a model label.")
@click.option("--top-k", type=click.IntRange(1, 100), default=DEFAULT_TOP_K, show_default=True,
              help="Labels printed per clip, most probable first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input and line.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for predictions.json, and with labels metrics.json and confusion_matrix.png.")
@click.option("--max-mb", type=FiniteFloatRange(0.001), default=MAX_URL_BYTES / 2 ** 20, show_default=True,
              help="Largest URL download accepted.")
@click.option("--timeout", "timeout_s", type=FiniteFloatRange(0.1), default=URL_TIMEOUT_S, show_default=True,
              help="Seconds to wait for a URL.")
@click.option("--group-pattern", default=DEFAULT_GROUP_PATTERN, show_default=True,
              help="Regex on the file name whose first group is the speaker: labelled results are also "
                   "reported per speaker (kws-train's data.group_pattern).")
def main(inputs, model, list_file, label_from_folder, top_k, as_json, report_dir, max_mb, timeout_s,
         group_pattern) -> None:
    """Classify clips: local audio files (WAV, FLAC, OGG, MP3), folders of them, http(s) URLs, or a
    --list with labels.

    A clip longer than the model's clip length is scanned with sliding windows (100 ms hop) as it
    streams, in bounded memory, and the most confident keyword window is reported (or the best
    background window if none). Exits non-zero when any input failed (each named on one line:
    missing, unreadable, malformed header); the other inputs are still processed.

    \b
    Examples:
      kws-predict -m dist/model_int8.tflite clip.wav take2.flac https://host/clip.ogg folder/ --top-k 3
      kws-predict --list test.txt --report out/
      kws-predict -m models/20250101T000000Z clip.wav --json
    """
    from .models import load_classifier

    if not inputs and not list_file:
        raise click.UsageError("give audio files, folders or URLs, or --list FILE")
    try:
        pattern = re.compile(group_pattern) if group_pattern else None
    except re.error as exc:
        raise click.BadParameter(f"not a valid regex ({exc})", param_hint="--group-pattern") from None
    if pattern is not None and pattern.groups < 1:
        raise click.BadParameter("needs a (group) capturing the speaker id", param_hint="--group-pattern")
    try:
        if report_dir:  # before the clips are classified, not after
            check_writable_dir(report_dir, "the report")
        clf = load_classifier(model)
        sources, errors = expand_inputs(inputs)
        if label_from_folder:
            sources = [label_by_folder(src, clf.labels) for src in sources]
        if list_file:
            sources += read_list(list_file, clf.labels, label_from_folder)
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(os_error_line(exc)) from None
    if model is None:  # the newest of several runs may not be the one the user means
        click.echo(chosen_model_line("kws-predict", clf.path), err=True)
    for item, msg in errors:
        click.echo(f"error: {item}: {msg}", err=True)
    results = []
    failed = len(errors)
    low_rate = LowRateFiles(clf.frontend)
    for res in predict_sources(clf, sources, top_k, max_bytes=int(max_mb * 2 ** 20), timeout_s=timeout_s,
                               low_rate=low_rate):
        results.append(res)
        if "error" in res:
            failed += 1
            click.echo(f"error: {res['path']}: {res['error']}", err=True)
            continue
        if "warning" in res:
            click.echo(f"warning: {res['path']}: {res['warning']}", err=True)
        if as_json:
            click.echo(json.dumps({k: res[k] for k in ("path", "label", "score", "top", "true", "warning")
                                   if k in res}))
        else:
            tops = "  ".join(f"{t['label']} {t['score']:.3f}" for t in res["top"])
            truth = f"  (true: {res['true']})" if "true" in res else ""
            click.echo(f"{res['path']}: {tops}{truth}")
    band = low_rate.warning()
    if band:  # once for the run, not per file: a folder of phone calls would repeat it on every line
        click.echo(f"warning: {band}", err=True)
    report = metrics_of(results, clf.labels, pattern, training_speakers(clf, pattern))
    if report is not None and not as_json:
        spk = report.get("by_speaker")
        unseen = "" if not spk or spk["unseen_speakers"] is None else \
            f", {spk['unseen_speakers']} of them never heard in training"
        speakers = (f" from {spk['speakers']} speakers{unseen} (worst: " + ", ".join(
            f"{w['speaker']} {100 * w['accuracy']:.1f}%" for w in spk["worst"][:3]) + ")") if spk else ""
        click.echo(f"accuracy {100 * report['accuracy']:.2f}% on {report['count']} labelled clips{speakers}")
    if report_dir:
        try:
            write_report(Path(report_dir), results, report, clf.labels)
        except OSError as exc:
            raise click.ClickException(f"{report_dir}: cannot write the report "
                                       f"({exc.strerror or exc.__class__.__name__})") from None
        if not as_json:
            click.echo(f"report: {report_dir}")
    if failed:
        click.echo(f"{failed} input(s) failed", err=True)
        sys.exit(1)


def training_speakers(clf, group_pattern: re.Pattern | None) -> set[str] | None:
    """The speakers (groups of ``group_pattern``) of the clips the model trained on, read from its
    training run's split.json: the Keras run folder itself, or the run a converted model's manifest
    names as ``source_run``. None where that split is not at hand (a model copied without its run):
    no speaker is then called unseen on a guess."""
    from kws.trainer.dataset import load_index
    from kws.trainer.run import SPLIT_FILE

    manifest = getattr(clf, "manifest", None)
    run = clf.path if manifest is None else manifest.extra.get("source_run")
    if group_pattern is None or not isinstance(run, (str, Path)) or not (Path(run) / SPLIT_FILE).is_file():
        return None
    try:
        index = load_index(Path(run) / SPLIT_FILE)
    except (KwsError, OSError):
        return None
    return index.training_speakers(group_pattern)


def metrics_of(results: list[dict], labels: list[str], group_pattern: re.Pattern | None = None,
               seen_speakers: set[str] | None = None) -> dict | None:
    """Accuracy, per-class P/R/F1 and the confusion matrix of the labelled results (None if none),
    plus accuracy per speaker where ``group_pattern`` finds one in the file names, with how many of
    them are not in ``seen_speakers`` (the training speakers; None: not known)."""
    from kws.trainer.dataset import group_of
    from kws.trainer.metrics import classification_report, group_report

    labelled = [r for r in results if "true" in r and "error" not in r]
    if not labelled:
        return None
    true = [labels.index(r["true"]) for r in labelled]
    pred = [labels.index(r["label"]) for r in labelled]
    report = classification_report(true, pred, labels)
    by_speaker = group_report(true, pred, [group_of(str(r["path"]), group_pattern) for r in labelled],
                              seen_speakers)
    if by_speaker:
        report["by_speaker"] = by_speaker
    return report


def write_report(out: Path, results: list[dict], report: dict | None, labels: list[str]) -> None:
    """predictions.json always; metrics.json and confusion_matrix.png when labels were given."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / REPORT_JSON, json.dumps(results, indent=1) + "\n")
    if report is not None:
        from kws.trainer.metrics import plot_confusion

        from .plotting import MISSING, plotting_available

        atomic_write_text(out / METRICS_JSON, json.dumps(report, indent=1) + "\n")
        if not plotting_available():
            click.echo(f"warning: {out / CONFUSION_PNG} not drawn: {MISSING}", err=True)
            return
        atomic_write_bytes(out / CONFUSION_PNG, plot_confusion(report["confusion_matrix"], labels,
                                                               f"confusion matrix (n={report['count']})"))


if __name__ == "__main__":
    main()
