"""``kws-synth``: a keyword dataset from offline text-to-speech, in the layout kws-train reads."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from kws.edge.errors import KwsError

EXAMPLES = """
\b
Examples:
  kws-synth --words computer --negatives 2000 --per-word 1500 --out data/computer
  kws-synth --words yes,no,up,down,left,right,on,off,stop,go --out data/demo --seed 7
  kws-synth --words lights-on --noise-dir ~/noise --snr 0:20 --out data/lights
"""


def _range(text: str, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise click.BadParameter(f"expected LOW:HIGH, got {text!r}", param_hint=name) from None
    if lo > hi:
        raise click.BadParameter(f"LOW must be <= HIGH, got {text!r}", param_hint=name)
    return lo, hi


@click.command(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.option("--words", required=True, help="Comma-separated keywords (a '-' inside a word becomes a space).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--per-word", default=500, show_default=True, help="Clips per keyword.")
@click.option("--negatives", default=None, type=int, help="_unknown_ clips (default: per-word x words / 2).")
@click.option("--seed", default=0, show_default=True, help="Same seed, same dataset.")
@click.option("--sample-rate", default=16000, show_default=True)
@click.option("--clip-ms", default=1000, show_default=True)
@click.option("--speed", "speed", default="0.9:1.1", show_default=True, help="Speed perturbation range.")
@click.option("--reverb-prob", default=0.3, show_default=True, help="Share of clips with synthetic room reverb.")
@click.option("--noise-prob", default=0.5, show_default=True, help="Share of clips with background noise.")
@click.option("--snr", default="5:30", show_default=True, help="Speech-to-noise ratio range in dB.")
@click.option("--noise-dir", type=click.Path(file_okay=False), help="Your own noise WAVs, mixed in and "
              "copied to _background_noise_/.")
@click.option("--jobs", default=os.cpu_count() or 1, show_default=True, help="Parallel workers.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def main(words, out, per_word, negatives, seed, sample_rate, clip_ms, speed, reverb_prob, noise_prob, snr,
         noise_dir, jobs, quiet):
    """Synthesize keyword clips (espeak-ng, flite, festival voices) plus _unknown_ negatives and noise."""
    from .dataset import SynthOptions, generate

    word_list = tuple(w.strip().replace("-", " ") for w in words.split(","))
    if any(not w for w in word_list):
        raise click.BadParameter(f"empty word in {words!r}", param_hint="--words")
    if per_word < 1:
        raise click.BadParameter("must be >= 1", param_hint="--per-word")
    if negatives is None:
        negatives = per_word * len(word_list) // 2
    opts = SynthOptions(words=word_list, out=Path(out),
                        per_word=per_word, negatives=negatives, seed=seed, sample_rate=sample_rate,
                        clip_ms=clip_ms, speed_range=_range(speed, "--speed"), reverb_prob=reverb_prob,
                        noise_prob=noise_prob, snr_range=_range(snr, "--snr"),
                        noise_dir=Path(noise_dir) if noise_dir else None)
    try:
        res = generate(opts, jobs=jobs, quiet=quiet)
    except KwsError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        click.echo(f"kws-synth: interrupted; finished clips are kept, rerun the same command to resume", err=True)
        sys.exit(130)
    labels = ", ".join(f"{k} {v}" for k, v in res["per_label"].items())
    rate = res["rendered"] / res["seconds"] if res["seconds"] else 0.0
    line = (f"kws-synth: {res['clips']} clips in {out} ({labels}); {res['voices']} voices; "
            f"{res['rendered']} rendered, {res['resumed']} already there; {res['seconds']:.1f}s "
            f"({rate:.0f} clips/s)")
    if res["too_long"]:
        ex = res["too_long"][0]
        line += f"; {len(res['too_long'])} too long for {clip_ms} ms, skipped (e.g. {ex.text!r} by {ex.voice.voice_id})"
    if res["failed"]:
        t, why = res["failed"][0]
        line += f"; {len(res['failed'])} failed (e.g. {why})"
    click.echo(line)


if __name__ == "__main__":  # pragma: no cover
    main()
