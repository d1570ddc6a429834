"""Transfer of synthesized data to real speech: a "computer" model trained only on kws-synth clips,
scored on the shared real recordings (../shared/data).

    flock /tmp/kws-bench.lock python -m bench.bench_synth_transfer [--runs baseline,realnoise,augmented]
        [--per-word 1000] [--negatives 1500] [--epochs 20]

For each run: ``kws-synth --words computer`` -> ``kws-train`` (ds_cnn) -> the Keras model classifies
1 s windows (hop 200 ms) of every real clip; a clip's score is its highest P(computer) over its
windows (what a streaming detector would see at best), and the clip counts as detected / falsely
accepted when that score reaches the threshold (the manifest default, 0.7).

* detection: real ``speech/computer`` clips as recorded, and mixed into real noise at NOISE_SNR_DB;
* false accepts: real ``speech/not_keyword`` clips as recorded and mixed into every real noise file
  (``noise/*/*.wav``) at NOISE_SNR_DB, plus the noise alone in 1 s windows.

Runs (RUNS): ``baseline`` uses only generated noise; ``realnoise`` adds ``--noise-dir
noise/speech_commands`` to kws-synth (mixed into clips and into _background_noise_ for training);
``augmented`` also puts noise into more clips at lower SNR, reverb into more clips and spreads the
levels wider. False accepts on ``noise/mycroft`` (never heard in training) are reported apart.
Writes bench/results/synth_transfer.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "synth_transfer.md"
SHARED = ROOT.parent.parent / "shared" / "data"
KEYWORD = "computer"
THRESHOLD = 0.7
THRESHOLDS = (0.5, 0.7, 0.9)
WINDOW_HOP_MS = 200.0  # a 1 s window holds the whole word (< 0.8 s) at some hop
NOISE_WINDOW_HOP_MS = 500.0
NOISE_SNR_DB = 10.0
TRAIN_NOISE = "speech_commands"  # the realnoise runs train with this folder; the other stays unheard
# Run name -> (what it is, kws-synth options beyond the defaults); "{noise}" is the training noise folder.
RUNS = {
    "baseline": ("kws-synth defaults: generated noise only", ()),
    "realnoise": (f"+ real noise (--noise-dir noise/{TRAIN_NOISE})", ("--noise-dir", "{noise}")),
    "augmented": ("+ real noise, more and louder noise, more reverb, wider levels",
                  ("--noise-dir", "{noise}", "--noise-prob", "0.8", "--snr", "0:20", "--reverb-prob", "0.6",
                   "--gain", "-15:6")),
}
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
PREDICT_BATCH = 256


def run(cmd: list[str], log: Path) -> float:
    """Run a command with its output in ``log``; returns its wall seconds (exits on failure)."""
    t0 = time.time()
    with log.open("w") as f:
        res = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True)
    if res.returncode != 0:
        raise SystemExit(f"failed ({res.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return time.time() - t0


class KerasScorer:
    """A training run's model.keras with its labels and frontend; ``predict`` runs Keras' compiled
    predict loop (about 3x faster than eager calls for the tens of thousands of windows here)."""

    def __init__(self, model_dir: Path):
        from kws.edge.frontend import Frontend
        from kws.evaluation.models import load_classifier

        clf = load_classifier(model_dir)
        self.labels, self.config, self.frontend = clf.labels, clf.frontend, Frontend(clf.frontend)
        import keras

        self._model = keras.models.load_model(model_dir / "model.keras", compile=False)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """(B, labels) for a batch of 1 s clips (B, samples)."""
        features = self.frontend.features(windows.astype(np.float32))
        return self._model.predict(features, batch_size=PREDICT_BATCH, verbose=0)


def clip_scores(scorer: KerasScorer, clips: list[np.ndarray], keyword_index: int, hop: int) -> np.ndarray:
    """Highest P(keyword) over the 1 s windows (hop samples apart) of each clip."""
    n = scorer.config.clip_samples
    windows, owner = [], []
    for i, audio in enumerate(clips):
        audio = audio if len(audio) >= n else np.pad(audio, (0, n - len(audio)))
        starts = list(range(0, len(audio) - n + 1, hop))
        if starts[-1] != len(audio) - n:
            starts.append(len(audio) - n)
        windows += [audio[s:s + n] for s in starts]
        owner += [i] * len(starts)
    probs = scorer.probabilities(np.stack(windows))[:, keyword_index]
    out = np.zeros(len(clips))
    np.maximum.at(out, np.array(owner), probs)
    return out


def load_folder(folder: Path, sample_rate: int) -> list[np.ndarray]:
    """Every WAV of a folder (sorted), as float32 at sample_rate."""
    from kws.edge.audio import load_audio

    return [load_audio(p, sample_rate)[0] for p in sorted(folder.glob("*.wav"))]


def in_noise(speech: list[np.ndarray], noises: dict[str, np.ndarray], snr_db: float, seed: int
             ) -> dict[str, list[np.ndarray]]:
    """Each speech clip mixed into a random stretch of each noise, at snr_db (active-speech RMS)."""
    from kws.synth.augment import mix_at_snr, noise_segment

    rng = np.random.default_rng(seed)
    return {name: [mix_at_snr(s, noise_segment(noise, len(s), float(rng.random())), snr_db) for s in speech]
            for name, noise in noises.items()}


def summary(scores: np.ndarray) -> str:
    """Quantiles of a score array as 'min/p10/p25/median/p75/p90/max'."""
    return "/".join(f"{q:.2f}" for q in np.quantile(scores, QUANTILES))


def fa_by_text(clf: KerasScorer, data: Path) -> dict[str, str]:
    """False accepts (score >= THRESHOLD) of the clean real other words, by transcript."""
    import csv

    folder = data / "speech" / "not_keyword"
    texts = {}
    if (folder / "metadata.csv").is_file():
        with (folder / "metadata.csv").open() as f:
            texts = {row[0]: row[1].strip().lower() for row in csv.reader(f) if len(row) > 1}
    files = sorted(folder.glob("*.wav"))
    from kws.edge.audio import load_audio

    sr = clf.config.sample_rate
    scores = clip_scores(clf, [load_audio(p, sr)[0] for p in files], clf.labels.index(KEYWORD),
                         int(sr * WINDOW_HOP_MS / 1000))
    by: dict[str, list[bool]] = {}
    for p, score in zip(files, scores):
        by.setdefault(texts.get(p.name, "?"), []).append(bool(score >= THRESHOLD))
    return {t: f"{sum(v)}/{len(v)}" for t, v in sorted(by.items(), key=lambda kv: -len(kv[1]))}


def evaluate(model_dir: Path, data: Path, seed: int) -> dict:
    """Detection and false-accept numbers of one trained run on the shared real audio."""
    clf = KerasScorer(model_dir)
    sr = clf.config.sample_rate
    k = clf.labels.index(KEYWORD)
    hop = int(sr * WINDOW_HOP_MS / 1000)
    keyword = load_folder(data / "speech" / KEYWORD, sr)
    others = load_folder(data / "speech" / "not_keyword", sr)
    noise_files = sorted((data / "noise").glob("*/*.wav"))
    from kws.edge.audio import load_audio

    noises = {f"{p.parent.name}/{p.stem}": load_audio(p, sr)[0] for p in noise_files}
    out: dict = {"labels": clf.labels, "n_keyword": len(keyword), "n_other": len(others),
                 "noise_files": len(noises)}
    kw = clip_scores(clf, keyword, k, hop)
    kw_noisy = {n: clip_scores(clf, c, k, hop) for n, c in in_noise(keyword, noises, NOISE_SNR_DB, seed).items()}
    ot = clip_scores(clf, others, k, hop)
    ot_noisy = {n: clip_scores(clf, c, k, hop) for n, c in in_noise(others, noises, NOISE_SNR_DB, seed + 1).items()}
    noise_hop = int(sr * NOISE_WINDOW_HOP_MS / 1000)
    noise_only = {n: clip_scores(clf, [a[s:s + sr] for s in range(0, max(1, len(a) - sr + 1), noise_hop)], k, sr)
                  for n, a in noises.items()}

    def rate(scores: np.ndarray, t: float = THRESHOLD) -> float:
        return float(np.mean(scores >= t))

    def group(d: dict[str, np.ndarray], prefix: str = "") -> np.ndarray:
        return np.concatenate([v for n, v in d.items() if n.startswith(prefix)])

    out["detection"] = {str(t): rate(kw, t) for t in THRESHOLDS}
    out["detection_noisy"] = {str(t): rate(group(kw_noisy), t) for t in THRESHOLDS}
    out["fa_clean"] = {str(t): rate(ot, t) for t in THRESHOLDS}
    out["fa_noisy"] = {str(t): rate(group(ot_noisy), t) for t in THRESHOLDS}
    for folder in sorted({n.split("/")[0] for n in noises}):
        out[f"fa_noisy_{folder}"] = rate(group(ot_noisy, folder + "/"))
        out[f"fa_noise_only_{folder}"] = rate(group(noise_only, folder + "/"))
        out[f"n_noise_windows_{folder}"] = int(len(group(noise_only, folder + "/")))
    out["n_other_noisy"] = int(len(group(ot_noisy)))
    out["fa_by_text"] = fa_by_text(clf, data)
    out["scores"] = {"computer": summary(kw), "computer_noisy": summary(group(kw_noisy)),
                     "not_keyword": summary(ot), "not_keyword_noisy": summary(group(ot_noisy)),
                     "noise_only": summary(group(noise_only))}
    worst = np.argsort(-ot)[:3]
    out["top_false"] = [(sorted((data / "speech" / "not_keyword").glob("*.wav"))[i].name, round(float(ot[i]), 3))
                        for i in worst]
    return out


def one_run(name: str, args, work: Path, data: Path) -> dict:
    """Synthesize, train and evaluate one configuration."""
    ds, model = work / name / "data", work / name / "model"
    (work / name).mkdir(parents=True, exist_ok=True)
    synth = [sys.executable, "-m", "kws.synth.cli", "--words", KEYWORD, "--per-word", str(args.per_word),
             "--negatives", str(args.negatives), "--seed", str(args.seed), "--out", str(ds), "-q"]
    synth += [a.replace("{noise}", str(data / "noise" / TRAIN_NOISE)) for a in RUNS[name][1]]
    train = [sys.executable, "-m", "kws.trainer.cli", "--data", str(ds), "--out", str(model), "-q",
             "--set", f"train.epochs={args.epochs}", "--set", f"train.batch_size={args.batch_size}",
             "--set", f"data.unknown_percentage={args.unknown_percentage}"]
    saved = work / name / "result.json"
    if args.reuse and saved.is_file():
        res = json.loads(saved.read_text())
        if "fa_by_text" not in res:  # results saved before this breakdown existed
            res["fa_by_text"] = fa_by_text(KerasScorer(model), data)
            saved.write_text(json.dumps(res, indent=1))
        return res
    if (model / "model.keras").is_file() and args.reuse:
        synth_s = train_s = 0.0
    else:
        synth_s = run(synth, work / name / "synth.log")
        if model.exists():
            import shutil

            shutil.rmtree(model)
        train_s = run(train, work / name / "train.log")
    res = evaluate(model, data, args.seed)
    metrics = json.loads((model / "metrics.json").read_text()) if (model / "metrics.json").is_file() else {}
    res.update(name=name, synth_cmd=" ".join(synth[2:]), train_cmd=" ".join(train[2:]), synth_s=synth_s,
               train_s=train_s, synth_line=(work / name / "synth.log").read_text().strip().splitlines()[-1:],
               synth_test_accuracy=_accuracy(metrics, "test"), synth_val_accuracy=_accuracy(metrics, "validation"))
    res = json.loads(json.dumps(res, default=str))  # float keys -> str, as a reloaded result has them
    saved.write_text(json.dumps(res, indent=1))
    return res


def _accuracy(metrics: dict, split: str):
    for key in (split, f"{split}_accuracy"):
        v = metrics.get(key)
        if isinstance(v, dict):
            v = v.get("accuracy")
        if isinstance(v, (int, float)):
            return float(v)
    return None


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def report(results: list[dict], args) -> str:
    """The markdown of bench/results/synth_transfer.md."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    r0 = results[0]
    lines = [
        "## Synthesized data -> real speech (\"computer\")", "",
        f"Command: `flock /tmp/kws-bench.lock python -m bench.bench_synth_transfer --runs {args.runs} "
        f"--per-word {args.per_word} --negatives {args.negatives} --epochs {args.epochs}` "
        f"on {platform.machine()}, {os.cpu_count()} cores ({cpu}).", "",
        f"A `computer` model trained **only** on kws-synth clips (ds_cnn, labels {', '.join(r0['labels'])}), "
        f"scored on the real recordings of `../shared/data`: {r0['n_keyword']} real \"computer\" clips "
        f"(2 s, few speakers) and {r0['n_other']} real other words (mostly \"a cheddar block\" / \"you better "
        f"talk\"), each also mixed into each of the {r0['noise_files']} real noise files at {NOISE_SNR_DB:g} dB "
        f"SNR. A clip's score is its highest P(computer) over 1 s windows with a {WINDOW_HOP_MS:g} ms hop; "
        f"detected / falsely accepted = score >= {THRESHOLD} (the default detection threshold).", "",
        "| run | kws-synth data | detection (real computer) | detection in noise | FA (real other words) "
        "| FA, other words in noise | FA, noise alone (1 s windows) | synth test acc. (unseen voices) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    t = str(THRESHOLD)
    for r in results:
        folders = [k[len("fa_noise_only_"):] for k in r if k.startswith("fa_noise_only_")]
        noise_only = ", ".join(f"{f} {_pct(r['fa_noise_only_' + f])} of {r['n_noise_windows_' + f]}" for f in folders)
        detected = round(r["detection"][t] * r["n_keyword"])
        accepted = round(r["fa_clean"][t] * r["n_other"])
        lines.append(f"| {r['name']} | {RUNS[r['name']][0]} "
                     f"| {_pct(r['detection'][t])} ({detected}/{r['n_keyword']}) | {_pct(r['detection_noisy'][t])} "
                     f"| {_pct(r['fa_clean'][t])} ({accepted}/{r['n_other']}) "
                     f"| {_pct(r['fa_noisy'][t])} of {r['n_other_noisy']} "
                     f"| {noise_only} | {_pct(r['synth_test_accuracy'])} |")
    lines += ["", "Other thresholds (detection / FA on other words in noise):", ""]
    for r in results:
        lines.append(f"- {r['name']}: " + "; ".join(
            f"{t}: {_pct(r['detection'][str(t)])} / {_pct(r['fa_noisy'][str(t)])}" for t in THRESHOLDS)
            + "; FA in noise by folder at 0.7: " + ", ".join(
            f"{k.split('fa_noisy_')[1]} {_pct(v)}" for k, v in r.items() if k.startswith("fa_noisy_")))
    lines += ["", f"Per-clip scores, quantiles {'/'.join(f'{q:g}' for q in QUANTILES)}:", ""]
    for r in results:
        lines.append(f"- {r['name']}: " + "; ".join(f"{k} {v}" for k, v in r["scores"].items())
                     + f"; false accepts of the clean other words by transcript: {r.get('fa_by_text', {})}")
    lines += ["", "Commands of each run (module form of `kws-synth` / `kws-train`):", ""]
    for r in results:
        lines.append(f"- {r['name']}: `{r['synth_cmd']}` ({r['synth_s']:.0f} s), then `{r['train_cmd']}` "
                     f"({r['train_s']:.0f} s)")
        if r["synth_line"]:
            lines.append(f"  - `{r['synth_line'][0]}`")
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, among {', '.join(RUNS)}")
    ap.add_argument("--per-word", type=int, default=1000)
    ap.add_argument("--negatives", type=int, default=1500)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--unknown-percentage", type=float, default=150.0,
                    help="kws-train's data.unknown_percentage: one keyword needs many more _unknown_ clips than 10%%")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", default=str(SHARED), help="the shared data folder (noise/, speech/)")
    ap.add_argument("--work", default="/tmp/kws-synth-transfer", help="where datasets and models go")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the results (else the models) of runs already in --work")
    ap.add_argument("--note", default="", help="a paragraph added to the results (what the numbers mean)")
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "speech" / KEYWORD).is_dir():
        raise SystemExit(f"{data}/speech/{KEYWORD} is missing: this benchmark needs the shared real audio")
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    bad = [n for n in names if n not in RUNS]
    if bad:
        raise SystemExit(f"unknown runs {bad}; choose among {', '.join(RUNS)}")
    results = []
    for name in names:
        results.append(one_run(name, args, Path(args.work), data))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "labels"}, default=str), flush=True)
    text = report(results, args)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
