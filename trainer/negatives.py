"""Real negative audio for training (``data.negatives``, ``kws-train --negatives DIR``): long
recordings of speech, TV, music or rooms that never hold the wake word, in any length and any format
``kws.edge.audio`` reads.

Files are indexed from their headers only; every epoch draws random clip-long windows (every second
of negative audio equally likely, seeded by ``(seed, epoch)``) and reads just those frames after a
seek, so an hour-long recording never sits in memory. Negatives are training data only: validation
and test keep the dataset folder's own split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.edge.audio import AUDIO_SUFFIXES, open_audio, resample, to_int16
from kws.edge.errors import AudioError

from .dataset import NOT_READ_NOTE, DataError, audio_files

NEGATIVE_KEY_PREFIX = "<negatives>/"  # clip-dict keys of negative windows (never a real file name)
EPOCH_KEY = NEGATIVE_KEY_PREFIX + "epoch/"  # windows redrawn every epoch
MINED_KEY = NEGATIVE_KEY_PREFIX + "mined/"  # hard negatives found by kws-mine (fixed)
NEGATIVES_STREAM = 7919  # third seed component of the negative draw (apart from the augmentation's)
TALK_STREAM = 7927  # third seed component of the talk-background draw (apart from the windows trained on)
TALK_POOL_WINDOWS = 256  # talk windows read per draw; each noise mix under a word takes one of them
RESAMPLE_PAD_S = 0.02  # extra audio read on each side of a window that must be resampled
SILENT_PEAK = 1e-4  # a talk window whose peak stays below this (digital silence) is not used


@dataclass(frozen=True)
class NegativeFile:
    """One indexed recording: its path, its own rate and its length in frames."""

    path: str
    sample_rate: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class NegativeSet:
    """Every negative recording found under the given folders (or files)."""

    files: tuple[NegativeFile, ...]

    @property
    def seconds(self) -> float:
        return float(sum(f.duration_s for f in self.files))

    def describe(self) -> str:
        return f"{len(self.files)} files, {self.seconds / 3600:.2f} h"


def is_negative_key(key: str | None) -> bool:
    """True for a clip-dict key that names a negative window rather than a dataset file."""
    return key is not None and key.startswith(NEGATIVE_KEY_PREFIX)


LISTED_NEGATIVES = "negatives.txt"  # in a dataset folder: its negatives sources, one per line (kws-synth)


def write_listed_negatives(data_dir: str | Path, sources: Sequence[str | Path]) -> Path:
    """Record ``sources`` (as absolute paths) in ``data_dir/negatives.txt``, for kws-train to use."""
    from kws.edge.manifest import atomic_write_text

    path = Path(data_dir) / LISTED_NEGATIVES
    lines = [str(Path(s).expanduser().resolve()) for s in sources]
    atomic_write_text(path, "".join(f"{line}\n" for line in lines))
    return path


def listed_negatives(data_dir: str | Path) -> tuple[str, ...]:
    """The negatives sources a dataset folder lists in negatives.txt (relative lines are taken from
    the folder; blank lines and '#' comments skipped); () without the file. A listed source that
    is missing is a DataError naming negatives.txt."""
    path = Path(data_dir) / LISTED_NEGATIVES
    if not path.is_file():
        return ()
    sources = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text list (byte {exc.start} is not UTF-8)") from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        source = Path(line).expanduser()
        source = source if source.is_absolute() else Path(data_dir) / source
        if not source.exists():
            raise DataError(f"{path}:{number}: negatives source {line} not found "
                            "(fix the line, or give --negatives DIR to use others)")
        sources.append(str(source))
    return tuple(sources)


def negative_files(source: str | Path) -> list[Path]:
    """The audio files of one negatives source: the file itself (whatever its name), or every audio
    file under the folder that kws-train would read as data (``audio_files``: no hidden file or
    folder, nothing in ``__MACOSX/``). A missing source, or a folder without audio, is a DataError."""
    path = Path(source).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: negatives folder not found (data.negatives / --negatives)")
    found = audio_files(path)
    if not found:
        raise DataError(f"{source}: no audio files ({', '.join(AUDIO_SUFFIXES)}; {NOT_READ_NOTE}) for negatives")
    return found


def index_negatives(sources: Sequence[str | Path]) -> NegativeSet:
    """Index negative recordings by their headers (no samples read). A file that cannot be read is
    a DataError whose one line names it."""
    files = []
    for source in sources:
        for path in negative_files(source):
            try:
                with open_audio(path) as reader:
                    info, seekable = reader.info, reader.seekable
            except AudioError as exc:
                raise DataError(f"{exc} (negatives)") from None
            if not seekable or info.num_samples <= 0:
                raise DataError(f"{path}: not a usable negatives file (holds no samples or cannot seek)")
            files.append(NegativeFile(str(path), info.sample_rate, info.num_samples))
    return NegativeSet(tuple(files))


def draw_windows(negatives: NegativeSet, n: int, clip_s: float, rng: np.random.Generator) -> list[tuple[int, float]]:
    """``n`` random windows as (file index, start second): files weighted by length, starts uniform."""
    if n <= 0 or not negatives.files:
        return []
    lengths = np.array([f.duration_s for f in negatives.files], dtype=np.float64)
    which = rng.choice(len(lengths), size=n, p=lengths / lengths.sum())
    starts = rng.random(n) * np.maximum(lengths[which] - clip_s, 0.0)
    return [(int(i), float(s)) for i, s in zip(which, starts)]


def read_window(path: str, start_s: float, clip_samples: int, sample_rate: int) -> np.ndarray:
    """``clip_samples`` samples at ``sample_rate`` starting at ``start_s`` of a file, reading only
    those frames (plus a little on each side when the file has another rate); zero-padded at the end."""
    with open_audio(path) as reader:
        rate = reader.info.sample_rate
        if rate == sample_rate:
            audio = reader.read_frames(int(round(start_s * rate)), clip_samples)
        else:
            pad = int(math.ceil(RESAMPLE_PAD_S * rate))
            first = int(round(start_s * rate))
            begin = max(0, first - pad)
            raw = reader.read_frames(begin, int(math.ceil(clip_samples * rate / sample_rate)) + pad + (first - begin))
            audio = resample(raw, rate, sample_rate)
            skip = int(round((first - begin) * sample_rate / rate))
            audio = audio[skip:skip + clip_samples]
    if len(audio) < clip_samples:
        audio = np.pad(audio, (0, clip_samples - len(audio)))
    return audio.astype(np.float32, copy=False)


def read_windows(windows: Sequence[tuple[str, float]], clip_samples: int, sample_rate: int) -> list[np.ndarray]:
    """int16 clips (the format of the training clip dict) of (path, start second) windows."""
    out = []
    for path, start in windows:
        try:
            out.append(to_int16(read_window(path, start, clip_samples, sample_rate)))
        except AudioError as exc:
            raise DataError(f"{exc} (negatives)") from None
    return out


def epoch_windows(negatives: NegativeSet, n: int, clip_samples: int, sample_rate: int,
                  seed: Sequence[int]) -> dict[str, np.ndarray]:
    """This epoch's ``n`` negative windows keyed ``EPOCH_KEY + k``; the same ``seed`` (train.seed,
    epoch) gives the same windows."""
    rng = np.random.default_rng([*seed, NEGATIVES_STREAM])
    picks = draw_windows(negatives, n, clip_samples / sample_rate, rng)
    clips = read_windows([(negatives.files[i].path, s) for i, s in picks], clip_samples, sample_rate)
    return {f"{EPOCH_KEY}{k}": c for k, c in enumerate(clips)}


def talk_pool(negatives: NegativeSet, samples: int, sample_rate: int, seed: Sequence[int],
              n: int = TALK_POOL_WINDOWS) -> tuple[np.ndarray, ...]:
    """``n`` float32 windows of ``samples`` from the negatives, to mix under words as background
    (``augment.talk_background_share``); the same ``seed`` gives the same windows. Windows that are
    silent (a file's quiet stretch) are dropped: they would add nothing at any SNR. DataError when
    every window drawn is silent (negatives of digital silence: the share would do nothing)."""
    rng = np.random.default_rng([*seed, TALK_STREAM])
    picks = draw_windows(negatives, n, samples / sample_rate, rng)
    out = []
    for i, start in picks:
        try:
            window = read_window(negatives.files[i].path, start, samples, sample_rate)
        except AudioError as exc:
            raise DataError(f"{exc} (negatives)") from None
        if np.max(np.abs(window)) > SILENT_PEAK:
            out.append(window)
    if picks and not out:
        raise DataError(f"augment.talk_background_share: all {len(picks)} windows drawn from the negatives "
                        f"({negatives.describe()}) are digital silence; there is no talk to mix under the words")
    return tuple(out)


def windows_per_epoch(n_keyword_clips: int, percentage: float) -> int:
    """Negative windows per epoch: ``percentage`` of the training keyword clips, rounded up."""
    return int(math.ceil(n_keyword_clips * percentage / 100.0))


MINED_FILE = "mining.json"  # in the run folder: kws-mine's rounds and the hard negatives it kept


def mined_windows(run_path: str | Path) -> list[tuple[str, float]]:
    """The hard negatives kws-mine stored in a run folder, as (path, start second); [] when none."""
    import json

    path = Path(run_path) / MINED_FILE
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(w["file"], float(w["start_s"])) for w in data.get("windows", [])]
