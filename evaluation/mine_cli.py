"""``kws-mine``: hard-negative mining rounds on a trained run (see ``mining.py``)."""
from __future__ import annotations

from pathlib import Path

import click

from kws.edge.clitypes import FiniteFloatRange
from kws.edge.errors import KwsError, os_error_line
from kws.edge.locate import DIST_DIR
from kws.edge.manifest import MANIFEST_NAME
from kws.edge.stopping import StopRequest, exit_interrupted
from kws.trainer.run import MODEL_FILE

from .mining import (DEFAULT_EPOCHS_PER_ROUND, DEFAULT_MARGIN, DEFAULT_ROUNDS, DEFAULT_WINDOWS_PER_ROUND,
                     RECORDED_RANGES, MiningOptions, measured_alike, mine)
from .streaming_metrics import fa_rate_text

EXAMPLES = """
\b
Examples:
  kws-train --data data/hey_robot --negatives ~/recordings --out models/robot
  kws-mine --model models/robot --rounds 3
  kws-mine --model models/robot --negatives ~/tv,~/podcasts --windows 1000 --epochs 5
  kws-mine --model models/robot          # after Ctrl-C: continues the unfinished round
"""


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.option("-m", "--model", "run_path", required=True, type=click.Path(exists=True),
              help="A finished kws-train run folder (it is trained further in place).")
@click.option("--negatives", multiple=True, metavar="DIR",
              help="Keyword-free recordings to mine (repeatable or comma-separated; default: the run's "
                   "data.negatives, or those of an earlier kws-mine on this run).")
@click.option("--rounds", type=click.IntRange(1), default=None,
              help="Rounds of mining then training in all, those of an earlier kws-mine on this run counted (a rerun "
                   "goes on with an unfinished one among them)  [default: an earlier kws-mine's on this run, else "
                   f"{DEFAULT_ROUNDS}]")
@click.option("--epochs", "epochs_per_round", type=click.IntRange(1), default=None,
              help="Training epochs after each round's mining  [default: an earlier kws-mine's on this run, "
                   f"else {DEFAULT_EPOCHS_PER_ROUND}]")
@click.option("--windows", "windows_per_round", type=click.IntRange(1), default=None,
              help="Most windows kept per round (the highest-scoring ones)  [default: an earlier kws-mine's on "
                   f"this run, else {DEFAULT_WINDOWS_PER_ROUND}]")
@click.option("--margin", type=FiniteFloatRange(*RECORDED_RANGES["margin"]), default=None,
              help="Keep windows whose keyword score is at least threshold - margin  [default: an earlier "
                   f"kws-mine's on this run, else {DEFAULT_MARGIN:g}]")
@click.option("--threshold", type=FiniteFloatRange(*RECORDED_RANGES["threshold"], min_open=True, max_open=True),
              default=None, help="Detection threshold for the false accepts and the margin, between 0 and 1  "
                                 "[default: an earlier kws-mine's on this run, else smoothing.detection_threshold]")
@click.option("--hop-ms", type=FiniteFloatRange(min=RECORDED_RANGES["hop_ms"][0], max=RECORDED_RANGES["hop_ms"][1]),
              default=None, help="Hop between scored windows, a multiple of the frontend stride  [default: an "
                                 "earlier kws-mine's on this run, else smoothing.hop_ms, as kws-listen runs]")
@click.option("-q", "--quiet", is_flag=True, help="No round or epoch lines: only each round's training result and the summary.")
def main(run_path, negatives, rounds, epochs_per_round, windows_per_round, margin, threshold, hop_ms, quiet):
    """Find the windows of keyword-free recordings that the model (nearly) fires on, train on them
    as _unknown_, repeat; each round reports false accepts per hour on the negatives before and after."""
    dirs = tuple(d.strip() for text in negatives for d in text.split(",") if d.strip())
    opts = MiningOptions(rounds=rounds, epochs_per_round=epochs_per_round, windows_per_round=windows_per_round,
                         margin=margin, threshold=threshold, hop_ms=hop_ms, negatives=dirs)
    from kws.trainer.train import TrainingInterrupted

    stop = StopRequest(immediate=True).install()  # SIGTERM, SIGHUP like Ctrl-C: its temporary float model is removed
    try:
        record = mine(run_path, opts, quiet=quiet)
    except (KeyboardInterrupt, TrainingInterrupted):
        exit_interrupted(f"kws-mine: interrupted; rerun the same command to continue ({run_path}/mining.json)")
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(os_error_line(exc)) from None
    finally:
        stop.restore()
    done = [r for r in record["rounds"] if r.get("fa_after") is not None]
    if not done:
        return
    alike = measured_alike(record["rounds"])
    first, last = alike[0], alike[-1]
    how = f"threshold {last.get('threshold', record['threshold'])}"
    if len(alike) < len(done):  # round 1's count before against the last one's after would mix two measures
        how = (f"in {rounds_named(first['round'], last['round'])}, at {how}; {rounds_named(1, first['round'] - 1)} "
               "counted at another threshold, hop or on other negatives")
    before, after = fa_rate_text(first["fa_before"]["fa_per_hour"]), fa_rate_text(last["fa_after"]["fa_per_hour"])
    click.echo(f"kws-mine: {counted(len(done), 'round')}, {counted(len(record['windows']), 'hard negative')}; "
               f"FA/h on {last['fa_after']['hours']:.3f} h of negatives {before} -> {after} ({how}){cut_short(done)}; "
               f"model: {run_path}")
    stale = stale_conversion(Path(run_path))
    if stale is not None:
        click.echo(f"kws-mine: note: {stale} was converted before the run's last training, and kws-listen, "
                   f"kws-eval and kws serve run what it holds: kws-convert -m {run_path} puts the mined model there",
                   err=True)


def stale_conversion(run: Path) -> Path | None:
    """The run's default kws-convert folder where it was written before the run's model last changed
    (the mined model is not in it yet), else None."""
    manifest, model = run / DIST_DIR / MANIFEST_NAME, run / MODEL_FILE
    try:
        return manifest.parent if manifest.stat().st_mtime < model.stat().st_mtime else None
    except OSError:  # no conversion (or no model) to compare
        return None


def cut_short(rounds: list[dict]) -> str:
    """'; round 2 trained 1 of its 3 epochs (train.time_budget_s)' for the finished rounds whose
    training the run's time budget stopped early ('' where none was)."""
    short = [f"round {r['round']} trained {r['epochs_trained']} of its {r['target_epochs'] - r['start_epoch']} epochs"
             for r in rounds if isinstance(r.get("epochs_trained"), int)
             and r["epochs_trained"] < r["target_epochs"] - r["start_epoch"]]
    return f"; {', '.join(short)} (train.time_budget_s)" if short else ""


def counted(n: int, thing: str) -> str:
    """'1 round', '3 rounds'."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def rounds_named(first: int, last: int) -> str:
    """'round 2' or 'rounds 2-3'."""
    return f"round {first}" if first == last else f"rounds {first}-{last}"


if __name__ == "__main__":  # pragma: no cover
    main()
