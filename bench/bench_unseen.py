"""Accuracy on speakers never heard: the Arabic Speech Commands set in ../shared/data, split by its
own speaker-disjoint lists (18 training, 6 validation, 6 test speakers).

    python -m bench.bench_unseen                          # headline run + stream, then the ablation
    python -m bench.bench_unseen --variants default,before --ablation-epochs 15

Ten words are wanted (yes no up down left right open close start stop); the six others
(zero..five) are ``_unknown_``; ``_silence_`` is made from background noise. Training mixes the six
Speech Commands background files (``noise/speech_commands``); the streaming test uses the nine
Mycroft room recordings (``noise/mycroft``) that training never heard.

Headline: the default config for --epochs. Ablation: each variant (the default config plus its
``--set`` overrides) for --ablation-epochs (fewer, to fit the machine), the default among them so the
comparison is like with like. For each run: test accuracy on the 6 unseen speakers, per speaker,
training throughput. For the headline run: kws-convert
(int8 accuracy on the same speakers) and kws-eval: thresholds from ``--calibrate`` on a stream of
the validation speakers, then recall and false accepts per hour on a stream of the test speakers,
both in noise at 5-20 dB SNR. Results: bench/results/unseen.md (raw numbers in bench/out/unseen/unseen.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
SOURCE = SHARED / "speech_commands_ar"
TRAIN_NOISE = SHARED / "noise" / "speech_commands"
TEST_NOISE = SHARED / "noise" / "mycroft"
RUNNING_SPEECH = SHARED / "running_speech"
# The last 40% of running_speech (by file name) measures false accepts in real talk; the wake-word
# benchmark trains and mines on the first 60% only, so this part is never trained on anywhere.
RUNNING_SPEECH_HELD_OUT = 0.4
OUT = REPO / "bench" / "out" / "unseen"
RESULTS = REPO / "bench" / "results" / "unseen.md"
WORDS = ("yes", "no", "up", "down", "left", "right", "open", "close", "start", "stop")
LISTS = ("validation_list.txt", "testing_list.txt")
SNR = "5:20"
TARGET_FA_PER_HOUR = 1.0

# Every variant spells out what it changes from today's defaults (tcn, width 128, noise at 0-20 dB
# SNR), so a cached run keeps its meaning when the defaults change. DS_CNN_TUTORIAL is kws's earlier
# default: ds_cnn with the tutorial's augmentation (shift, +-6 dB, raw-volume background, SpecAugment).
DS_CNN_TUTORIAL = ["model.architecture=ds_cnn", "model.width=64", "augment.background_snr_db=[]"]
# The ds_cnn ablation starts from every augmentation on and switches one off at a time.
ALL_ON = ["model.architecture=ds_cnn", "model.width=64", "augment.speed_range=[0.9,1.1]",
          "augment.vtlp_range=[0.9,1.1]", "augment.reverb_probability=0.5", "augment.eq_probability=0.5",
          "augment.band_limit_probability=0.1", "augment.background_snr_db=[0,20]", "augment.gain_db=20"]


def _with(*changes: str) -> list[str]:
    keys = {c.split("=", 1)[0] for c in changes}
    return [s for s in ALL_ON if s.split("=", 1)[0] not in keys] + list(changes)


TCN64 = ["model.width=64"]
ALIGN_END = ["augment.word_position=end", "augment.partial_word_percentage=30", "data.unknown_percentage=30"]
ALIGN_CENTRE = ["augment.word_position=centre", "augment.partial_word_percentage=30", "data.unknown_percentage=30"]

VARIANTS: dict[str, list[str]] = {
    "default": [],
    "ds_cnn_tutorial": DS_CNN_TUTORIAL,
    "ds_cnn_snr": ["model.architecture=ds_cnn", "model.width=64"],
    "ds_cnn_snr_gain20": ["model.architecture=ds_cnn", "model.width=64", "augment.gain_db=20"],
    "ds_cnn_all_on": ALL_ON,
    "no_speed": _with("augment.speed_range=[1.0,1.0]"),
    "no_vtlp": _with("augment.vtlp_range=[1.0,1.0]"),
    "no_reverb": _with("augment.reverb_probability=0"),
    "no_eq_band": _with("augment.eq_probability=0", "augment.band_limit_probability=0"),
    "raw_volume_noise": _with("augment.background_snr_db=[]"),
    "gain_6db": _with("augment.gain_db=6"),
    "before": DS_CNN_TUTORIAL,
    "tcn64_tutorial": TCN64 + ["augment.background_snr_db=[]"],
    "tcn64": TCN64,
    # real negatives: the first 60% of running_speech (never the held-out part the FA/h is measured on)
    "tcn64_negatives": TCN64 + ["data.negatives=[NEGATIVES]"],
    "default_negatives": ["data.negatives=[NEGATIVES]"],
    # words anywhere in the window (a stream sees each word at every position as the window slides)
    "tcn64_shift300": TCN64 + ["augment.time_shift_ms=300"],
    # one alignment per word (its speech ending 150 ms +- 100 ms before the newest edge), windows
    # holding only part of a keyword as _unknown_, and three times the _unknown_ share
    "align_end": ALIGN_END,
    # align_end with every window cutting a word (keyword or _unknown_, up to 90% of it left) as
    # _unknown_: the loudest false accepts of the anywhere runs come 0.3-0.9 s after another word's
    # end, where the window holds that word's tail at its oldest edge; and the same with real negatives
    "end_cut90": ALIGN_END + ["augment.partial_word_unknowns=true", "augment.partial_word_visible=[0.1,0.9]"],
    "end_cut90_negatives": ALIGN_END + ["augment.partial_word_unknowns=true",
                                        "augment.partial_word_visible=[0.1,0.9]", "data.negatives=[NEGATIVES]"],
    # input level over +-20 dB (a stream's talker can be 10-20 dB quieter than the dataset's clips)
    "gain20": ["augment.gain_db=20"],
    "align_end_gain20": ALIGN_END + ["augment.gain_db=20"],
    # the same with each word's speech centred (+-100 ms), where the dataset's clips have it
    "align_centre": ALIGN_CENTRE,
    "align_centre_gain20": ALIGN_CENTRE + ["augment.gain_db=20"],
    "align_centre_gain20_negatives": ALIGN_CENTRE + ["augment.gain_db=20", "data.negatives=[NEGATIVES]"],
    # every word wholly inside the window at any place it fits (a stream's window holds it at all of
    # them), windows cutting a keyword or an _unknown_ word as _unknown_, three times the _unknown_ share
    "anywhere": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                 "augment.partial_word_unknowns=true", "data.unknown_percentage=30"],
    # the same, partial words cut from the keywords only
    "anywhere_kwcut": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                       "data.unknown_percentage=30"],
    # anywhere_kwcut again from another seed (how much of a difference is one training's luck)
    "anywhere_kwcut_seed2": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                             "data.unknown_percentage=30", "train.seed=2"],
    # only whole words count: every window cutting a word (keyword or _unknown_, up to 90% of it
    # left) is _unknown_
    "anywhere_cut90": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                       "augment.partial_word_unknowns=true", "augment.partial_word_visible=[0.1,0.9]",
                       "data.unknown_percentage=30"],
    # anywhere_kwcut with voices (speed and vocal-tract perturbation), with input level over +-20 dB,
    # and with five times the _unknown_ share (the loudest false accepts left are other words)
    "anywhere_kwcut_voices": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                              "data.unknown_percentage=30", "augment.speed_range=[0.9,1.1]",
                              "augment.vtlp_range=[0.9,1.1]"],
    "anywhere_kwcut_gain20": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                              "data.unknown_percentage=30", "augment.gain_db=20"],
    "anywhere_kwcut_unknown50": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                 "data.unknown_percentage=50"],
    # anywhere_kwcut with real negatives (running speech never measured on) as _unknown_
    "anywhere_kwcut_negatives": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                 "data.unknown_percentage=30", "data.negatives=[NEGATIVES]"],
    # anywhere_kwcut with half of the noise mixes and _silence_ clips made of generated noise of a random
    # colour: its seed-2 run took the Mycroft rooms' noise for "right", 22% of the time
    "anywhere_kwcut_gennoise": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                "data.unknown_percentage=30", "augment.generated_noise_share=0.5"],
    "anywhere_kwcut_gennoise_seed2": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                      "data.unknown_percentage=30", "augment.generated_noise_share=0.5",
                                      "train.seed=2"],
    # real negatives with five times the _unknown_ share, and real negatives from another seed
    "anywhere_kwcut_negatives_unknown50": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                           "data.unknown_percentage=50", "data.negatives=[NEGATIVES]"],
    "anywhere_kwcut_negatives_seed2": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                       "data.unknown_percentage=30", "data.negatives=[NEGATIVES]", "train.seed=2"],
    # the same, half again as wide (tcn width 192)
    "anywhere_kwcut_negatives_unknown50_w192": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                                "data.unknown_percentage=50", "data.negatives=[NEGATIVES]",
                                                "model.width=192"],
    # five times the _unknown_ share: the default's stream false accepts are mostly the other words
    "unknown50": ["data.unknown_percentage=50"],
    # distillation: anywhere_kwcut, or the default, learning from the mean of the TEACHER_RUNS (trained
    # first, 30 epochs) as well as from the labels
    "distilled_kwcut": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                        "data.unknown_percentage=30", "train.teachers=TEACHERS"],
    "distilled_kwcut_seed2": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                              "data.unknown_percentage=30", "train.teachers=TEACHERS", "train.seed=2"],
    "distilled_kwcut_w09": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                            "data.unknown_percentage=30", "train.teachers=TEACHERS", "train.teacher_weight=0.9"],
    "distilled_default": ["train.teachers=TEACHERS"],
    "distilled_kwcut_negatives": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                  "data.unknown_percentage=30", "train.teachers=TEACHERS",
                                  "data.negatives=[NEGATIVES]"],
    # mixup of training examples (train.mixup_alpha), on the default and on the stream recipe;
    # weight decay (AdamW) on the stream recipe
    "default_mixup": ["train.mixup_alpha=0.4"],
    "anywhere_kwcut_mixup": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                             "data.unknown_percentage=30", "train.mixup_alpha=0.4"],
    "anywhere_kwcut_wd": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                          "data.unknown_percentage=30", "train.weight_decay=0.05"],
    "anywhere_kwcut_wd_seed2": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                "data.unknown_percentage=30", "train.weight_decay=0.05", "train.seed=2"],
    "anywhere_kwcut_wd02": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                            "data.unknown_percentage=30", "train.weight_decay=0.2"],
    # fewer MFCC coefficients (features.num_features; the default keeps all 40): the high cepstral
    # coefficients carry the harmonics of the speaker's pitch; freq masks scaled to the narrower input
    "default_mfcc13": ["features.num_features=13", "augment.freq_mask_bins=1"],
    "default_mfcc20": ["features.num_features=20", "augment.freq_mask_bins=2"],
    "anywhere_kwcut_mfcc13": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                              "data.unknown_percentage=30", "features.num_features=13", "augment.freq_mask_bins=1"],
    "anywhere_kwcut_mfcc20": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                              "data.unknown_percentage=30", "features.num_features=20", "augment.freq_mask_bins=2"],
    # the optional embedding family (frozen speech embedding + head; README; not a microcontroller
    # model): as it comes, and with the stream recipe: partial words as _unknown_, three times the
    # _unknown_ share, real negatives
    "embedding": ["model.architecture=embedding"],
    "embedding_negatives_seed2": ["model.architecture=embedding", "augment.partial_word_percentage=50",
                                  "data.unknown_percentage=30", "data.negatives=[NEGATIVES]", "train.seed=2"],
    "embedding_negatives": ["model.architecture=embedding", "augment.partial_word_percentage=50",
                            "data.unknown_percentage=30", "data.negatives=[NEGATIVES]"],
    # the stream recipes with half of the noise mixes under words made of the real negatives' talk
    # (augment.talk_background_share): most missed words of the unseen speakers' stream sit at 5-10 dB
    # SNR, and the training noise files hold no voices
    "embedding_negatives_talk": ["model.architecture=embedding", "augment.partial_word_percentage=50",
                                 "data.unknown_percentage=30", "data.negatives=[NEGATIVES]",
                                 "augment.talk_background_share=0.5"],
    "anywhere_kwcut_negatives_talk": ["augment.word_position=anywhere", "augment.partial_word_percentage=30",
                                      "data.unknown_percentage=30", "data.negatives=[NEGATIVES]",
                                      "augment.talk_background_share=0.5"],
}


def _convert(src: Path, dst: Path) -> None:
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_suffix(".tmp.wav")
        subprocess.run(["sox", str(src), "-b", "16", str(tmp)], check=True)
        os.replace(tmp, dst)


def prepare() -> Path:
    """The dataset as 16-bit WAV (sox) with the dataset's own lists and the training noise; also
    keyword folders of the validation and of the test speakers for the streams. Cached in bench/out."""
    data = OUT / "data"
    done = data / ".complete"
    if done.exists():
        return data
    jobs = []
    for folder in sorted(p for p in SOURCE.iterdir() if p.is_dir()):
        for f in sorted(folder.glob("*.flac")):
            jobs.append((f, data / folder.name / (f.stem + ".wav")))
    for f in sorted(TRAIN_NOISE.glob("*.wav")):
        jobs.append((f, data / "_background_noise_" / f.name))
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda j: _convert(*j), jobs))
    for name in LISTS:
        lines = (SOURCE / name).read_text().split()
        (data / name).write_text("".join(line.replace(".flac", ".wav") + "\n" for line in lines))
        stream_dir = OUT / ("stream_validation" if name.startswith("validation") else "stream_test")
        shutil.rmtree(stream_dir, ignore_errors=True)
        for line in lines:
            rel = line.replace(".flac", ".wav")
            link = stream_dir / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(data / rel)
    done.touch()
    return data


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode:
        raise SystemExit(f"{what} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res


def train_variant(data: Path, name: str, sets: list[str], epochs: int) -> dict:
    out = OUT / "runs" / f"{name}-{epochs}ep"
    if (out / "metrics.json").is_file():
        print(f"{name}: cached in {out}", file=sys.stderr)
    else:
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "kws.trainer.cli", "--data", str(data), "--out", str(out), "-q",
               "--words", ",".join(WORDS), "--set", f"train.epochs={epochs}", "--set", "train.batch_size=32"]
        for s in sets:  # placeholders resolved only where used: the teachers need five trained runs
            if "NEGATIVES" in s:
                s = s.replace("NEGATIVES", str(negatives_dir()))
            if "TEACHERS" in s:
                s = s.replace("TEACHERS", teacher_list())
            cmd += ["--set", s]
        t0 = time.time()
        _run(cmd, f"training {name}")
        (out / "bench_wall_s.txt").write_text(f"{time.time() - t0:.1f}\n")
    metrics = json.loads((out / "metrics.json").read_text())
    state = json.loads((out / "state.json").read_text())
    split = json.loads((out / "split.json").read_text())
    n_train = len(split["splits"]["training"])
    steady = [h["seconds"] for h in state["history"][1:]] or [state["history"][0]["seconds"]]
    steady.sort()
    median_s = steady[len(steady) // 2]
    return {"name": name, "epochs": epochs, "sets": sets, "run": str(out), "metrics": metrics, "n_train": n_train,
            "noisy": noisy_eval(out),
            "clips_per_s": n_train / median_s, "wall_s": float((out / "bench_wall_s.txt").read_text()) if (out / "bench_wall_s.txt").is_file()
            else float(state.get("train_seconds", 0.0)),
            "speakers": split.get("speakers")}


NOISY_SNRS_DB = (20.0, 10.0, 5.0)
NOISY_FILE = "bench_noisy_eval.json"


def noisy_eval(run: Path) -> dict:
    """Test accuracy of a run's Keras model on its (unseen) test speakers' clips mixed with the Mycroft
    noise training never heard, at each of NOISY_SNRS_DB (fixed seed, same mixes for every run);
    cached in the run folder. Runs TensorFlow in a subprocess."""
    cached = run / NOISY_FILE
    if "architecture: embedding" in (run / "config.yaml").read_text():
        return {"accuracy": {}, "skipped": "embedding family (this check feeds MFCC windows to model.keras)"}
    if not cached.is_file():
        _run([sys.executable, "-m", "bench.bench_unseen", "--noisy-eval", str(run)], f"noisy eval of {run.name}")
    return json.loads(cached.read_text())


def _noisy_eval_here(run: Path) -> None:
    import numpy as np

    import keras
    from kws.edge.audio import load_audio
    from kws.edge.frontend import Frontend
    from kws.trainer import augment as aug
    from kws.trainer import dataset as ds
    from kws.trainer.config import load_config

    cfg = load_config(run / "config.yaml")
    index = ds.load_index(run / "split.json")
    items = [i for i in index.splits["testing"] if i.path]
    labels = index.labels
    clips, _ = ds.load_clips([i.path for i in items], cfg.features.sample_rate, cfg.features.clip_samples)
    noises = [load_audio(f, cfg.features.sample_rate)[0] for f in sorted(TEST_NOISE.glob("*.wav"))]
    model = keras.models.load_model(run / "model.keras")
    fe = Frontend(cfg.features)
    y = np.array([labels.index(i.label) for i in items])
    out = {"clips": len(items), "noise": str(TEST_NOISE.relative_to(SHARED)), "accuracy": {}}
    for snr in NOISY_SNRS_DB:
        rng = np.random.default_rng(int(snr))
        audio = np.stack([aug.mix_at_snr(clips[i.path].astype(np.float32) / 32768.0,
                                         aug.background_segment(noises, cfg.features.clip_samples, rng), snr)
                          for i in items])
        pred = model.predict(fe.features(np.clip(audio, -1, 1)), verbose=0, batch_size=256).argmax(axis=1)
        out["accuracy"][f"{snr:g}"] = float((pred == y).mean())
    (run / NOISY_FILE).write_text(json.dumps(out))


def convert(run: Path) -> dict:
    """kws-convert of ``run`` into ``run/dist`` (once; cached there) and its report."""
    dist = run / "dist"
    if not (dist / "convert_report.json").is_file():
        # a failed int8 guard exits non-zero but writes the report (and the float model): go on with it
        subprocess.run([sys.executable, "-m", "kws.converters.cli", "-m", str(run), "--out", str(dist)],
                       capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if not (dist / "convert_report.json").is_file():
        raise SystemExit(f"kws-convert wrote no report in {dist}")
    return json.loads((dist / "convert_report.json").read_text())


def convert_and_stream(run: Path, hours: float) -> dict:
    """kws-convert of ``run``, its int8 model calibrated on the validation speakers' stream and
    measured on the test speakers' stream and the held-out running speech (cached in run/dist)."""
    dist = run / "dist"
    cached = dist / f"bench_stream_{hours:g}h.json"
    if cached.is_file():
        out = json.loads(cached.read_text())
        if "running_speech" not in out:  # cached before the running-speech stream was measured
            out["running_speech"] = _running_speech_fa(str(dist / out["streamed_model"]))
            cached.write_text(json.dumps(out))
        return out
    report = convert(run)
    out = {"convert_report": report, **calibrate_and_stream(dist, OUT / "stream_validation", hours)}
    cached.write_text(json.dumps(out))
    return out


def calibrate_and_stream(dist: Path, keywords: Path, hours: float, model: str | None = None,
                         calibrate_options: tuple[str, ...] = ()) -> dict:
    """The int8 model in ``dist`` (a kws-convert folder, whose manifest takes the thresholds; or
    ``model``, e.g. an ensemble's folder) calibrated by ``kws-eval --calibrate`` (with
    ``calibrate_options``) on a stream of the clips in ``keywords``, then measured at those
    thresholds on the test speakers' stream and on the held-out running speech."""
    int8 = model or str(dist / ("model_int8.tflite" if (dist / "model_int8.tflite").is_file()
                                else "model_float.tflite"))
    out: dict = {"streamed_model": Path(int8).name}
    cal = _run([sys.executable, "-m", "kws.evaluation.eval_cli", "-m", int8, "--keywords",
                str(keywords), "--noise", str(TEST_NOISE), "--hours", str(hours), "--snr", SNR,
                "--seed", "1", "--calibrate", "--target-fa-per-hour", str(TARGET_FA_PER_HOUR), *calibrate_options,
                "--json"], "kws-eval --calibrate")
    out["calibration"] = json.loads(cal.stdout.strip().splitlines()[-1])
    test = _run([sys.executable, "-m", "kws.evaluation.eval_cli", "-m", int8, "--keywords",
                 str(OUT / "stream_test"), "--noise", str(TEST_NOISE), "--hours", str(hours), "--snr", SNR,
                 "--seed", "2", "--json"], "kws-eval on the test speakers")
    out["test_stream"] = json.loads(test.stdout.strip().splitlines()[-1])
    out["running_speech"] = _running_speech_fa(int8)
    return out


# the distilled variants' teachers: the five runs whose mean score found the most words on the
# test stream (bench_stream_oracle's ensemble)
TEACHER_RUNS = ("default", "anywhere", "anywhere_kwcut", "anywhere_kwcut_seed2", "anywhere_cut90")
TEACHER_EPOCHS = 30


def teacher_list() -> str:
    """``[run,run,...]`` of the TEACHER_RUNS' folders, each of which must be trained already."""
    runs = [OUT / "runs" / f"{name}-{TEACHER_EPOCHS}ep" for name in TEACHER_RUNS]
    missing = [r.name for r in runs if not (r / "model.keras").is_file()]
    if missing:
        raise SystemExit(f"teachers not trained yet: {', '.join(missing)} (run --headline "
                         f"{','.join(TEACHER_RUNS)} first)")
    return "[" + ",".join(str(r) for r in runs) + "]"


def negatives_dir() -> Path:
    """A folder of links to the first 60% of running_speech (by file name): real talk without the
    command words, for training and mining only."""
    out = OUT / "negatives_train"
    if not out.is_dir():
        files = sorted(RUNNING_SPEECH.glob("*.flac"))
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in files[:int(len(files) * (1 - RUNNING_SPEECH_HELD_OUT))]:
            (tmp / f.name).symlink_to(f)
        tmp.rename(out)
    return out


def running_speech_stream() -> tuple[Path, Path]:
    """One WAV of the held-out running speech (no command words in it) and its ground truth: a
    single non-keyword event, so all of it counts as keyword-free time."""
    wav, labels = OUT / "running_speech_heldout.wav", OUT / "running_speech_heldout.csv"
    if not wav.is_file():
        files = sorted(RUNNING_SPEECH.glob("*.flac"))
        held = files[int(len(files) * (1 - RUNNING_SPEECH_HELD_OUT)):]
        tmp = wav.with_suffix(".tmp.wav")
        subprocess.run(["sox", *map(str, held), "-r", "16000", "-c", "1", "-b", "16", str(tmp)], check=True)
        tmp.rename(wav)
    labels.write_text("label,start_s,end_s\n_unknown_,0,1\n")
    return wav, labels


def _running_speech_fa(model: str) -> dict:
    """kws-eval of a converted model (at its manifest's thresholds) on the held-out running speech."""
    speech_wav, speech_labels = running_speech_stream()
    res = _run([sys.executable, "-m", "kws.evaluation.eval_cli", "-m", model, "--stream", str(speech_wav),
                "--labels", str(speech_labels), "--json"], "kws-eval on held-out running speech")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _row_table(rows: list[dict]) -> list[str]:
    lines = ["| variant | overrides | epochs | test acc (unseen speakers) | worst speaker | same, in unseen noise "
             f"at {' / '.join(f'{s:g}' for s in NOISY_SNRS_DB)} dB SNR | validation acc | train clips/s | wall |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        test = r["metrics"].get("test") or {}
        spk = test.get("by_speaker") or {}
        worst = spk.get("worst", [{}])[0]
        lines.append(f"| {r['name']} | {'<br>'.join(f'`{s}`' for s in r['sets']) or '(configs/default.yaml)'} | "
                     f"{r['epochs']} | "
                     f"{_pct(test.get('accuracy'))} (n={test.get('count')}, {spk.get('unseen_speakers', '?')} unseen) | "
                     f"{worst.get('speaker', '?')} {_pct(worst.get('accuracy'))} | "
                     f"{' / '.join(_pct(v) for v in r['noisy']['accuracy'].values()) or 'not measured'} | "
                     f"{_pct((r['metrics'].get('validation') or {}).get('accuracy'))} | {r['clips_per_s']:.0f} | "
                     f"{r['wall_s'] / 60:.1f} min |")
    return lines


def _shown(path: Path) -> str:
    """A path as a command line in the results should show it: relative to the repository if inside."""
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def write_results(headlines: list[dict], rows: list[dict], streams: list[dict | None], args,
                  extras: list[dict] = ()) -> None:
    partial = Path(args.results).resolve() != RESULTS.resolve()
    lines = [f"## {args.title}", "",
             f"Command: `python -m bench.bench_unseen --headline {','.join(args.headline)} --epochs {args.epochs} --ablation-epochs "
             f"{args.ablation_epochs} --stream-hours {args.stream_hours}"
             f" --variants '{','.join(args.variants)}' --extra '{args.extra}'"
             + (f" --results {_shown(Path(args.results))} --title '{args.title}'" if partial else "")
             + "` "
             f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
             f"{os.getloadavg()[0]:.1f} at the end; other jobs shared the cores, so times are upper bounds). "
             "batch 32; 10 words + `_unknown_` (6 other words) + `_silence_`; test = the dataset's "
             "6 test speakers, never heard in training. \"In unseen noise\": the same test clips mixed with "
             "the nine Mycroft room recordings (training mixes only the Speech Commands noise files).", "",
             f"### Full-length runs ({args.epochs} epochs) with int8 and streams: today's default (tcn, width "
             "128, noise at 0-20 dB SNR), kws's earlier default (ds_cnn_tutorial), and the others named", ""]
    lines += _row_table(headlines)
    for default, stream in zip(headlines, streams):
        per = ((default["metrics"].get("test") or {}).get("by_speaker") or {}).get("per_speaker", {})
        lines += ["", f"**{default['name']}**, test accuracy per unseen speaker: "
                  + ", ".join(f"{g} {_pct(v['accuracy'])} (n={v['count']})" for g, v in per.items())]
        if not stream:
            continue
        rep = stream.get("convert_report") or {}
        arts = rep.get("artifacts", {})
        int8 = arts.get("int8", {})
        keras = rep.get("keras", {})
        worst = sorted((int8.get("per_speaker") or {}).items(), key=lambda kv: kv[1]["change_points"])[:3]
        lines += ["", f"kws-convert ({default['name']}): Keras {_pct(keras.get('accuracy'))}, int8 "
                  f"{_pct(int8.get('accuracy'))} on the same {(rep.get('evaluation') or {}).get('clips')} "
                  f"{(rep.get('evaluation') or {}).get('split')} clips of unseen speakers; guard "
                  f"{'passed' if (rep.get('guard') or {}).get('passed') else 'FAILED'}. Largest int8 changes per "
                  "speaker: " + ", ".join(f"{g} {c['change_points']:+.2f} points" for g, c in worst) + "."]
        cal = stream["calibration"].get("calibration", {})
        t = stream["test_stream"]["at_manifest_thresholds"]
        lines += ["", f"Streaming ({default['name']}), {stream.get('streamed_model')} through kws-eval (edge recognizer), "
                  f"{args.stream_hours} h streams "
                  f"in Mycroft noise at {SNR} dB SNR: thresholds from `kws-eval --calibrate --target-fa-per-hour "
                  f"{TARGET_FA_PER_HOUR:g}` on the validation speakers' stream "
                  f"({json.dumps(cal.get('thresholds'))}; there FA/h {cal.get('fa_per_hour')}, FRR "
                  f"{cal.get('frr')}); on the test speakers' stream: **recall {_pct(1 - t['frr'])}, "
                  f"{t['fa_per_hour']:.2f} false accepts per hour** ({t.get('false_accepts')} in "
                  f"{t.get('keyword_free_hours', '?')} keyword-free hours)."]
        speech = (stream.get("running_speech") or {}).get("at_manifest_thresholds")
        if speech:
            lines[-1] += (f" On {speech['keyword_free_hours'] * 60:.0f} min of held-out real running speech "
                          f"(running_speech, last {RUNNING_SPEECH_HELD_OUT:.0%} of files), same thresholds: "
                          f"**{speech['fa_per_hour']:.2f} false accepts per hour** ({speech['false_accepts']}).")
    if rows:
        lines += ["", f"### ds_cnn ablation ({args.ablation_epochs} epochs each, one seed)", "",
                  "ds_cnn_all_on: ds_cnn with every augmentation on; each no_* row switches one off; before: "
                  "ds_cnn with the tutorial's augmentation (kws's default until tcn).", ""] + _row_table(rows)
    if extras:
        lines += ["", f"### More {args.epochs}-epoch runs (clip accuracy only)", ""] + _row_table(extras)
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(lines) + "\n")
    (OUT / f"{results.stem}.json").write_text(json.dumps({"headlines": headlines, "rows": rows, "streams": streams},
                                                         indent=1, default=str))
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--headline", default="default,ds_cnn_tutorial,tcn64_tutorial,tcn64_negatives,tcn64_shift300,"
                    "ds_cnn_snr,ds_cnn_all_on,ds_cnn_snr_gain20",
                    help="configs trained for --epochs with conversion and streams")
    ap.add_argument("--variants", default="ds_cnn_all_on,no_speed,no_vtlp,no_reverb,no_eq_band,raw_volume_noise,"
                    "gain_6db,before",
                    help="ablation, comma-separated: " + ", ".join(VARIANTS) + " (empty: none)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the headline run")
    ap.add_argument("--extra", default="tcn64", help="more configs trained for --epochs, clip accuracy only")
    ap.add_argument("--ablation-epochs", type=int, default=15)
    ap.add_argument("--stream-hours", type=float, default=0.5)
    ap.add_argument("--no-stream", action="store_true", help="skip kws-convert and the streams")
    ap.add_argument("--results", default=str(RESULTS),
                    help="the Markdown table to write (a partial run elsewhere keeps the full table)")
    ap.add_argument("--title", default="Speakers never heard (Arabic Speech Commands, speaker-disjoint split)",
                    help="the results' heading")
    ap.add_argument("--noisy-eval", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.noisy_eval:
        _noisy_eval_here(Path(args.noisy_eval))
        return
    args.variants = [v for v in args.variants.split(",") if v]
    args.headline = [v for v in args.headline.split(",") if v]
    if not SOURCE.is_dir():
        raise SystemExit(f"skipping: {SOURCE} not found (the benchmark needs ../shared/data)")
    data = prepare()
    headlines, streams = [], []
    for name in args.headline:
        headlines.append(train_variant(data, name, VARIANTS[name], args.epochs))
        streams.append(None if args.no_stream else convert_and_stream(Path(headlines[-1]["run"]), args.stream_hours))
        write_results(headlines, [], streams, args)
    rows: list[dict] = []
    for name in args.variants:
        rows.append(train_variant(data, name, VARIANTS[name], args.ablation_epochs))
        write_results(headlines, rows, streams, args)
    extras = [train_variant(data, name, VARIANTS[name], args.epochs) for name in args.extra.split(",") if name]
    write_results(headlines, rows, streams, args, extras)


if __name__ == "__main__":
    main()
