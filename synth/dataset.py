"""Planning and rendering a synthetic keyword dataset in the layout kws-train reads:
``<out>/<word>/*.wav``, ``<out>/_unknown_/*.wav``, ``<out>/_background_noise_/*.wav``,
``validation_list.txt`` / ``testing_list.txt`` (split by voice) and ``synth_meta.csv``.

Every random choice is drawn up front by ``plan`` from the seed, and clips are rendered in fixed
shards, each in a fresh worker process, so the bytes depend on neither the number of workers nor
on what an interrupted run had already finished.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Collection, Sequence

import numpy as np

from kws.edge.audio import AUDIO_SUFFIXES, load_audio, to_int16
from kws.edge.errors import AudioError, KwsError, naming
from kws.edge.manifest import UNKNOWN_LABEL, atomic_write_text
from kws.edge.stopping import STOP_SIGNALS, StopRequest, removed_after

from kws.trainer import augment
from kws.trainer.dataset import NOT_READ_NOTE, SYNTH_META_CSV, SYNTH_STATE_DIR, DataError, audio_files, scan_dataset

from . import clips
from .engines import ENGINES, SynthesisError, Synthesizer, Utterance, Voice, available_voices, phonemes
from .progress import progress_bar
from .vocabulary import CLOSE_WORDS, GENERAL_WORDS, negative_vocabulary

BACKGROUND_DIR = "_background_noise_"
META_CSV = SYNTH_META_CSV
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
STATE_DIR = SYNTH_STATE_DIR  # per-shard records, the options fingerprint, temp files
BACKGROUND_SECONDS = 45
BACKGROUND_RMS = 0.1
# Real recorded speakers (flite, festival) are worth more than espeak's formant voices; festival runs
# in batch mode, so it costs no more per clip than the others.
ENGINE_WEIGHTS = {"espeak": 0.5, "flite": 0.3, "festival": 0.2}
DEFAULT_ENGINE_WEIGHT = 0.2
RATE_LEVELS = tuple(float(x) for x in np.round(np.linspace(0.75, 1.3, 12), 3))
ESPEAK_PITCH_LEVELS = tuple(float(x) for x in np.round(np.linspace(0.6, 1.5, 10), 3))
RECORDED_PITCH_LEVELS = tuple(float(x) for x in np.round(np.linspace(0.8, 1.25, 7), 3))
# Clips per shard (one worker process each): festival pays ~0.5 s to start, so its shards are larger.
SHARD_SIZE = {"espeak": 100, "flite": 60, "festival": 200}
# Of the _unknown_ clips: this share is phonetic neighbours, this share parts of multi-word keywords.
CLOSE_SHARE = 0.5
PARTS_SHARE = 0.15
LEVEL_DEFAULTS_DBFS = {"rms": -24.0, "peak": -3.0}
SAMPLE_RATE_LIMITS = (8000, 48000)  # Hz of the written clips
CLIP_MS_LIMITS = (100, 10000)
META_FIELDS = ("path", "label", "text", "engine", "voice", "accent", "voice_id", "rate", "pitch", "speed",
               "gain_db", "level_mode", "level_dbfs", "reverb_rt60_s", "noise", "snr_db", "offset_ms",
               "speech_ms", "split", "speaker", "voice_shift", "tempo")
# Pseudo-speakers (--voice-variants): each is an engine voice with its own pitch-and-formant shift,
# tempo and microphone (EQ curve), drawn once per (voice, variant) so all its clips sound alike.
VARIANT_SHIFT_RANGE = (0.84, 1.19)  # pitch and formants together: about -3 .. +3 semitones
VARIANT_TEMPO_RANGE = (0.88, 1.12)  # speaking rate on top of the engine's rate levels
VARIANT_EQ_DB = 6.0  # the pseudo-speaker's microphone: random EQ within +- this
VARIANT_STREAM = 16  # seed component of the pseudo-speaker draws
OK, TOO_LONG = "ok", "too_long"
LABEL_RE = re.compile(r"[A-Za-z0-9'][A-Za-z0-9'_-]*")


@dataclass(frozen=True)
class SynthOptions:
    """What to synthesize and how much variety to add (ranges are (low, high) inclusive)."""

    words: tuple[str, ...]
    out: Path
    per_word: int = 500
    negatives: int = 1000
    seed: int = 0
    sample_rate: int = 16000
    clip_ms: int = 1000
    speed_range: tuple[float, float] = (0.9, 1.1)
    gain_range: tuple[float, float] = (-6.0, 6.0)
    level_mode: str = "rms"
    level_dbfs: float | None = None  # None: LEVEL_DEFAULTS_DBFS[level_mode]
    reverb_prob: float = 0.3
    rt60_range: tuple[float, float] = (0.2, 0.8)
    noise_prob: float = 0.5
    snr_range: tuple[float, float] = (5.0, 30.0)
    noise_dir: Path | None = None
    engines: tuple[str, ...] = ENGINES
    validation_percentage: float = 10.0
    testing_percentage: float = 10.0
    voice_variants: int = 0  # pseudo-speakers made from each clip's voice (0: none)

    def __post_init__(self) -> None:
        problems = []
        if self.voice_variants < 0:
            problems.append(f"voice_variants must be >= 0, got {self.voice_variants}")
        if not self.words or any(not w.strip() for w in self.words):
            problems.append(f"words must be non-empty, got {self.words!r}")
        bad = [w for w in self.words if w.strip() and not LABEL_RE.fullmatch(w)]
        if bad:  # _x is reserved (_unknown_, _silence_), -x reads as an option
            problems.append(f"words must be letters, digits, ' - or _ (folder names) and start with a letter, "
                            f"digit or ', got {bad!r}")
        said: dict[str, list[str]] = {}
        for w in self.words:
            if w.strip():
                said.setdefault(spoken(w), []).append(w)
        alike = [ws for ws in said.values() if len(ws) > 1]
        if len(set(self.words)) != len(self.words):
            problems.append(f"words repeat: {self.words!r}")
        elif alike:  # two labels of the same speech: a model cannot tell them apart (one folder on macOS)
            problems.append("words are said alike, so their clips would be the same speech under two labels: "
                            + "; ".join(" and ".join(repr(w) for w in ws) for ws in alike))
        if self.per_word < 1 or self.negatives < 0:
            problems.append("per_word must be >= 1 and negatives >= 0")
        if not SAMPLE_RATE_LIMITS[0] <= self.sample_rate <= SAMPLE_RATE_LIMITS[1]:
            problems.append(f"sample_rate {self.sample_rate} outside {SAMPLE_RATE_LIMITS[0]}..{SAMPLE_RATE_LIMITS[1]} Hz")
        if not CLIP_MS_LIMITS[0] <= self.clip_ms <= CLIP_MS_LIMITS[1]:
            problems.append(f"clip_ms {self.clip_ms} outside {CLIP_MS_LIMITS[0]}..{CLIP_MS_LIMITS[1]}")
        for name in ("speed_range", "gain_range", "rt60_range", "snr_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                problems.append(f"{name}: low {lo} > high {hi}")
        if not 0 < self.speed_range[0]:
            problems.append(f"speed_range must be positive, got {self.speed_range}")
        if not 0 < self.rt60_range[0]:
            problems.append(f"rt60_range must be positive, got {self.rt60_range}")
        for name in ("reverb_prob", "noise_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be within 0..1, got {getattr(self, name)}")
        if self.level_mode not in LEVEL_DEFAULTS_DBFS:
            problems.append(f"level_mode must be one of {tuple(LEVEL_DEFAULTS_DBFS)}, got {self.level_mode!r}")
        if self.validation_percentage < 0 or self.testing_percentage < 0 or \
                self.validation_percentage + self.testing_percentage >= 100:
            problems.append("validation + testing percentages must be >= 0 and below 100")
        unknown = set(self.engines) - set(ENGINES)
        if unknown or not self.engines:
            problems.append(f"engines must be among {ENGINES}, got {self.engines!r}")
        if problems:
            raise KwsError("; ".join(problems))

    @property
    def clip_samples(self) -> int:
        """Samples per clip."""
        return self.sample_rate * self.clip_ms // 1000

    @property
    def target_dbfs(self) -> float:
        """The level every clip is normalised to before its random gain."""
        return LEVEL_DEFAULTS_DBFS[self.level_mode] if self.level_dbfs is None else self.level_dbfs

    def fingerprint(self) -> dict:
        """Everything that decides the bytes of the dataset (not the output folder or worker count)."""
        d = asdict(self)
        d.pop("out")
        if not self.voice_variants:
            d.pop("voice_variants")  # datasets made before the option keep their fingerprint
        d["noise_dir"] = str(self.noise_dir) if self.noise_dir else None
        return json.loads(json.dumps(d))


@dataclass(frozen=True)
class ClipTask:
    """One clip with every random choice already drawn."""

    path: str
    label: str
    text: str
    voice: Voice
    rate: float
    pitch: float
    speed: float
    gain_db: float
    position: float  # where the word starts, as a share of the free space in the clip
    reverb_rt60_s: float
    noise: str
    snr_db: float
    noise_position: float
    seed: int
    split: str
    shard: int = -1
    variant: int = 0  # 0: the engine's voice as it is; k > 0: its k-th pseudo-speaker
    voice_shift: float = 1.0
    tempo: float = 1.0
    eq_gains: tuple[float, ...] = ()

    @property
    def speaker(self) -> str:
        """The voice a listener hears: the engine voice, or one of its pseudo-speakers."""
        return self.voice.voice_id if not self.variant else f"{self.voice.voice_id}-v{self.variant}"


@dataclass
class ClipResult:
    """What rendering one clip gave: status ok / too_long / an error, and what was measured."""

    path: str
    status: str
    speech_ms: float = 0.0
    offset_ms: float = 0.0
    written: bool = False


@dataclass
class Summary:
    """The numbers of a run, for the one-line report."""

    per_label: dict[str, int]
    voices: int
    split_voices: dict[str, int]
    written: int
    already: int
    too_long: list[tuple[ClipTask, float]] = field(default_factory=list)
    failed: list[tuple[ClipTask, str]] = field(default_factory=list)
    seconds: float = 0.0
    word_gap: str | None = None  # kws-train's warning line for a held-out split with no clip of a word

    @property
    def clips(self) -> int:
        """Clips in the dataset."""
        return sum(self.per_label.values())


def _rate_pitch_levels(voice: Voice) -> list[tuple[float, float]]:
    """The (rate, pitch) combinations a voice can say a word with."""
    if voice.engine == "espeak":
        pitches = ESPEAK_PITCH_LEVELS
    else:
        pitches = RECORDED_PITCH_LEVELS if voice.has_pitch else (1.0,)
    return [(r, p) for r in RATE_LEVELS for p in pitches]


def pick_voices(voices: Sequence[Voice], n: int, rng: np.random.Generator) -> list[tuple[Voice, float, float]]:
    """n (voice, rate, pitch) combinations: an engine drawn by ENGINE_WEIGHTS, then that engine's
    voices in turn (a shuffled order each round, so an engine's voices are used equally often; a
    recorded speaker with a voice in two engines, kal or slt, comes up about twice as often as one with
    a single voice), then the voice's next (rate, pitch) from its shuffled list,
    so no combination repeats until every one of that voice has been used."""
    by_engine: dict[str, list[Voice]] = {}
    for v in voices:
        by_engine.setdefault(v.engine, []).append(v)
    engines = sorted(by_engine)
    weights = np.array([ENGINE_WEIGHTS.get(e, DEFAULT_ENGINE_WEIGHT) for e in engines])
    weights /= weights.sum()
    levels = {}
    for e in engines:
        for v in by_engine[e]:
            combos = _rate_pitch_levels(v)
            levels[v] = [combos[i] for i in rng.permutation(len(combos))]
    rounds: dict[str, list[Voice]] = {e: [] for e in engines}
    used: Counter = Counter()
    out = []
    for _ in range(n):
        e = engines[int(rng.choice(len(engines), p=weights))]
        if not rounds[e]:  # a new round over this engine's voices
            rounds[e] = [by_engine[e][i] for i in rng.permutation(len(by_engine[e]))]
        v = rounds[e].pop()
        rate, pitch = levels[v][used[v] % len(levels[v])]
        used[v] += 1
        out.append((v, rate, pitch))
    return out


def assign_splits(counts: dict[str, int], validation_pct: float, testing_pct: float,
                  scarce: Collection[str] = ()) -> dict[str, str]:
    """Split groups (voices) -> training/validation/testing, so validation and testing hear only
    voices training never hears. Groups go, in SHA-1 order, to the first split they fit (its clips
    stay within half a group of the split's share); a split left empty gets the first free group no
    larger than twice its share (else the smallest); training keeps at least one group. Groups in
    ``scarce`` (the few recorded human speakers behind flite/festival) come after all others, so
    they stay in training whenever the other voices can fill the held-out splits."""
    groups = sorted(counts, key=lambda g: (g in scarce, hashlib.sha1(g.encode()).hexdigest()))
    total = sum(counts.values())
    out = {g: "training" for g in groups}
    if len(groups) < 3:
        return out
    targets = {split: total * pct / 100 for split, pct in (("validation", validation_pct),
                                                           ("testing", testing_pct)) if pct > 0}
    taken = {split: 0 for split in targets}
    for g in groups[:-1]:  # the last group in hash order always trains
        for split, target in targets.items():
            if taken[split] + counts[g] / 2 <= target:
                out[g] = split
                taken[split] += counts[g]
                break
    for split, target in targets.items():
        free = [g for g in groups if out[g] == "training"]
        if taken[split] or len(free) < 2:
            continue
        fitting = [g for g in free if counts[g] <= 2 * target]
        g = fitting[0] if fitting else min(free, key=lambda g: counts[g])
        out[g] = split
        taken[split] += counts[g]
    return out


def spoken(label: str) -> str:
    """The text said for a label: '-' and '_' join the words of a phrase ('hey-computer')."""
    return re.sub(r"[-_]+", " ", label).strip().lower()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def negative_texts(opts: SynthOptions, rng: np.random.Generator, table=None) -> list[str]:
    """The words spoken in _unknown_ clips: phonetic neighbours, parts of multi-word keywords and
    general words, each list cycled in a shuffled order so every word gets its turn."""
    close, general, parts = negative_vocabulary([spoken(w) for w in opts.words], table)
    n_parts = int(round(opts.negatives * PARTS_SHARE)) if parts else 0
    n_close = int(round(opts.negatives * CLOSE_SHARE)) if close else 0
    n_general = opts.negatives - n_parts - n_close
    out = []
    for pool, n in ((close, n_close), (parts, n_parts), (general, n_general)):
        order = [pool[i] for i in rng.permutation(len(pool))]
        out += [order[i % len(order)] for i in range(n)]
    return out


def plan(opts: SynthOptions, voices: Sequence[Voice], noise_names: Sequence[str], table=None) -> list[ClipTask]:
    """Every clip of the dataset, deterministically from opts.seed."""
    rng = np.random.default_rng(opts.seed)
    jobs: list[tuple[str, str]] = [(w, spoken(w)) for w in opts.words for _ in range(opts.per_word)]
    jobs += [(UNKNOWN_LABEL, t) for t in negative_texts(opts, rng, table)]
    counts = Counter(label for label, _ in jobs)
    combos = {label: pick_voices(voices, counts[label], rng) for label in sorted(counts)}
    group_counts = Counter(c[0].split_group for cs in combos.values() for c in cs)
    recorded = {c[0].split_group for cs in combos.values() for c in cs if c[0].speaker}
    splits = assign_splits(group_counts, opts.validation_percentage, opts.testing_percentage, recorded)
    used: Counter = Counter()
    tasks = []
    for label, text in jobs:
        k = used[label]
        used[label] += 1
        voice, rate, pitch = combos[label][k]
        speed = float(np.round(rng.uniform(*opts.speed_range), 3))
        gain = float(np.round(rng.uniform(*opts.gain_range), 2))
        position = float(rng.random())
        rt60 = float(np.round(rng.uniform(*opts.rt60_range), 3)) if rng.random() < opts.reverb_prob else 0.0
        noise = noise_names[int(rng.integers(len(noise_names)))] if rng.random() < opts.noise_prob else ""
        snr = float(np.round(rng.uniform(*opts.snr_range), 1)) if noise else 0.0
        noise_position = float(rng.random())
        name = f"{voice.voice_id}_nohash_{_slug(text) + '_' if label == UNKNOWN_LABEL else ''}{k}.wav"
        tasks.append(ClipTask(f"{label}/{name}", label, text, voice, rate, pitch, speed, gain, position, rt60,
                              noise, snr, noise_position, int(rng.integers(2 ** 31)),
                              splits[voice.split_group]))
    if opts.voice_variants:
        tasks = _with_variants(tasks, opts, noise_names)
    return _assign_shards(tasks)


def pseudo_speaker(opts: SynthOptions, voice_id: str, variant: int) -> tuple[float, float, tuple[float, ...]]:
    """(voice shift, tempo, EQ gains) of one pseudo-speaker, the same for every clip it says."""
    key = int(hashlib.sha1(voice_id.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([opts.seed, VARIANT_STREAM, key, variant])
    lo, hi = np.log(VARIANT_SHIFT_RANGE)
    shift = float(np.round(np.exp(rng.uniform(lo, hi)), 3))
    tempo = float(np.round(rng.uniform(*VARIANT_TEMPO_RANGE), 3))
    eq = tuple(float(g) for g in np.round(rng.uniform(-VARIANT_EQ_DB, VARIANT_EQ_DB, len(augment.EQ_POINTS_HZ)), 2))
    return shift, tempo, eq


def _with_variants(tasks: list[ClipTask], opts: SynthOptions, noise_names: Sequence[str]) -> list[ClipTask]:
    """Each clip followed by ``opts.voice_variants`` clips of the same words by its voice's
    pseudo-speakers (same split as the voice; own level, room and noise draws: noise in
    ``opts.noise_prob`` of them, of any kind, whether or not the clip they come from has noise)."""
    rng = np.random.default_rng([opts.seed, VARIANT_STREAM])
    out = []
    for t in tasks:
        out.append(t)
        folder, name = t.path.split("/", 1)
        for k in range(1, opts.voice_variants + 1):
            shift, tempo, eq = pseudo_speaker(opts, t.voice.voice_id, k)
            rt60 = float(np.round(rng.uniform(*opts.rt60_range), 3)) if rng.random() < opts.reverb_prob else 0.0
            noise = noise_names[int(rng.integers(len(noise_names)))] if rng.random() < opts.noise_prob else ""
            out.append(replace(t, path=f"{folder}/{t.voice.voice_id}-v{k}{name[len(t.voice.voice_id):]}",
                               variant=k, voice_shift=shift, tempo=tempo, eq_gains=eq,
                               gain_db=float(np.round(rng.uniform(*opts.gain_range), 2)),
                               position=float(rng.random()), reverb_rt60_s=rt60, noise=noise,
                               snr_db=float(np.round(rng.uniform(*opts.snr_range), 1)) if noise else 0.0,
                               noise_position=float(rng.random()), seed=int(rng.integers(2 ** 31))))
    return out


def _assign_shards(tasks: list[ClipTask]) -> list[ClipTask]:
    """Shard numbers by engine, in plan order: a shard holds one engine's clips; a pseudo-speaker's
    clip goes with the clip it is made from (one synthesis for both), and only those count for size."""
    by_engine: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        if not t.variant:
            by_engine.setdefault(t.voice.engine, []).append(i)
    out = list(tasks)
    shard = 0
    for engine in sorted(by_engine):
        idx = by_engine[engine]
        size = SHARD_SIZE.get(engine, 100)
        for start in range(0, len(idx), size):
            for i in idx[start:start + size]:
                out[i] = replace(tasks[i], shard=shard)
            shard += 1
    for i, t in enumerate(out):
        if t.variant:
            out[i] = replace(t, shard=out[i - 1].shard)
    return out


# ---- rendering (in worker processes) -------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(opts: SynthOptions, noises: dict[str, np.ndarray], scratch: str) -> None:
    # Ctrl-C and a hang-up reach every process of the terminal: the parent handles them and stops the
    # pool, whose terminate() ends a worker with SIGTERM's default action
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGTERM else signal.SIG_IGN)
    # the engines' temp folders go under the parent's scratch folder, which the parent removes even
    # when it had to terminate a worker in the middle of one
    tempfile.tempdir = scratch
    _WORKER.update(opts=opts, noises=noises)


def write_clip(path: Path, clip: np.ndarray, sample_rate: int, tmp_dir: Path) -> None:
    """16-bit mono PCM, written to a temp file outside the label folders, then renamed into place;
    a failure (a full disk) leaves no temp file and names ``path``."""
    from scipy.io import wavfile

    tmp = tmp_dir / f"{os.getpid()}-{path.name}"
    try:
        with open(tmp, "wb") as f:
            wavfile.write(f, int(sample_rate), to_int16(clip))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise naming(exc, path, tmp) from None


def finish_clip(audio: np.ndarray, task: ClipTask, opts: SynthOptions, noises: dict[str, np.ndarray]
                ) -> tuple[np.ndarray | None, float, float]:
    """Synthesized audio -> the clip (None when the word is longer than the clip), speech ms, offset ms."""
    rng = np.random.default_rng(task.seed)
    sr = opts.sample_rate
    audio = clips.trim_silence(audio, sr)
    if task.variant:  # a pseudo-speaker: its own pitch and formants, and its own tempo
        audio = augment.time_stretch(augment.voice_shift(audio, task.voice_shift), task.tempo)
    audio = augment.speed(audio, task.speed)
    speech_ms = 1000.0 * len(audio) / sr
    if not clips.fits(audio, opts.clip_samples):
        return None, speech_ms, 0.0
    clip, start = clips.place(audio, opts.clip_samples, task.position)
    if task.reverb_rt60_s:
        clip = augment.reverb(clip, task.reverb_rt60_s, sr, rng)
    if task.eq_gains:  # the pseudo-speaker's microphone
        clip = augment.room_and_channel(clip, None, task.eq_gains, None, sr)
    clip = clips.normalise(clip, opts.target_dbfs + task.gain_db, opts.level_mode)
    if task.noise:
        noise = augment.noise_segment(noises[task.noise], len(clip), task.noise_position)
        clip = augment.mix_at_snr(clip, noise, task.snr_db)
        peak = float(np.max(np.abs(clip)))
        limit = 10 ** (clips.PEAK_LIMIT_DBFS / 20)
        if peak > limit:
            clip = (clip * (limit / peak)).astype(np.float32)
    return clip, speech_ms, 1000.0 * start / sr


def render_shard(tasks: Sequence[ClipTask]) -> list[ClipResult]:
    """Synthesize a shard in a fresh process and write the clips that are not on disk yet. All of
    the shard is synthesized even when some files exist: libespeak-ng's output depends on the
    utterances before it in the process, so a shard is always rendered whole and in order."""
    opts: SynthOptions = _WORKER["opts"]
    noises = _WORKER["noises"]
    tmp_dir = opts.out / STATE_DIR / "tmp"
    bases = [t for t in tasks if not t.variant]  # pseudo-speakers reuse the audio of the clip before them
    rendered = Synthesizer(opts.sample_rate).render([Utterance(t.voice, t.text, t.rate, t.pitch) for t in bases])
    audios, k = [], -1
    for t in tasks:
        k += 0 if t.variant else 1
        audios.append(rendered[k])
    results = []
    for task, audio in zip(tasks, audios):
        if isinstance(audio, SynthesisError):
            results.append(ClipResult(task.path, f"error: {audio}"))
            continue
        clip, speech_ms, offset_ms = finish_clip(audio, task, opts, noises)
        if clip is None:
            results.append(ClipResult(task.path, TOO_LONG, round(speech_ms, 1)))
            continue
        target = opts.out / task.path
        written = not target.exists()
        if written:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_clip(target, clip, opts.sample_rate, tmp_dir)
        results.append(ClipResult(task.path, OK, round(speech_ms, 1), round(offset_ms, 1), written))
    return results


# ---- the run (parent process) ----------------------------------------------------------------------

def background_noises(opts: SynthOptions) -> dict[str, np.ndarray]:
    """Generated white/pink/brown noise plus every audio file of the user's noise folder, by name
    (hidden files and folders and __MACOSX/ passed by, as every kws tool does)."""
    rng = np.random.default_rng([opts.seed, 1])
    n = BACKGROUND_SECONDS * opts.sample_rate
    noises = {f"{k}_noise": BACKGROUND_RMS * augment.colored_noise(k, n, rng) for k in augment.NOISE_KINDS}
    if opts.noise_dir is not None:
        folder = Path(opts.noise_dir)
        if not folder.is_dir():
            raise KwsError(f"--noise-dir {folder}: not a folder")
        files = audio_files(folder)
        if not files:
            raise KwsError(f"--noise-dir {folder}: no audio files in it "
                           f"({', '.join(AUDIO_SUFFIXES)}; {NOT_READ_NOTE})")
        for f in files:
            try:
                audio, _ = load_audio(f, opts.sample_rate)
            except AudioError as exc:
                print(f"kws-synth: warning: skipped noise file: {exc}", file=sys.stderr)
                continue
            noises[_user_noise_name(f.relative_to(folder), noises)] = audio
    return noises


def _user_noise_name(relative: Path, taken: Collection[str]) -> str:
    """The name of a --noise-dir file in _background_noise_/: ``user_`` and its path as a slug; where
    that is taken (fan.wav and fan.flac, Fan.wav and fan.wav) the suffix joins it, then a number, so
    no file of the folder is dropped."""
    name = f"user_{_slug(str(relative.with_suffix('')))}"
    if name in taken:
        name = f"user_{_slug(str(relative))}"
    unique, k = name, 2
    while unique in taken:
        unique, k = f"{name}-{k}", k + 1
    return unique


def claim_out(out: Path) -> None:
    """Make ``out`` a kws-synth dataset folder: a new or empty one (hidden files aside), or one an
    earlier run made (it holds STATE_DIR). Any other folder is refused: its validation_list.txt,
    testing_list.txt and synth_meta.csv would be replaced and its split changed."""
    if out.is_dir() and not (out / STATE_DIR).is_dir() and any(not p.name.startswith(".") for p in out.iterdir()):
        raise KwsError(f"{out}: exists and holds files kws-synth did not make (its lists and "
                       f"synth_meta.csv would be replaced); give --out a new or empty folder")
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)


# the kws-synth option behind each fingerprint key whose name is not the key's own
FINGERPRINT_OPTIONS = {"speed_range": "--speed", "gain_range": "--gain", "rt60_range": "--rt60",
                       "snr_range": "--snr", "level_mode": "--level", "validation_percentage": "--validation-percent",
                       "testing_percentage": "--testing-percent"}
RANGE_SEPARATOR = ":"  # as --speed 0.9:1.1 and the other ranges are given


def _option_value(value) -> str:
    """A fingerprint value as it is given on the command line ('0.9:1.1', 'cat,dog', 'default')."""
    if value is None:
        return "default"
    if isinstance(value, list):
        numeric = all(isinstance(v, (int, float)) for v in value)
        return (RANGE_SEPARATOR if numeric else ",").join(f"{v:g}" if numeric else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def options_changed(earlier: dict, now: dict) -> list[str]:
    """'--per-word 6 there, 8 now' for each option whose value differs between two fingerprints."""
    return [f"{FINGERPRINT_OPTIONS.get(key, '--' + key.replace('_', '-'))} {_option_value(earlier.get(key))} there, "
            f"{_option_value(now.get(key))} now"
            for key in sorted(set(earlier) | set(now)) if earlier.get(key) != now.get(key)]


def _check_fingerprint(opts: SynthOptions) -> None:
    state = opts.out / STATE_DIR / "options.json"
    fingerprint = opts.fingerprint()
    current = json.dumps(fingerprint, indent=1, sort_keys=True)
    if state.is_file() and state.read_text() != current:
        try:
            changed = options_changed(json.loads(state.read_text()), fingerprint)
        except (ValueError, AttributeError):  # a damaged record: which options differ is unknown
            changed = []
        which = "; ".join(changed) or str(state)
        raise KwsError(f"{opts.out} holds a dataset made with other options ({which}); "
                       "use another --out or delete it to start over")
    atomic_write_text(state, current)


def _shard_record(opts: SynthOptions, shard: int) -> Path:
    return opts.out / STATE_DIR / "shards" / f"{shard:05d}.json"


def _load_record(opts: SynthOptions, shard: int) -> dict[str, dict] | None:
    path = _shard_record(opts, shard)
    try:
        return {r["path"]: r for r in json.loads(path.read_text())}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _shard_done(opts: SynthOptions, shard_tasks: Sequence[ClipTask], record: dict | None) -> bool:
    """Whether a shard needs no rendering: every clip is on disk or too long. A clip the engine failed
    on (a festival timeout on a loaded machine) is tried again by the rerun the summary suggests."""
    if record is None or set(record) != {t.path for t in shard_tasks}:
        return False
    return all(record[t.path]["status"] == TOO_LONG
               or (record[t.path]["status"] == OK and (opts.out / t.path).is_file()) for t in shard_tasks)


def generate(opts: SynthOptions, jobs: int, quiet: bool = False) -> Summary:
    """Render the dataset (skipping finished clips), write the lists and CSV; returns the summary."""
    t0 = time.time()
    voices = available_voices(opts.engines)
    # read before anything is written: a bad --noise-dir must not leave options.json behind, or
    # the rerun with the folder fixed is refused as "made with other options"
    noises = background_noises(opts)
    claim_out(opts.out)
    _check_fingerprint(opts)
    tmp_dir = opts.out / STATE_DIR / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    for stale in tmp_dir.iterdir():  # half-written clips of a killed run
        stale.unlink()
    for name, audio in noises.items():
        target = opts.out / BACKGROUND_DIR / f"{name}.wav"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_clip(target, audio, opts.sample_rate, tmp_dir)
    table = None
    if opts.negatives:
        vocab = list(dict.fromkeys([spoken(w) for w in opts.words] + list(GENERAL_WORDS) + list(CLOSE_WORDS)))
        table = phonemes(vocab)
    tasks = plan(opts, voices, sorted(noises), table)
    shards: dict[int, list[ClipTask]] = {}
    for t in tasks:
        shards.setdefault(t.shard, []).append(t)
    records = {s: _load_record(opts, s) for s in shards}
    todo = [s for s in shards if not _shard_done(opts, shards[s], records[s])]
    # big festival shards first, so no worker is left with one at the end
    todo.sort(key=lambda s: (-len(shards[s]), s))
    done_before = sum(len(shards[s]) for s in shards if s not in todo)
    written = 0
    bar = progress_bar(len(tasks), done_before, "kws-synth", disable=quiet)
    try:
        for shard, results in _run_shards([shards[s] for s in todo], todo, opts, noises, jobs):
            records[shard] = {r.path: asdict(r) for r in results}
            atomic_write_text(_shard_record(opts, shard), json.dumps([asdict(r) for r in results]))
            written += sum(r.written for r in results)
            bar.update(len(results))
    finally:
        bar.close()
    return _finish(opts, tasks, records, written, time.time() - t0)


def _run_shards(shard_tasks: list[list[ClipTask]], ids: list[int], opts: SynthOptions,
                noises: dict[str, np.ndarray], jobs: int):
    """Yield (shard id, results) as shards finish; one fresh process per shard."""
    if not shard_tasks:
        return
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:  # no fork (Windows): spawn gives the same bytes, it only starts slower
        ctx = multiprocessing.get_context("spawn")
    import scipy.fft  # noqa: F401  imported once here, so forked workers do not each pay ~1 s for it
    import scipy.io.wavfile  # noqa: F401
    import scipy.signal  # noqa: F401

    stop = StopRequest().install()
    try:
        scratch = tempfile.mkdtemp(prefix="kws-synth-")
        # a further stop can still cut pool.join() short (a worker may hang), never the removal of
        # the scratch folder after it
        with removed_after(lambda: shutil.rmtree(scratch, ignore_errors=True)):
            pool = ctx.Pool(processes=max(1, min(jobs, len(shard_tasks))), initializer=_init_worker,
                            initargs=(opts, noises, scratch), maxtasksperchild=1)
            try:
                pending = {i: pool.apply_async(render_shard, (tasks,)) for i, tasks in zip(ids, shard_tasks)}
                while pending:
                    stop.check()
                    ready = [i for i, r in pending.items() if r.ready()]
                    if not ready:
                        time.sleep(0.02)
                        continue
                    for i in ready:
                        yield i, pending.pop(i).get()
                pool.close()
            except BaseException:
                pool.terminate()
                raise
            finally:
                pool.join()
    finally:
        stop.restore()


def _finish(opts: SynthOptions, tasks: list[ClipTask], records: dict, written: int, seconds: float) -> Summary:
    rows, too_long, failed = [], [], []
    for t in tasks:
        r = (records.get(t.shard) or {}).get(t.path)
        if r is None:
            continue
        if r["status"] == OK:
            rows.append((t, r))
        elif r["status"] == TOO_LONG:
            too_long.append((t, r["speech_ms"]))
        else:
            failed.append((t, r["status"]))
    for split, name in (("validation", VALIDATION_LIST), ("testing", TESTING_LIST)):
        atomic_write_text(opts.out / name, "".join(f"{t.path}\n" for t, _ in rows if t.split == split))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(META_FIELDS)
    for t, r in rows:
        w.writerow([t.path, t.label, t.text, t.voice.engine, t.voice.name, t.voice.accent, t.voice.voice_id,
                    t.rate, t.pitch if t.voice.has_pitch else "", t.speed, t.gain_db, opts.level_mode,
                    round(opts.target_dbfs + t.gain_db, 2), t.reverb_rt60_s, t.noise, t.snr_db if t.noise else "",
                    r["offset_ms"], r["speech_ms"], t.split, t.speaker, t.voice_shift, t.tempo])
    atomic_write_text(opts.out / META_CSV, buf.getvalue())
    per_label = {label: 0 for label in dict.fromkeys(t.label for t in tasks)}
    for t, _ in rows:
        per_label[t.label] += 1
    split_voices = {s: len({t.speaker for t, _ in rows if t.split == s})
                    for s in ("training", "validation", "testing")}
    return Summary(per_label=per_label, voices=len({t.speaker for t, _ in rows}), split_voices=split_voices,
                   written=written, already=len(rows) - written, too_long=too_long, failed=failed, seconds=seconds,
                   word_gap=word_gap_warning(opts))


def word_gap_warning(opts: SynthOptions) -> str | None:
    """The line kws-train and kws data-stats print when validation or testing of the finished folder
    holds no clip of a word (``DataIndex.word_gap_warning`` on the split its lists decide), else None;
    None too where kws-train would refuse the folder (a word without a clip: the run says so itself)."""
    try:
        index = scan_dataset(opts.out, opts.words, 0, 0, opts.validation_percentage, opts.testing_percentage,
                             seed=0)
    except DataError:
        return None
    return index.word_gap_warning()
