"""The ``kws`` command group: every tool as a subcommand (``kws train``, ``kws listen`` ...).

Subcommands are imported lazily so ``kws listen`` (and ``kws --help``) never pay for TensorFlow.
"""
from __future__ import annotations

import importlib

import click

# subcommand name -> ("module:attribute" of its click command, one-line help)
SUBCOMMANDS = {
    "train": ("kws.trainer.cli:main", "Train a model from folders of audio files (kws-train)."),
    "synth": ("kws.synth.cli:main", "Synthesize a keyword dataset with offline TTS (kws-synth)."),
    "convert": ("kws.converters.cli:main", "Export int8/float TFLite, frozen .pb, C array, manifest (kws-convert)."),
    "listen": ("kws.edge.listen_cli:main", "Detect keywords continuously from a microphone or file (kws-listen)."),
    "predict": ("kws.evaluation.predict_cli:main", "Classify audio files, folders, URLs or a test list (kws-predict)."),
    "eval": ("kws.evaluation.eval_cli:main", "Streaming false accepts/hour and false rejects; calibrate (kws-eval)."),
    "inspect": ("kws.evaluation.inspect_cli:inspect_cmd", "Plot a clip's waveform, spectrogram and model features."),
    "data-stats": ("kws.evaluation.inspect_cli:data_stats_cmd", "Summarise a dataset folder and flag problems."),
    "ensemble": ("kws.evaluation.ensemble_cli:main", "Put converted models side by side as one (kws-ensemble)."),
    "mine": ("kws.evaluation.mine_cli:main", "Train on the windows of keyword-free audio the model fires on (kws-mine)."),
    "serve": ("kws.serving.web:serve_cmd", "Web page and JSON API for prediction."),
}
TF_MODULES = ("tensorflow", "keras")


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in SUBCOMMANDS.items()])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = (" Install the training extra: pip install 'kws[train]'"
                    if (exc.name or "").split(".")[0] in TF_MODULES else "")
            raise click.ClickException(f"'kws {cmd_name}' is not available in this install: {exc}.{hint}") from exc
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kws")
def main() -> None:
    """Edge keyword spotting: train, convert, listen, evaluate.

    \b
    Example:
      kws synth --words yes,no --out data/yesno
      kws train --data data/yesno
      kws convert
      kws listen -m models/<run>/dist/
    """
