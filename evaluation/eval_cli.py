"""kws-eval: streaming evaluation (false accepts per hour, false rejects, the TF streaming
test's percentages, latency) and threshold calibration."""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import click
import numpy as np

from kws.edge.audio import audio_info, load_audio, write_wav
from kws.edge.calibration_fit import calibrated_on_other_model
from kws.edge.clitypes import FiniteFloatRange
from kws.edge.errors import KwsError, os_error_line
from kws.edge.locate import chosen_model_line
from kws.edge.manifest import (UNKNOWN_LABEL, atomic_write_bytes, atomic_write_text, check_writable_dir,
                               load_manifest)

from kws.trainer.dataset import unread_folders, unread_warning
from kws.trainer.negatives import negative_files

from .calibrate import THRESHOLD_GRID, WINDOW_GRID_MS, calibrate, calibrated_fa, keywords_off, write_calibration
from .datastats import duration_text
from .lowrate import LowRateFiles
from .oracle import best_over_windows
from .plotting import MISSING as PLOTS_MISSING
from .plotting import plotting_available
from .scoring import file_scores, negatives_false_accepts, smooth, stream_scores, sweep
from .stream import (KWS_FORMAT, build_stream, check_events_fit, check_keywords_apart, load_clips, load_noise,
                     read_ground_truth, write_labels)
from .stopping import stop_cleanly
from .streaming_metrics import (NO_RATE, SECONDS_PER_HOUR, TOLERANCE_S, fa_rate_text, keyword_events,
                                keyword_free_seconds, streaming_report)

REPORT_JSON = "eval.json"
CURVE_PNG = "fa_frr_curve.png"
LABELS_CSV = "stream_labels.csv"
STREAM_WAV = "stream.wav"
DEFAULT_HOURS = 0.25
DEFAULT_SNR = "5:20"


def trained_negatives(manifest) -> set[Path]:
    """The keyword-free files the model trained or was mined on (its source run's data.negatives and
    mining.json; an ensemble's: those of all its members' runs), resolved; empty where the run
    folders are gone or list none."""
    import yaml

    runs = [manifest.extra.get("source_run", "")] + list(manifest.extra.get("source_runs") or ())
    sources: list[str] = []
    for run in (Path(str(r)) for r in runs if r):
        try:
            cfg = yaml.safe_load((run / "config.yaml").read_text()) or {}
            sources += list((cfg.get("data") or {}).get("negatives") or ())
        except (OSError, yaml.YAMLError, AttributeError):
            pass
        try:
            sources += list(json.loads((run / "mining.json").read_text()).get("negatives", ()))
        except (OSError, ValueError, AttributeError):
            pass
    found: set[Path] = set()
    for src in sources:
        try:
            found.update(f.resolve() for f in negative_files(src))
        except KwsError:
            pass
    return found


def _runs_named(manifest) -> str:
    """The training run(s) a model came from, for a message."""
    return ", ".join(map(str, [manifest.extra.get("source_run")] if manifest.extra.get("source_run")
                          else manifest.extra.get("source_runs") or ["its training run"]))


def parse_snr(text: str) -> tuple[float, float]:
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise click.BadParameter(f"expected LOW:HIGH in dB (e.g. 5:20), got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if not all(math.isfinite(p) for p in parts):
        raise click.BadParameter(f"expected finite LOW:HIGH in dB (e.g. 5:20), got {text!r}", param_hint="--snr")
    if len(parts) != 2 or parts[0] > parts[1]:
        raise click.BadParameter(f"expected LOW:HIGH with LOW <= HIGH, got {text!r}")
    return parts[0], parts[1]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-m", "--model", default=None,
              help="A .tflite with manifest.json beside it, a folder from kws-convert or kws ensemble, or a "
                   "training run with dist/ inside (default: models/api, else the newest model).")
@click.option("--keywords", "keywords_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of label folders; folders not named after a keyword are used as unknown words.")
@click.option("--noise", "noise_dir", type=click.Path(file_okay=False), default=None,
              help="Folder of background-noise recordings (default: generated pink noise).")
@click.option("--hours", type=FiniteFloatRange(0.001, 100), default=DEFAULT_HOURS, show_default=True,
              help="Length of the built stream.")
@click.option("--snr", default=DEFAULT_SNR, show_default=True, help="Speech-to-noise ratio range in dB, LOW:HIGH.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the built stream: which clips, where, at what SNR, and the noise.")
@click.option("--stream", "stream_wav", type=click.Path(dir_okay=False), default=None,
              help="Evaluate this long recording (WAV, FLAC, OGG, MP3) instead of building one (needs --labels).")
@click.option("--labels", "labels_csv", type=click.Path(dir_okay=False), default=None,
              help="Ground truth of --stream: CSV label,start_s,end_s, or the TF tutorial's label,time_ms "
                   "(generate_streaming_test_wav.py; no header, the clip's start in ms).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None,
              help="Folder for eval.json, fa_frr_curve.png and the built stream's labels.")
@click.option("--save-stream", is_flag=True, help="Also write the built stream as stream.wav in --report.")
@click.option("--calibrate", "do_calibrate", is_flag=True,
              help="Choose per-label thresholds and the smoothing window; write them into the manifest.")
@click.option("--target-fa-per-hour", type=FiniteFloatRange(0), default=0.5, show_default=True,
              help="--calibrate chooses the thresholds for at most this many false accepts per hour.")
@click.option("--negatives", "negatives", multiple=True, metavar="DIR",
              help="Keyword-free recordings (folders or files, any length; repeatable or comma-separated): "
                   "false accepts per hour are measured on them through the edge recognizer, and --calibrate "
                   "chooses thresholds for the target FA/h there (the stream then gives the false-reject rate).")
@click.option("--no-tail", is_flag=True,
              help="--calibrate counts only the false accepts seen, so on audio too short for the target it "
                   "takes the lowest threshold with none (by default it counts, where none is seen, the "
                   "number expected from the tail of the near misses).")
@click.option("--shared-threshold", is_flag=True,
              help="--calibrate gives every keyword one threshold, chosen on all their false accepts and near "
                   "misses together (by default each keyword gets its own, fitted to its own few near misses). "
                   "On speakers the calibration never heard it found more words for six of eight models, and "
                   "far fewer for one whose single keyword had the loudest near misses: try both.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-streaming", is_flag=True, help="Score with the whole-window model even where the manifest "
              "lists a streaming (step) form.")
@stop_cleanly("kws-eval", "the manifest was not changed")
def main(model, keywords_dir, noise_dir, hours, snr, seed, stream_wav, labels_csv, report_dir, save_stream,
         do_calibrate, target_fa_per_hour, negatives, no_tail, shared_threshold, as_json, no_streaming) -> None:
    """Evaluate a converted model on a long stream with the edge recognizer.

    Builds a stream (keywords and unknown words at random times, at least 2 s apart, in noise at
    the given SNR) or reads one; runs the model once and re-runs only the smoothing for every
    threshold. Reports the TF streaming test's matched / correctly / wrongly matched / false
    positive percentages (+-1500 ms), false accepts per hour of keyword-free audio against the
    false-reject rate, and detection latency after the keyword's end.

    \b
    Examples:
      kws-eval -m dist/ --keywords data/test --noise ~/noise --hours 1 --snr 5:20 --report out/
      kws-eval -m dist/ --stream long.wav --labels long.csv --report out/
      kws-eval -m dist/ --keywords data/test --calibrate --target-fa-per-hour 0.5
      kws-eval -m dist/ --keywords data/val --calibrate --target-fa-per-hour 1 --shared-threshold
      kws-eval -m dist/ --keywords data/test --negatives ~/podcasts --calibrate --target-fa-per-hour 0.5
    """
    from .models import manifest_path_for, named_model_file, scored_model_name

    snr_db = parse_snr(snr)
    if not do_calibrate:  # options of --calibrate alone would be ignored silently
        ctx = click.get_current_context()
        given = [flag for flag, on in (("--shared-threshold", shared_threshold), ("--no-tail", no_tail),
                                       ("--target-fa-per-hour", ctx.get_parameter_source("target_fa_per_hour")
                                        == click.core.ParameterSource.COMMANDLINE)) if on]
        if given:
            raise click.UsageError(f"{given[0]} is an option of --calibrate; add --calibrate")
    if stream_wav and not labels_csv:
        raise click.UsageError("--stream needs --labels (CSV label,start_s,end_s or label,time_ms)")
    if labels_csv and not stream_wav:
        raise click.UsageError("--labels describes a --stream WAV; a stream built from --keywords has its own")
    if stream_wav:  # the options that build a stream would be ignored silently
        ctx = click.get_current_context()
        building = [f"--{name.replace('_', '-')}" for name in ("hours", "snr", "seed")
                    if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE]
        building += [flag for flag, given in (("--keywords", keywords_dir), ("--noise", noise_dir),
                                              ("--save-stream", save_stream)) if given]
        if building:
            raise click.UsageError(f"{', '.join(building)} {'builds' if len(building) == 1 else 'build'} a stream; "
                                   "--stream reads one: give one or the other")
    if not stream_wav and not keywords_dir:
        raise click.UsageError("give --keywords DIR to build a stream, or --stream WAV --labels CSV")
    try:
        mpath = manifest_path_for(model)
        # the .tflite named is the one scored (model_float.tflite, not the manifest's default int8)
        named = named_model_file(model)
        scored = named or mpath
        manifest = load_manifest(mpath)
        if model is None:  # the newest of several runs may not be the one the user means
            click.echo(chosen_model_line("kws-eval", mpath), err=True)
        scored_name = scored_model_name(manifest, named, str(mpath))
        # thresholds chosen on another model's scores (float's, run here on int8) may not hold on these;
        # --calibrate replaces them, so it is said only where they are the ones measured
        mismatch = None if do_calibrate else calibrated_on_other_model(manifest, scored_name, str(mpath))
        if mismatch:
            click.echo(f"kws-eval: warning: {mismatch}", err=True)
        # what the run ends by writing must be writable before the minutes of scoring start
        if report_dir:
            check_writable_dir(report_dir, "the report")
        if do_calibrate:
            check_writable_dir(mpath.parent, "the calibrated manifest")
        negative_sources = [d.strip() for text in negatives for d in text.split(",") if d.strip()]
        # a missing source, or a folder without audio, is said before any scoring, as kws-train says it
        negative_paths = [f for src in negative_sources for f in negative_files(src)]
        sr = manifest.sample_rate
        keywords = [l for l in manifest.labels if l not in manifest.ignore_labels]
        t0 = time.time()
        labels_format = KWS_FORMAT
        low_rate = LowRateFiles(manifest.frontend)
        if stream_wav:
            audio, info = load_audio(stream_wav, sr)
            low_rate.note(stream_wav, info.sample_rate)
            if len(audio) < sr * manifest.frontend.clip_ms / 1000.0:
                raise KwsError(f"{stream_wav}: {len(audio) / sr:.2f} s of audio, shorter than the model's "
                               f"{manifest.frontend.clip_ms / 1000.0:g} s window: nothing to score")
            truth = read_ground_truth(labels_csv, manifest.frontend.clip_ms / 1000.0)
            events, labels_format = truth.events, truth.format
            check_events_fit(events, len(audio) / sr, labels_csv, labels_format, slack_s=TOLERANCE_S)
            foreign = sorted({e.label for e in events} - set(manifest.labels))
            if foreign:  # words the model was not trained to spot: it should stay quiet on them
                click.echo(f"kws-eval: warning: {labels_csv}: {', '.join(map(repr, foreign))} "
                           f"{'is not a label' if len(foreign) == 1 else 'are not labels'} of this model; "
                           "those events count as other words, never as keywords", err=True)
                events = [dataclasses.replace(e, label=UNKNOWN_LABEL) if e.label in foreign else e
                          for e in events]
            check_keywords_apart(events, labels_csv)
        else:
            rng = np.random.default_rng(seed)
            def skipped(path: Path, why: str) -> None:
                click.echo(f"kws-eval: skipped {why}", err=True)

            clips = load_clips(keywords_dir, keywords, sr, on_skip=skipped, on_read=low_rate.note)
            unread = unread_warning(Path(keywords_dir), unread_folders(Path(keywords_dir)))
            if unread:  # as kws-train says it of the same folder
                click.echo(f"kws-eval: {unread}", err=True)
            noises = load_noise(noise_dir, sr, rng, on_skip=skipped, on_read=low_rate.note)
            audio, events = build_stream(clips, noises, hours * SECONDS_PER_HOUR, snr_db, sr, seed)
        for path in negative_paths:  # their headers: said before the minutes of scoring, not after
            low_rate.note(path, audio_info(path).sample_rate)
        band = low_rate.warning()
        if band:
            click.echo(f"kws-eval: warning: {band}", err=True)
        duration = len(audio) / sr
        if do_calibrate and not keyword_events(events):
            # no false reject can happen either: every threshold would look as good as the top of the grid
            raise KwsError(f"{labels_csv or f'the built stream ({duration_text(duration)})'}: no word of the "
                           f"model's keywords ({', '.join(keywords)}) to count false rejects on: --calibrate "
                           "needs them in the stream" + ("" if stream_wav else " (a longer --hours)"))
        if do_calibrate and not negatives and keyword_free_seconds(events, duration, TOLERANCE_S) <= 0:
            # thresholds chosen where no false accept can happen would all go to the top of the grid
            raise KwsError(f"{stream_wav or 'the built stream'}: no keyword-free audio to count false accepts "
                           f"on (every second is within {TOLERANCE_S:g} s of a labelled word): --calibrate needs "
                           "a longer stream, or --negatives")
        if report_dir and not stream_wav:
            write_labels(Path(report_dir) / LABELS_CSV, events)
            if save_stream:
                write_wav(Path(report_dir) / STREAM_WAV, audio, sr)
        t1 = time.time()
        times, scores = stream_scores(scored, audio, streaming=not no_streaming)
        negative_parts = [file_scores(scored, f, streaming=not no_streaming) for f in negative_paths]
        seen_in_training = len({Path(p.source).resolve() for p in negative_parts} & trained_negatives(manifest))
        if seen_in_training:
            click.echo(f"kws-eval: warning: {seen_in_training} of the {len(negative_parts)} --negatives files "
                       f"trained this model ({_runs_named(manifest)}): its false accepts on them "
                       f"understate those on new audio; calibrate on recordings held out of training", err=True)
        t2 = time.time()
        at_manifest = streaming_report(smooth(times, scores, manifest), events, duration, keywords)
        negatives_at_manifest = (negatives_false_accepts(negative_parts, manifest,
                                                         {l: manifest.threshold_for(l) for l in keywords})
                                 if negative_parts else None)
        curve = sweep(times, scores, manifest, events, duration, THRESHOLD_GRID)
        best = (best_over_windows(times, scores, manifest.labels, keywords, events, WINDOW_GRID_MS,
                                  manifest.smoothing.suppression_ms)
                if any(e.label in keywords for e in events) else None)
        result, off = None, []
        if do_calibrate:
            result = calibrate(times, scores, manifest, events, duration, target_fa_per_hour,
                               negatives=negative_parts, tail=not no_tail, shared=shared_threshold)
            write_calibration(mpath, manifest, result, target_fa_per_hour, duration / SECONDS_PER_HOUR,
                              negative_sources, seen_in_training, scored_name)
            off = keywords_off(result)
            if off:
                click.echo(f"kws-eval: warning: {', '.join(off)}: no threshold that meets {target_fa_per_hour:g} "
                           f"false accepts per hour detects any of their words in this stream, so they are in "
                           f"effect switched off; more calibration audio or a better model can let them on",
                           err=True)
        t3 = time.time()
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(os_error_line(exc)) from None
    report = {
        "model": str(scored), "stream": stream_wav or "built", "duration_s": round(duration, 3),
        "labels": {"file": labels_csv or None, "format": labels_format, "events": len(events)},
        "edge_recognizer": True,  # scores come from kws.edge.recognizer
        "smoothing": {"average_window_ms": manifest.smoothing.average_window_ms,
                      "suppression_ms": manifest.smoothing.suppression_ms, "hop_ms": manifest.smoothing.hop_ms},
        "thresholds": {l: manifest.threshold_for(l) for l in keywords},
        "at_manifest_thresholds": at_manifest,
        "best_possible": best,
        "curve": [{k: r[k] for k in ("threshold", "fa_per_hour", "frr", "false_accepts", "tutorial", "latency_s")}
                  for r in curve],
        "timing_s": {"stream": round(t1 - t0, 2), "model": round(t2 - t1, 2), "smoothing": round(t3 - t2, 2),
                     "hops": int(len(times))},
    }
    if negatives_at_manifest is not None:
        report["negatives"] = {"sources": negative_sources, "files": len(negative_parts),
                               "trained_on": seen_in_training,
                               "at_manifest_thresholds": negatives_at_manifest}
    if result is not None:
        fa, fa_hours = calibrated_fa(result)
        report["calibration"] = {"thresholds": result["thresholds"],
                                 "average_window_ms": result["average_window_ms"],
                                 "fa_per_hour": fa, "frr": result["report"]["frr"],
                                 "fa_measured_on": "negatives" if result.get("negatives") else "stream",
                                 "fa_hours": fa_hours, "target": target_fa_per_hour, "manifest": str(mpath),
                                 "model_file": scored_name,
                                 "fa_per_hour_expected": result["expected"]["fa_per_hour"],
                                 "near_misses": result["expected"]["near_misses"],
                                 "keywords_off": off,
                                 "tail": result["expected"]["tail"],
                                 "shared_threshold": result["expected"]["shared"]}
    if report_dir:
        out = Path(report_dir)
        try:
            atomic_write_text(out / REPORT_JSON, json.dumps(report, indent=1) + "\n")
            if plotting_available():
                atomic_write_bytes(out / CURVE_PNG, plot_curve(curve, at_manifest, report.get("calibration")))
            else:
                click.echo(f"kws-eval: warning: {out / CURVE_PNG} not drawn: {PLOTS_MISSING}", err=True)
        except OSError as exc:
            raise click.ClickException(f"{out}: cannot write the report ({os_error_line(exc)})") from None
    if as_json:
        click.echo(json.dumps(report))
    else:
        click.echo(format_report(report))


NO_KEYWORDS = "no keywords in the stream"
# the text report's precision for thresholds: the grid's (FA/h: streaming_metrics.FA_DECIMALS)
THRESHOLD_DECIMALS = 3


def _per_hour(rate) -> str:
    """' = R per hour', or why there is no rate (the stream is all keywords)."""
    return " (no keyword-free audio to rate them per hour)" if rate is None else f" = {fa_rate_text(rate)} per hour"


def _inside_keywords(kinds: dict) -> str:
    """' (of which R repeats of a found word, K on other keywords)' for the false accepts that lie
    inside keyword spans (streaming_metrics' module docstring); '' where there are none."""
    parts = ([_count(kinds["repeats"], "repeat") + " of a found word"] if kinds["repeats"] else []) + (
        [f"{kinds['on_other_keywords']} on {'another keyword' if kinds['on_other_keywords'] == 1 else 'other keywords'}"]
        if kinds["on_other_keywords"] else [])
    return f" (of which {', '.join(parts)})" if parts else ""


def _percent(rate) -> str:
    """A false-reject rate in percent, or NO_RATE where the stream holds no keyword (rate None)."""
    return NO_RATE if rate is None else f"{100 * rate:.1f}%"


def _count(n: int, noun: str) -> str:
    """'1 noun' or 'n nouns'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def format_report(report: dict) -> str:
    """Human-readable summary of an eval report."""
    rep = report["at_manifest_thresholds"]
    tut = rep["tutorial"]
    lat = rep["latency_s"]
    lines = [
        f"model: {report['model']}",
        f"labels: {report['labels']['file'] or 'built with the stream'}, read as {report['labels']['format']}",
        f"stream: {duration_text(report['duration_s'])}, {rep['keywords']} keywords, "
        f"{rep['unknown_word_events']} unknown words, "
        + (f"{_count(rep['silence_events'], 'silence span')}, " if rep["silence_events"] else "")
        + f"{rep['keyword_free_hours']:.3f} keyword-free h",
        f"thresholds {report['thresholds']}, window {report['smoothing']['average_window_ms']:g} ms:",
        (f"  matched {tut['matched_pct']:.1f}%  correctly {tut['correctly_matched_pct']:.1f}%  wrongly "
         f"{tut['wrongly_matched_pct']:.1f}%  false positives {tut['false_positive_pct']:.1f}%  (+-1500 ms)"
         if rep["keywords"] else f"  {NO_KEYWORDS}, so none of the tutorial's matched / false positive percentages"),
        f"  false accepts {rep['false_accepts']}{_inside_keywords(rep['false_accept_kinds'])}"
        f"{_per_hour(rep['fa_per_hour'])}; false-reject rate "
        f"{_percent(rep['frr'])}{'' if rep['keywords'] else f' ({NO_KEYWORDS})'}; "
        + (f"latency after keyword end median {lat['median']} s, p90 {lat['p90']} s" if lat["median"] is not None
           else "no keyword detected, so no latency"),
        "threshold  FA/h    FRR",
    ]
    for r in report["curve"][::4] + ([report["curve"][-1]] if len(report["curve"]) % 4 != 1 else []):
        lines.append(f"  {r['threshold']:<7.{THRESHOLD_DECIMALS}f} {fa_rate_text(r['fa_per_hour']):<7} "
                     f"{_percent(r['frr'])}")
    best = report.get("best_possible")
    if best and best["recall_at_zero_fa"] is not None:
        lines.append(f"best any thresholds could do on this stream: {100 * best['recall_at_zero_fa']:.1f}% of the "
                     f"keywords with no false accept (window {best['average_window_ms']:g} ms; thresholds fitted "
                     f"to this very stream: no calibration on other audio does better with this model)")
    if "negatives" in report:
        n = report["negatives"]["at_manifest_thresholds"]
        lines.append(f"negatives: {report['negatives']['files']} files, {n['hours']:.3f} h: {n['false_accepts']} "
                     f"false accepts = {fa_rate_text(n['fa_per_hour'])} per hour at the manifest thresholds")
    if "calibration" in report:
        c = report["calibration"]
        lines.append(f"calibrated{' (one threshold shared by the keywords)' if c.get('shared_threshold') else ''}: "
                     f"thresholds {c['thresholds']}, window {c['average_window_ms']:g} ms -> "
                     f"FA/h {fa_rate_text(c['fa_per_hour'])} on {c['fa_hours']:.3f} h of {c['fa_measured_on']}"
                     + (f" (expected {fa_rate_text(c['fa_per_hour_expected'])} with the near misses' tail)"
                        if c["tail"] else "")
                     + ", "
                     f"FRR {_percent(c['frr'])} (target {c['target']}), chosen on {c['model_file']}'s scores; "
                     f"written to {c['manifest']} (backup .bak)")
    return "\n".join(lines)


def plot_curve(curve: list[dict], at_manifest: dict, calibration: dict | None) -> bytes:
    """PNG of FA/h (x) against FRR (y) over the threshold sweep."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fa = [r["fa_per_hour"] or 0.0 for r in curve]
    frr = [100 * (r["frr"] or 0.0) for r in curve]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    ax.plot(fa, frr, "o-", ms=3, label="threshold sweep")
    for r, x, y in list(zip(curve, fa, frr))[::6]:
        ax.annotate(f"{r['threshold']:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.plot([at_manifest["fa_per_hour"] or 0], [100 * (at_manifest["frr"] or 0)], "s", color="k",
            label="manifest thresholds")
    if calibration:
        ax.plot([calibration["fa_per_hour"] or 0], [100 * (calibration["frr"] or 0)], "*", ms=12, color="C3",
                label=f"calibrated (target {calibration['target']} FA/h)")
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("false accepts per hour (keyword-free audio)")
    ax.set_ylabel("false-reject rate (%)")
    ax.set_title("FA/h vs FRR")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


if __name__ == "__main__":
    main()
