"""Planning and rendering a synthetic keyword dataset in the layout kws-train reads:
<out>/<word>/*.wav, <out>/_unknown_/*.wav, <out>/_background_noise_/*.wav, validation_list.txt and
testing_list.txt (split by voice), and synth_meta.csv describing every clip."""
from __future__ import annotations

import csv
import io
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kws.edge.audio import load_audio, write_wav
from kws.edge.errors import AudioError, KwsError
from kws.edge.manifest import UNKNOWN_LABEL, atomic_write_text

from . import clips
from .engines import Voice, available_voices, synthesize
from .vocabulary import negative_vocabulary

BACKGROUND_DIR = "_background_noise_"
META_CSV = "synth_meta.csv"
NOISE_KINDS = ("white", "pink", "brown")
BACKGROUND_SECONDS = 30
# flite and festival carry the real recorded voices (kal, ked, awb, rms, slt), so they get more than their
# share of voices; festival less than flite because each call starts text2wave (~200 ms vs ~10 ms).
ENGINE_WEIGHTS = {"espeak": 0.6, "flite": 0.34, "festival": 0.06}
RATE_LEVELS = np.round(np.linspace(0.75, 1.35, 9), 3)
PITCH_LEVELS = np.round(np.linspace(0.7, 1.45, 9), 3)
META_FIELDS = ("path", "label", "text", "engine", "voice", "rate", "pitch", "speed", "reverb_rt60_s",
               "noise", "snr_db", "split")


@dataclass(frozen=True)
class SynthOptions:
    """What to synthesize and how much variety to add."""

    words: tuple[str, ...]
    out: Path
    per_word: int = 500
    negatives: int = 1000
    seed: int = 0
    sample_rate: int = 16000
    clip_ms: int = 1000
    speed_range: tuple[float, float] = (0.9, 1.1)
    reverb_prob: float = 0.3
    noise_prob: float = 0.5
    snr_range: tuple[float, float] = (5.0, 30.0)
    noise_dir: Path | None = None
    validation_percentage: float = 10.0
    testing_percentage: float = 10.0

    @property
    def clip_samples(self) -> int:
        return self.sample_rate * self.clip_ms // 1000


@dataclass(frozen=True)
class ClipTask:
    """One clip to render, with every random choice already drawn (so resume and parallelism
    cannot change the result)."""

    path: str
    label: str
    text: str
    voice: Voice
    rate: float
    pitch: float
    speed: float
    reverb_rt60_s: float
    noise: str
    snr_db: float
    seed: int
    split: str


def _pick_voices(voices: list[Voice], rng: np.random.Generator, n: int) -> list[tuple[Voice, float, float]]:
    """n (voice, rate, pitch) combinations without repeats, engines weighted by ENGINE_WEIGHTS."""
    by_engine: dict[str, list[Voice]] = {}
    for v in voices:
        by_engine.setdefault(v.engine, []).append(v)
    engines = sorted(by_engine)
    weights = np.array([ENGINE_WEIGHTS.get(e, 0.2) for e in engines])
    weights /= weights.sum()
    capacity = len(voices) * len(RATE_LEVELS) * len(PITCH_LEVELS)
    seen: set[tuple[str, float, float]] = set()
    out = []
    while len(out) < n:
        if len(seen) >= capacity:
            seen.clear()  # more clips than distinct combinations: start a second round
        engine = engines[int(rng.choice(len(engines), p=weights))]
        voice = by_engine[engine][int(rng.integers(len(by_engine[engine])))]
        combo = (voice.voice_id, float(rng.choice(RATE_LEVELS)), float(rng.choice(PITCH_LEVELS)))
        if combo in seen:
            continue
        seen.add(combo)
        out.append((voice, combo[1], combo[2]))
    return out


def voice_split(voice_id: str, opts: SynthOptions) -> str:
    """training / validation / testing by the speech_commands hash of the voice id."""
    from kws.trainer.dataset import which_set
    return which_set(f"{voice_id}_nohash_", opts.validation_percentage, opts.testing_percentage)


def plan(opts: SynthOptions, voices: list[Voice], noise_names: list[str]) -> list[ClipTask]:
    """Every clip of the dataset, deterministically from opts.seed."""
    rng = np.random.default_rng(opts.seed)
    jobs: list[tuple[str, str]] = [(w, w) for w in opts.words for _ in range(opts.per_word)]
    if opts.negatives:
        close, general = negative_vocabulary(list(opts.words))
        for i in range(opts.negatives):
            pool = close if close and i % 2 == 0 else general
            jobs.append((UNKNOWN_LABEL, pool[int(rng.integers(len(pool)))]))
    combos_by_label: dict[str, list] = {}
    counts: dict[str, int] = {}
    for label, _ in jobs:
        counts[label] = counts.get(label, 0) + 1
    for label in sorted(counts):
        combos_by_label[label] = _pick_voices(voices, rng, counts[label])
    used: dict[str, int] = {}
    tasks = []
    for label, text in jobs:
        k = used.get(label, 0)
        used[label] = k + 1
        voice, rate, pitch = combos_by_label[label][k]
        lo, hi = opts.speed_range
        speed = float(np.round(rng.uniform(lo, hi), 3)) if hi > lo else 1.0
        rt60 = float(np.round(rng.uniform(0.2, 0.8), 3)) if rng.random() < opts.reverb_prob else 0.0
        noise = noise_names[int(rng.integers(len(noise_names)))] if rng.random() < opts.noise_prob else ""
        snr = float(np.round(rng.uniform(*opts.snr_range), 1)) if noise else 0.0
        slug = text.replace(" ", "-") if label == UNKNOWN_LABEL else ""
        name = f"{voice.voice_id}_nohash_{slug + '_' if slug else ''}{k}.wav"
        tasks.append(ClipTask(f"{label}/{name}", label, text, voice, rate, pitch, speed, rt60, noise, snr,
                              int(rng.integers(2 ** 31)), voice_split(voice.voice_id, opts)))
    return tasks


_NOISES: dict[str, np.ndarray] = {}


def _init_worker(noises: dict[str, np.ndarray]) -> None:
    _NOISES.clear()
    _NOISES.update(noises)


def render(task: ClipTask, opts: SynthOptions) -> tuple[str, str]:
    """Synthesize and write one clip; returns (path, "ok" | "too_long" | error text)."""
    rng = np.random.default_rng(task.seed)
    try:
        audio = synthesize(task.voice, task.text, task.rate, task.pitch, opts.sample_rate)
    except KwsError as exc:
        return task.path, str(exc)
    audio = clips.trim_silence(audio, opts.sample_rate)
    audio = clips.speed(audio, task.speed, opts.sample_rate)
    if task.reverb_rt60_s:
        audio = clips.reverb(audio, task.reverb_rt60_s, opts.sample_rate, rng)
    clip = clips.place(audio, opts.clip_samples, rng)
    if clip is None:
        return task.path, "too_long"
    clip = clips.normalise(clip, rng)
    if task.noise:
        source = _NOISES[task.noise]
        start = int(rng.integers(0, max(1, len(source) - len(clip))))
        clip = clips.add_noise(clip, np.resize(source[start:start + len(clip)], len(clip)), task.snr_db)
    write_wav(opts.out / task.path, clip, opts.sample_rate)
    return task.path, "ok"


def _render_star(args: tuple[ClipTask, SynthOptions]) -> tuple[str, str]:
    return render(*args)


def background_noises(opts: SynthOptions, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Generated white/pink/brown noise plus every WAV of the user's noise folder."""
    n = BACKGROUND_SECONDS * opts.sample_rate
    noises = {f"{k}_noise": 0.1 * clips.colored_noise(k, n, rng) for k in NOISE_KINDS}
    if opts.noise_dir:
        folder = Path(opts.noise_dir)
        if not folder.is_dir():
            raise KwsError(f"{folder}: --noise-dir is not a folder")
        for f in sorted(folder.glob("*.wav")):
            try:
                audio, _ = load_audio(f, opts.sample_rate)
            except AudioError as exc:
                print(f"warning: skipped noise file {exc}", file=sys.stderr)
                continue
            noises[f"user_{f.stem}"] = audio
    return noises


def generate(opts: SynthOptions, jobs: int, quiet: bool = False) -> dict:
    """Render the whole dataset (skipping clips already on disk); returns the summary numbers."""
    t0 = time.time()
    voices = available_voices()
    rng = np.random.default_rng([opts.seed, 1])
    noises = background_noises(opts, rng)
    opts.out.mkdir(parents=True, exist_ok=True)
    for name, audio in noises.items():
        target = opts.out / BACKGROUND_DIR / f"{name}.wav"
        if not target.exists():
            write_wav(target, audio, opts.sample_rate)
    tasks = plan(opts, voices, sorted(noises))
    todo = [t for t in tasks if not (opts.out / t.path).exists()]
    status: dict[str, str] = {t.path: "ok" for t in tasks if t not in todo}
    from tqdm import tqdm
    with tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc="synthesizing", unit="clip",
              disable=quiet, file=sys.stderr) as bar:
        if jobs <= 1:
            _init_worker(noises)
            for t in todo:
                path, st = render(t, opts)
                status[path] = st
                bar.update(1)
        else:
            with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(noises,)) as pool:
                for path, st in pool.map(_render_star, [(t, opts) for t in todo], chunksize=8):
                    status[path] = st
                    bar.update(1)
    written = [t for t in tasks if status.get(t.path) == "ok"]
    _write_lists(opts, written)
    _write_meta(opts, written)
    too_long = [t for t in tasks if status.get(t.path) == "too_long"]
    failed = [(t, status[t.path]) for t in tasks if status.get(t.path) not in ("ok", "too_long")]
    seconds = time.time() - t0
    return {"clips": len(written), "rendered": len(todo), "resumed": len(tasks) - len(todo),
            "too_long": too_long, "failed": failed, "voices": len({t.voice.voice_id for t in written}),
            "seconds": seconds, "per_label": {lab: sum(t.label == lab for t in written)
                                              for lab in dict.fromkeys(t.label for t in tasks)}}


def _write_lists(opts: SynthOptions, written: list[ClipTask]) -> None:
    for split, name in (("validation", "validation_list.txt"), ("testing", "testing_list.txt")):
        atomic_write_text(opts.out / name, "".join(f"{t.path}\n" for t in written if t.split == split))


def _write_meta(opts: SynthOptions, written: list[ClipTask]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(META_FIELDS)
    for t in written:
        w.writerow([t.path, t.label, t.text, t.voice.engine, t.voice.name, t.rate, t.pitch, t.speed,
                    t.reverb_rt60_s, t.noise, t.snr_db, t.split])
    atomic_write_text(opts.out / META_CSV, buf.getvalue())
