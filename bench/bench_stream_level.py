"""How loud bench_unseen's kws-eval streams really are, and what that does to a model: each
stream's peak (``kws.evaluation.stream`` turns a word that would clip down on its own and clips the
noise bed's transients, so the stream keeps the level it was built for),
and the float TFLite model's accuracy on the test speakers' keyword clips mixed as the stream mixes
them (noise bed at NOISE_RMS, speech 5-20 dB above it), at the intended level and quieter, and on
the clip-aligned windows cut from the real test stream.

    python -m bench.bench_stream_level --runs default,gain20

Results: bench/results/stream_level.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .bench_unseen import OUT, SHARED, SNR, TEST_NOISE, WORDS

RESULTS = Path(__file__).resolve().parent / "results" / "stream_level.md"
HOURS = 0.5
STREAMS = (("validation", OUT / "stream_validation", 1), ("test", OUT / "stream_test", 2))  # bench_unseen's seeds
LEVELS_DB = (0.0, -10.0, -20.0)
SR = 16000


def _snr() -> tuple[float, float]:
    lo, hi = SNR.split(":")
    return float(lo), float(hi)


def _stream_peak(clips, noises, seed: int) -> float:
    """The highest sample of the stream kws-eval builds with these clips, noise and seed."""
    from kws.evaluation import stream as S

    audio, _ = S.build_stream(clips, noises, HOURS * 3600, _snr(), SR, seed)
    return float(np.max(np.abs(audio)))


def accuracies(run: Path) -> dict[str, float]:
    from kws.edge.frontend import Frontend
    from kws.edge.runtime import TFLiteModel
    from kws.evaluation import stream as S
    from kws.trainer.config import load_config

    cfg = load_config(run / "config.yaml")
    labels = (run / "labels.txt").read_text().split()
    fe = Frontend(cfg.features)
    model = TFLiteModel(str(run / "dist" / "model_float.tflite"))

    def acc(windows, truth):
        feats = fe.features(np.clip(np.stack(windows), -1, 1).astype(np.float32))
        return float(np.mean([int(np.argmax(model.predict(f))) == t for f, t in zip(feats, truth)]))

    out = {}
    rng = np.random.default_rng(5)
    clips = S.load_clips(STREAMS[1][1], list(WORDS), SR)
    noises = S.load_noise(TEST_NOISE, SR, rng)
    items = [(w, c) for w in WORDS for c in clips.get(w, [])]
    truth = [labels.index(w) for w, _ in items]
    for level in LEVELS_DB:
        windows = []
        for label, clip in items:
            bed = S.noise_bed(noises, 3 * SR, rng) * S.NOISE_RMS
            mix = bed.copy()
            S._place(mix, bed, clip, label, SR, _snr(), SR, rng)
            windows.append(mix[SR:2 * SR] * 10 ** (level / 20))
        out[f"{level:+g} dB"] = acc(windows, truth)
    # the real test stream, each keyword's window exactly where its clip was placed
    placed = []
    original = S._place

    def spy(out_, noise, clip, label, pos, *a):
        placed.append((label, pos))
        return original(out_, noise, clip, label, pos, *a)

    S._place = spy
    try:
        rng2 = np.random.default_rng(STREAMS[1][2])
        stream_clips = S.load_clips(STREAMS[1][1], list(WORDS), SR)
        audio, _ = S.build_stream(stream_clips, S.load_noise(TEST_NOISE, SR, rng2), HOURS * 3600, _snr(), SR,
                                  STREAMS[1][2])
    finally:
        S._place = original
    kept = [(l, p) for l, p in placed if l in WORDS]
    out["real test stream"] = acc([audio[p:p + SR] for _, p in kept], [labels.index(l) for l, _ in kept])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="default", help="bench_unseen 30-epoch runs (converted)")
    args = ap.parse_args()
    if not TEST_NOISE.is_dir():
        raise SystemExit(f"skipping: {SHARED} not found")
    scale = {}
    for name, folder, seed in STREAMS:
        from kws.evaluation import stream as S

        rng = np.random.default_rng(seed)
        clips = S.load_clips(folder, list(WORDS), SR)
        noises = S.load_noise(TEST_NOISE, SR, rng)
        scale[name] = _stream_peak(clips, noises, seed)
    rows = {n: accuracies(OUT / "runs" / f"{n}-30ep") for n in args.runs.split(",") if n}
    cols = [f"{lv:+g} dB" for lv in LEVELS_DB] + ["real test stream"]
    lines = ["## How loud the streams are", "",
             f"Command: `python -m bench.bench_stream_level --runs {args.runs}`. bench_unseen's {HOURS} h streams "
             "(kws-eval's builder, same seeds). The builder turns a word down on its own where it would pass full "
             "scale and clips the noise bed's rare transients at -6 dBFS, so nothing else changes level: "
             + "; ".join(f"{n} stream peak {p:.2f}" for n, p in scale.items())
             + ". (Until 2026-12-02 the builder scaled the whole stream by its loudest word instead: the "
             "validation stream sat 18.5 dB and the test stream 15.9 dB below the level they were built for.)", "",
             "Float TFLite accuracy on the 6 test speakers' keyword clips mixed as the stream mixes them "
             f"(noise bed at the stream's level, speech {SNR} dB above it), at that level and quieter, and on the "
             "windows of the real test stream where each keyword clip was placed:", "",
             "| run | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, acc in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * acc[c]:.1f}%" for c in cols) + " |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
