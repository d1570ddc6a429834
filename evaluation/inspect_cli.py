"""``kws inspect`` (waveform, spectrogram and model features of a clip) and ``kws data-stats``
(a dataset folder's summary and problems)."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import click
import numpy as np

from kws.edge.audio import downmix, read_audio, resample
from kws.edge.clitypes import FiniteFloatRange
from kws.edge.errors import KwsError, os_error_line
from kws.edge.frontend import Frontend, FrontendConfig
from kws.edge.manifest import atomic_write_bytes, check_writable_dir

from .plotting import MISSING, plotting_available

SPEC_WINDOW_MS = 25.0
SPEC_HOP_MS = 10.0
DB_FLOOR = -100.0
PLOT_FORMATS = ("png", "svg", "pdf")  # --plot writes the format its file name ends in


def clip_figure(audio: np.ndarray, cfg: FrontendConfig, title: str, fmt: str = "png") -> bytes:
    """A figure (``fmt``: one of PLOT_FORMATS) with three panels: waveform, log-power spectrogram,
    and the model's input features."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    sr = cfg.sample_rate
    t = np.arange(len(audio)) / sr
    nper = int(sr * SPEC_WINDOW_MS / 1000)
    padded = np.pad(audio, (0, max(0, nper - len(audio))))  # a clip shorter than one window: one frame
    f, ts, sxx = spectrogram(padded, fs=sr, nperseg=nper, noverlap=nper - int(sr * SPEC_HOP_MS / 1000))
    feats = Frontend(cfg).features(audio) if len(audio) >= cfg.window_samples else np.zeros((0, cfg.num_features))
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), dpi=100)
    axes[0].plot(t, audio, lw=0.5)
    axes[0].set_xlim(0, max(t[-1], 1e-3))
    axes[0].set_ylim(-1, 1)
    axes[0].set_title(f"{title}: waveform")
    axes[0].set_xlabel("s")
    axes[1].pcolormesh(ts, f, np.maximum(10 * np.log10(sxx + 1e-12), DB_FLOOR), shading="auto", cmap="magma")
    axes[1].set_title("spectrogram (dB)")
    axes[1].set_ylabel("Hz")
    axes[2].imshow(feats.T, origin="lower", aspect="auto", cmap="viridis",
                   extent=(0, max(len(feats) * cfg.stride_ms / 1000, 1e-3), 0, cfg.num_features))
    axes[2].set_title(f"model features: {cfg.feature_type}, {cfg.num_features} x {len(feats)} frames "
                      f"({cfg.window_ms:g}/{cfg.stride_ms:g} ms)")
    axes[2].set_xlabel("s")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    plt.close(fig)
    return buf.getvalue()


@click.command("inspect", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("clip", type=click.Path())
@click.option("-m", "--model", default=None,
              help="Model whose frontend config to use (run folder, .tflite or converted folder); "
                   "also prints its top prediction. Default: the default frontend, no prediction.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write the waveform / spectrogram / features figure to this file: .png, .svg or .pdf.")
@click.option("--top-k", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Labels printed of the -m model's prediction, most probable first.")
def inspect_cmd(clip, model, plot_path, top_k) -> None:
    """Show a clip's format and level, plot it, and classify it with -m.

    \b
    Examples:
      kws inspect clip.wav --plot spectrogram.png
      kws inspect clip.wav -m models/api/dist --plot spectrogram.png
    """
    from kws.edge.audio import cut_short_note

    from .datastats import peak_dbfs
    from .predict import classify_audio

    fmt = Path(plot_path).suffix.lower().lstrip(".") if plot_path else None
    if plot_path and not plotting_available():
        raise click.ClickException(f"--plot: {MISSING}")
    if plot_path and fmt not in PLOT_FORMATS:
        raise click.BadParameter(f"{plot_path}: the figure's file name must end in "
                                 + ", ".join(f".{f}" for f in PLOT_FORMATS) + " (the format it is written in)",
                                 param_hint="--plot")
    try:
        clf = None
        if model is not None:
            from .models import load_classifier

            clf = load_classifier(model)
        cfg = clf.frontend if clf is not None else FrontendConfig()
        frames, info = read_audio(clip, channels=True)
        audio = resample(downmix(frames), info.sample_rate, cfg.sample_rate)
        if plot_path:
            check_writable_dir(Path(plot_path).resolve().parent, "the figure")
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{clip}: {info.container}, {info.duration_s:.3f} s, {info.sample_rate} Hz, {info.channels} ch, "
               f"{info.sample_format}, peak {peak_dbfs(frames):.1f} dBFS")
    note = cut_short_note(info)
    if note:
        click.echo(f"warning: {clip}: {note}", err=True)
    if clf is not None:
        res = classify_audio(clf, audio, top_k)
        click.echo("prediction: " + "  ".join(f"{t['label']} {t['score']:.3f}" for t in res["top"]))
    if plot_path:
        try:
            atomic_write_bytes(plot_path, clip_figure(audio, cfg, click.format_filename(clip, shorten=True), fmt))
        except OSError as exc:
            raise click.ClickException(os_error_line(exc)) from None
        click.echo(f"figure: {plot_path}")


@click.command("data-stats", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--rate", "expected_rate", type=click.IntRange(1), default=None,
              help="Sample rate the model expects; other rates are flagged. Default: the config's "
                   "features.sample_rate (16000).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="kws-train's YAML config: its features (the model's frontend: sample rate, top band "
                   "upper_hz) are what the files are checked against, and its data.group_pattern, "
                   "data.validation_percentage and data.testing_percentage split them unless the options "
                   "below are given; its data.wanted_words are the words, the other folders _unknown_ as "
                   "kws-train trains them (default: kws-train's defaults).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override one config value as kws-train does; repeatable, e.g. --set features.upper_hz=3800.")
@click.option("--group-pattern", default=None,
              help="Regex on the file name whose first group is the speaker id (kws-train's data.group_pattern; "
                   "default: the --config/--set one, else the text before _nohash_).")
@click.option("--validation-percentage", type=FiniteFloatRange(0, 100, max_open=True), default=None,
              help="Share of files for validation, drawn by speaker where no validation_list.txt decides "
                   "(kws-train's data.validation_percentage; default: the --config/--set one, else 10).")
@click.option("--testing-percentage", type=FiniteFloatRange(0, 100, max_open=True), default=None,
              help="Share of files for testing, drawn by speaker where no testing_list.txt decides "
                   "(kws-train's data.testing_percentage; default: the --config/--set one, else 10).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def data_stats_cmd(folder, expected_rate, config_path, overrides, group_pattern, validation_percentage,
                   testing_percentage, as_json) -> None:
    """Summarise a dataset folder (one sub-folder per label) and flag problems: wrong rates,
    clipping (>0.1% samples at full scale, in any channel), silent files (peak < -50 dBFS), exact
    duplicates, labels with few files (< 20 or < 10% of the median), a label mostly recorded at a rate that
    leaves the top mel bands empty (8 kHz) where the other labels are not, unreadable files; and how many speakers
    each split gets under kws-train's rule (warning when file names carry no speaker id). Files and
    folders whose names start with '.' (macOS's ._ files) are passed by, as kws-train passes them.

    \b
    Examples:
      kws data-stats data/
      kws data-stats data/phone_words --set features.sample_rate=8000 --set features.upper_hz=3800
      kws data-stats data/ --config my.yaml   # split as kws-train --config my.yaml would
    """
    from kws.trainer.config import load_config

    from .datastats import DEFAULT_FRONTEND_SOURCE, dataset_stats, format_stats

    if config_path is not None and not config_path.strip():  # '' would be read as the current folder
        raise click.BadParameter("is empty", param_hint="--config")
    try:
        if group_pattern:
            try:
                if re.compile(group_pattern).groups < 1:
                    raise click.BadParameter("needs a (group) capturing the speaker id", param_hint="--group-pattern")
            except re.error as exc:
                raise click.BadParameter(f"not a valid regex ({exc})", param_hint="--group-pattern") from None
        cfg = load_config(config_path, overrides)  # kws-train's reading, its errors
        # the split kws-train would make with this config: its data values where no option is given
        validation = cfg.data.validation_percentage if validation_percentage is None else validation_percentage
        testing = cfg.data.testing_percentage if testing_percentage is None else testing_percentage
        if validation + testing >= 100:  # kws-train refuses it: no file would train
            named = [f"--{name}-percentage {value:g}" if option is not None else f"data.{name}_percentage {value:g}"
                     for name, option, value in (("validation", validation_percentage, validation),
                                                 ("testing", testing_percentage, testing))]
            raise click.BadParameter(f"{' + '.join(named)} must be < 100 (kws-train's rule: the rest trains)",
                                     param_hint="--validation-percentage")
        frontend = cfg.features
        given = ([config_path] if config_path else []) + (["--set"] if overrides else [])
        stats = dataset_stats(folder, frontend.sample_rate if expected_rate is None else expected_rate,
                              cfg.data.group_pattern if group_pattern is None else group_pattern,
                              validation, testing,
                              frontend, "from " + " + ".join(given) if given else DEFAULT_FRONTEND_SOURCE,
                              cfg.data.wanted_words)
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(os_error_line(exc)) from None
    click.echo(json.dumps(stats) if as_json else format_stats(stats))
