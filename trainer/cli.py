"""``kws-train``: folders of WAVs (or a URL of an archive of them) -> a trained, evaluated model."""
from __future__ import annotations

import dataclasses

import click

from kws.edge.errors import KwsError, os_error_line
from kws.edge.stopping import exit_interrupted

EXAMPLES = """
\b
Examples:
  kws-train --data data/demo
  kws-train --data ~/speech_commands_v2 --words yes,no,up,down --set train.epochs=30
  kws-train --data https://host/my_words.tar.gz --config configs/default.yaml
  kws-train --data data/hey_robot --negatives ~/recordings/tv,~/recordings/podcasts
  kws-train --data data/words --teacher models/a,models/b   # distil two runs into one model
  kws-train --resume models/20261123T101500Z      # after Ctrl-C or a crash
  tensorboard --logdir models/
"""


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.option("--data", "data_path", metavar="DIR|URL", help="Folder with one sub-folder of audio files (WAV, FLAC, "
              "OGG, MP3) per label, or an http(s) URL of a .tar.gz/.zip of such folders.")
@click.option("--words", metavar="W1,W2", help="Wanted words; other folders become _unknown_. "
              "Default: every label folder.")
@click.option("--negatives", "negatives", multiple=True, metavar="DIR",
              help="Folder (or file) of long real recordings without the keywords (speech, TV, music, rooms), "
              "cut into training windows each epoch; repeatable or comma-separated (data.negatives).")
@click.option("--teacher", "teachers", multiple=True, metavar="RUN",
              help="Finished run folder (same labels and features) whose scores the model also learns from; "
              "repeatable or comma-separated, the teachers' mean is used (train.teachers).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config "
              "(default: built-in defaults, as in configs/default.yaml).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override one config value; repeatable, e.g. --set train.epochs=30.")
@click.option("--arch", type=str, metavar="NAME", help="Shortcut for --set model.architecture=NAME "
              "(tcn, ds_cnn, conv, low_latency_conv, tiny_conv, embedding).")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default: models/<UTC timestamp>, "
              "models/ being ./models or $KWS_MODELS_DIR).")
@click.option("--resume", type=click.Path(file_okay=False), help="Continue a run folder from its last checkpoint, "
              "with its own data and config (only --set train.epochs=N may be added).")
@click.option("--distribute", type=click.Choice(["none", "mirrored", "multiworker"]), default="none",
              show_default=True, help="tf.distribute strategy: mirrored = all local GPUs, "
              "multiworker = several machines via TF_CONFIG.")
@click.option("--refresh", is_flag=True, help="With --data URL: download again even if a cached copy exists "
              "(without it, the cached copy is used only if the server says it is unchanged).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or per-epoch lines; only the result.")
def main(data_path, words, negatives, teachers, config_path, overrides, arch, out, resume, distribute, refresh, quiet):
    """Train a keyword-spotting model from folders of audio files."""
    from .config import check_new_run, load_config, with_data
    from .fetch import DownloadOptions
    from .tfimport import require_training_packages
    from .train import TrainingInterrupted, changed_on_resume, train

    for name, value in (("--data", data_path), ("--config", config_path), ("--arch", arch), ("--out", out),
                        ("--resume", resume)):
        if value is not None and not value.strip():  # '' would be ignored, or read as the current folder
            raise click.BadParameter("is empty", param_hint=name)
    try:
        require_training_packages()
        if resume:
            if (data_path or words or negatives or teachers or config_path or arch or out
                    or changed_on_resume(overrides)):
                raise click.UsageError("--resume takes the run's own data and config; "
                                       "only --set train.epochs=N may be added")
            train(resume=resume, overrides=tuple(overrides), distribute=distribute, quiet=quiet)
            return
        sets = list(overrides) + ([f"model.architecture={arch}"] if arch else [])
        negative_dirs = [d.strip() for text in negatives for d in text.split(",") if d.strip()]
        cfg = load_config(config_path, sets)
        check_new_run(cfg, config_path, sets)
        cfg = with_data(cfg, data_path, None if words is None else words.split(","), negative_dirs)
        teacher_dirs = [d.strip() for text in teachers for d in text.split(",") if d.strip()]
        if teacher_dirs:
            cfg = cfg.replace(train=dataclasses.replace(cfg.train, teachers=tuple(teacher_dirs)))
        train(cfg, out=out, distribute=distribute, quiet=quiet, download=DownloadOptions(refresh=refresh))
    except TrainingInterrupted as exc:
        exit_interrupted(f"kws-train: {exc}")
    except KeyboardInterrupt:  # before a run folder was chosen
        exit_interrupted("kws-train: interrupted; nothing was written")
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(os_error_line(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    main()
