"""The ``kws`` command group: every tool as a subcommand (``kws train``, ``kws listen`` ...).

Subcommands are imported lazily so ``kws listen`` never pays for TensorFlow.
"""
from __future__ import annotations

import importlib

import click

# subcommand name -> "module:attribute" of its click command
SUBCOMMANDS = {
    "train": "kws.trainer.cli:main",
    "synth": "kws.synth.cli:main",
    "convert": "kws.converters.cli:main",
    "listen": "kws.edge.listen_cli:main",
    "predict": "kws.evaluation.predict_cli:main",
    "eval": "kws.evaluation.eval_cli:main",
    "inspect": "kws.evaluation.inspect_cli:inspect_cmd",
    "data-stats": "kws.evaluation.inspect_cli:data_stats_cmd",
    "serve": "kws.serving.web:serve_cmd",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # e.g. the TensorFlow extra is not installed
            raise click.ClickException(
                f"'kws {cmd_name}' is not available in this install: {exc}. "
                "Install the training extra: pip install 'kws[train]'"
            ) from exc
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
      kws listen -m dist/
    """
