"""``kws-synth``: a keyword dataset from offline text-to-speech, in the layout kws-train reads."""
from __future__ import annotations

import math
import os
from pathlib import Path

import click

from kws.edge.clitypes import FiniteFloatRange
from kws.edge.errors import KwsError, os_error_line
from kws.edge.stopping import exit_interrupted
from kws.trainer.config import AUGMENT_RANGE_LIMITS, MAX_GAIN_DB

from .dataset import CLIP_MS_LIMITS, SAMPLE_RATE_LIMITS

EXAMPLES = """
\b
Examples:
  kws-synth --words computer --negatives 2000 --per-word 1500 --out data/computer
  kws-synth --words yes,no,up,down,left,right,on,off,stop,go --out data/demo --seed 7
  kws-synth --words hey-robot --noise-dir ~/noise --snr 0:20 --reverb-prob 0.5 --out data/robot
  kws-synth --words hey-robot --per-word 400 --voice-variants 3 --out data/robot  # 4x the voices
  kws-synth --words hey-robot --negatives-dir ~/podcasts --out data/robot  # real speech as negatives

\b
Writes <out>/<word>/*.wav, <out>/_unknown_/*.wav (similar-sounding and general words),
<out>/_background_noise_/*.wav, validation_list.txt and testing_list.txt (split by voice)
and synth_meta.csv (engine, voice, rate, pitch and augmentations of every clip).
With --negatives-dir, negatives.txt lists those recordings and kws-train --data <out> trains on
windows of them as it would with --negatives.
Rerun the same command to resume an interrupted run.

\b
With one keyword, let kws-train use the negatives (it adds only 10% _unknown_ by default):
  kws-train --data data/computer --set data.unknown_percentage=150
"""


# what each range option may hold: kws-train's augmentation limits for the same kinds of value
RANGE_LIMITS = {"--speed": AUGMENT_RANGE_LIMITS["speed_range"], "--gain": (-MAX_GAIN_DB, MAX_GAIN_DB),
                "--rt60": AUGMENT_RANGE_LIMITS["reverb_rt60_s"], "--snr": AUGMENT_RANGE_LIMITS["background_snr_db"]}
LEVEL_DBFS_LIMITS = (-90.0, 0.0)
MAX_SEED = 2**31 - 1


def parse_range(text: str, name: str) -> tuple[float, float]:
    """'LOW:HIGH' (or one number for a fixed value) -> (low, high), both finite and within the
    option's RANGE_LIMITS."""
    try:
        parts = [float(v) for v in text.split(":")]
    except ValueError:
        raise click.BadParameter(f"expected LOW:HIGH, got {text!r}", param_hint=name) from None
    if not all(math.isfinite(p) for p in parts):  # nan passes LOW <= HIGH, and either ends in a traceback
        raise click.BadParameter(f"expected finite LOW:HIGH, got {text!r}", param_hint=name)
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or parts[0] > parts[1]:
        raise click.BadParameter(f"expected LOW:HIGH with LOW <= HIGH, got {text!r}", param_hint=name)
    lo, hi = RANGE_LIMITS.get(name, (-math.inf, math.inf))
    if not lo <= parts[0] <= parts[1] <= hi:
        raise click.BadParameter(f"must lie within {lo:g}:{hi:g}, got {text!r}", param_hint=name)
    return parts[0], parts[1]


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.option("--words", required=True, help="Comma-separated keywords; '-' joins a phrase (hey-robot).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--per-word", default=500, show_default=True, type=click.IntRange(min=1), help="Clips per keyword.")
@click.option("--negatives", default=None, type=click.IntRange(min=0),
              help="_unknown_ clips in all  [default: per-word x words / 2]")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0, MAX_SEED),
              help="Same seed, byte-identical dataset.")
@click.option("--sample-rate", default=16000, show_default=True, type=click.IntRange(*SAMPLE_RATE_LIMITS),
              help="Sample rate of the written clips in Hz (kws-train converts any rate to its own).")
@click.option("--clip-ms", default=1000, show_default=True, type=click.IntRange(*CLIP_MS_LIMITS),
              help="Clip length in ms (the model's input).")
@click.option("--engines", default="espeak,flite,festival", show_default=True,
              help="TTS engines to use, those installed among them.")
@click.option("--speed", default="0.9:1.1", show_default=True, help="Speed perturbation factor range.")
@click.option("--level", "level_mode", type=click.Choice(["rms", "peak"]), default="rms", show_default=True,
              help="Normalise the speech's RMS or its peak.")
@click.option("--level-dbfs", type=FiniteFloatRange(*LEVEL_DBFS_LIMITS), default=None, help="Target level  [default: -24 rms, -3 peak]")
@click.option("--gain", default="-6:6", show_default=True, help="Random gain (dB) around the target level.")
@click.option("--reverb-prob", type=FiniteFloatRange(0, 1), default=0.3, show_default=True,
              help="Share of clips with synthetic room reverb.")
@click.option("--rt60", default="0.2:0.8", show_default=True, help="Reverb time range in seconds.")
@click.option("--noise-prob", type=FiniteFloatRange(0, 1), default=0.5, show_default=True,
              help="Share of clips with background noise.")
@click.option("--snr", default="5:30", show_default=True, help="Speech-to-noise ratio range in dB.")
@click.option("--noise-dir", type=click.Path(file_okay=False, exists=True),
              help="Your noise recordings (any readable format): mixed into clips and copied to _background_noise_/.")
@click.option("--negatives-dir", "negative_dirs", multiple=True, type=click.Path(exists=True),
              help="Recordings without the keyword (speech, TV, music; any length, folder or file, "
                   "repeatable): listed in <out>/negatives.txt, so kws-train --data <out> uses them "
                   "like --negatives.")
@click.option("--validation-percent", type=FiniteFloatRange(0, 100, max_open=True), default=10.0,
              show_default=True, help="Share of voices for validation.")
@click.option("--testing-percent", type=FiniteFloatRange(0, 100, max_open=True), default=10.0,
              show_default=True, help="Share of voices for testing.")
@click.option("--voice-variants", default=0, show_default=True, type=click.IntRange(min=0),
              help="Pseudo-speakers per clip: each clip also said by N variants of its voice (own pitch and "
                   "formant shift, tempo and microphone EQ per variant), in the voice's split.")
@click.option("--jobs", default=os.cpu_count() or 1, show_default=True, type=click.IntRange(min=1),
              help="Parallel worker processes.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def main(words, out, per_word, negatives, seed, sample_rate, clip_ms, engines, speed, level_mode, level_dbfs,
         gain, reverb_prob, rt60, noise_prob, snr, noise_dir, negative_dirs, validation_percent, testing_percent,
         voice_variants, jobs, quiet):
    """Synthesize keyword clips with espeak-ng, flite and festival voices, plus _unknown_
    negatives and background noise, ready for kws-train."""
    from .dataset import SynthOptions, generate

    word_list = tuple(w.strip() for w in words.split(","))
    if negatives is None:
        negatives = per_word * len(word_list) // 2
    try:
        opts = SynthOptions(
            words=word_list, out=Path(out), per_word=per_word, negatives=negatives, seed=seed,
            sample_rate=sample_rate, clip_ms=clip_ms, speed_range=parse_range(speed, "--speed"),
            gain_range=parse_range(gain, "--gain"), level_mode=level_mode, level_dbfs=level_dbfs,
            reverb_prob=reverb_prob, rt60_range=parse_range(rt60, "--rt60"), noise_prob=noise_prob,
            snr_range=parse_range(snr, "--snr"), noise_dir=Path(noise_dir) if noise_dir else None,
            engines=tuple(e.strip() for e in engines.split(",") if e.strip()),
            validation_percentage=validation_percent, testing_percentage=testing_percent,
            voice_variants=voice_variants)
        found = None
        if negative_dirs:
            from kws.trainer.negatives import index_negatives, write_listed_negatives

            found = index_negatives(negative_dirs)  # headers only: a bad file fails before synthesis
        summary = generate(opts, jobs=jobs, quiet=quiet)
        if found is not None:  # listed only once the folder is a dataset: a failed run leaves no list behind
            listed = write_listed_negatives(opts.out, negative_dirs)
            if not quiet:
                click.echo(f"kws-synth: negatives {found.describe()} listed in {listed}", err=True)
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(os_error_line(exc)) from None
    except KeyboardInterrupt:
        exit_interrupted("kws-synth: interrupted; finished clips are kept, rerun the same command to resume")
    click.echo(summary_line(summary, out, clip_ms))
    if summary.word_gap:  # said before kws-train is run, with the fix (a larger --per-word)
        click.echo(summary.word_gap, err=True)
    empty = [label for label, n in summary.per_label.items() if n == 0 and not label.startswith("_")]
    if empty:  # kws-train would refuse the folder or train without the word: never a silent success
        raise click.ClickException(
            f"no clip of {', '.join(repr(w) for w in empty)} fits in {clip_ms} ms (every rendering was longer; "
            "the clips of the other words are kept): give --clip-ms more room or a shorter phrase")


def summary_line(s, out: str, clip_ms: int) -> str:
    """The one-line report of a run."""
    labels = ", ".join(f"{k} {v}" for k, v in s.per_label.items())
    rate = s.written / s.seconds if s.seconds > 0 else 0.0
    sv = s.split_voices
    line = (f"kws-synth: {s.clips} clips in {out} ({labels}); {s.voices} voices "
            f"({sv['training']} train, {sv['validation']} validation, {sv['testing']} test); "
            f"{s.written} rendered, {s.already} already there; too long for {clip_ms} ms: {len(s.too_long)}")
    if s.too_long:
        task, ms = s.too_long[0]
        line += f" (e.g. {task.text!r} by {task.voice.voice_id} at rate {task.rate} speed {task.speed}: {ms:.0f} ms)"
    if s.failed:
        task, why = s.failed[0]
        line += f"; {len(s.failed)} failed (e.g. {why})"
    line += f"; {s.seconds:.1f} s ({rate:.0f} clips/s)"
    return line


if __name__ == "__main__":  # pragma: no cover
    main()
