"""Long test streams for ``kws-eval``: keyword and unknown-word clips placed at random times
into background noise at a chosen SNR, with a ground-truth CSV ``label,start_s,end_s``.

The start and end of each event are those of its speech, found by energy (frames within
SPEECH_DB_BELOW_PEAK of the clip's loudest frame), not of the clip file's padding.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.edge.audio import AUDIO_SUFFIXES, load_audio
from kws.edge.errors import AudioError, KwsError
from kws.edge.manifest import UNKNOWN_LABEL

MIN_GAP_S = 2.0            # silence between the end of one event and the start of the next, at least ...
MAX_GAP_S = 6.0            # ... and at most
UNKNOWN_SHARE = 0.3        # fraction of events that are unknown words (when there are any)
GAIN_DB = 6.0              # reused clips get a random gain of +-GAIN_DB
ENERGY_FRAME_MS = 10.0
SPEECH_DB_BELOW_PEAK = 25.0
PINK_SECONDS = 60.0        # length of the generated pink-noise loop
MAX_CLIPS_PER_LABEL = 2000
BACKGROUND_DIR = "_background_noise_"
NOISE_RMS = 0.03           # background level (about -30 dBFS)
EPS = 1e-12


@dataclass(frozen=True)
class Event:
    """One ground-truth event in a stream: a keyword or ``_unknown_`` (a non-keyword word)."""

    label: str
    start_s: float
    end_s: float


def speech_bounds(clip: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """(first, last+1) sample of the speech in a clip: frames within SPEECH_DB_BELOW_PEAK of the peak frame."""
    hop = max(1, int(sample_rate * ENERGY_FRAME_MS / 1000))
    n = len(clip) // hop
    if n == 0:
        return 0, len(clip)
    energy = (clip[:n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(axis=1)
    db = 10 * np.log10(energy + EPS)
    active = np.flatnonzero(db >= db.max() - SPEECH_DB_BELOW_PEAK)
    return int(active[0] * hop), int((active[-1] + 1) * hop)


def pink_noise(num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f) noise with unit RMS, by shaping white noise in the frequency domain."""
    spec = np.fft.rfft(rng.normal(size=num_samples))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    pink = np.fft.irfft(spec / np.sqrt(f), n=num_samples)
    return (pink / (np.sqrt(np.mean(pink ** 2)) + EPS)).astype(np.float32)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2) + EPS))


def audio_files(folder: Path) -> list[Path]:
    """The audio files under a folder (AUDIO_SUFFIXES, recursive), sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def load_clips(folder: str | os.PathLike, keywords: Sequence[str], sample_rate: int) -> dict[str, list[np.ndarray]]:
    """Clips per label from a folder of label folders: folders named like a keyword keep their
    name, every other word folder becomes ``_unknown_``; ``_background_noise_`` is skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KwsError(f"{folder}: not a folder of label folders")
    out: dict[str, list[np.ndarray]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name == BACKGROUND_DIR or (sub.name.startswith("_") and sub.name != UNKNOWN_LABEL):
            continue
        label = sub.name if sub.name in keywords else UNKNOWN_LABEL
        for wav in audio_files(sub)[:MAX_CLIPS_PER_LABEL]:
            try:
                audio, _ = load_audio(wav, sample_rate)
            except AudioError:
                continue
            if rms(audio) > 1e-5:
                out.setdefault(label, []).append(audio)
    if not any(k in out for k in keywords):
        raise KwsError(f"{folder}: no folder named after a keyword ({', '.join(keywords)})")
    return out


def load_noise(folder: str | os.PathLike | None, sample_rate: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Noise recordings from a folder of WAVs (recursive), or generated pink noise when None."""
    if folder is None:
        return [pink_noise(int(PINK_SECONDS * sample_rate), rng)]
    wavs = audio_files(Path(folder))
    noises = []
    for w in wavs:
        try:
            audio, _ = load_audio(w, sample_rate)
        except AudioError:
            continue
        if len(audio) >= sample_rate and rms(audio) > 1e-5:
            noises.append(audio / rms(audio))
    if not noises:
        raise KwsError(f"{folder}: no readable noise WAV of at least 1 s")
    return noises


def noise_bed(noises: Sequence[np.ndarray], num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """A unit-RMS background of ``num_samples``: random pieces of the noise files, crossfaded."""
    out = np.empty(num_samples, dtype=np.float32)
    pos = 0
    while pos < num_samples:
        src = noises[int(rng.integers(len(noises)))]
        start = int(rng.integers(0, max(1, len(src) - 1)))
        piece = src[start:start + num_samples - pos]
        out[pos:pos + len(piece)] = piece
        pos += len(piece)
    return out


def build_stream(clips: dict[str, list[np.ndarray]], noises: Sequence[np.ndarray], seconds: float,
                 snr_db: tuple[float, float], sample_rate: int, seed: int = 0,
                 min_gap_s: float = MIN_GAP_S, max_gap_s: float = MAX_GAP_S,
                 unknown_share: float = UNKNOWN_SHARE) -> tuple[np.ndarray, list[Event]]:
    """Mix events into a noise bed; returns (float32 audio, events sorted by time).

    Each event's speech is scaled so its RMS over the speech part is ``snr`` dB above the noise
    (snr drawn uniformly from ``snr_db``); a reused clip also gets a random gain in the SNR draw.
    Keywords are drawn round-robin over the keyword labels so every label appears.
    """
    rng = np.random.default_rng(seed)
    total = int(seconds * sample_rate)
    noise = noise_bed(noises, total, rng) * NOISE_RMS
    out = noise.astype(np.float32).copy()
    keywords = sorted(k for k in clips if k != UNKNOWN_LABEL)
    unknowns = clips.get(UNKNOWN_LABEL, [])
    events: list[Event] = []
    pos = int(rng.uniform(0.5, max_gap_s) * sample_rate)
    kw_turn = 0
    while True:
        if unknowns and rng.random() < unknown_share:
            label = UNKNOWN_LABEL
            clip = unknowns[int(rng.integers(len(unknowns)))]
        else:
            label = keywords[kw_turn % len(keywords)]
            kw_turn += 1
            clip = clips[label][int(rng.integers(len(clips[label])))]
        s0, s1 = speech_bounds(clip, sample_rate)
        if pos + len(clip) > total:
            break
        speech = clip[s0:s1]
        seg = slice(pos + s0, pos + s1)
        snr = rng.uniform(*snr_db)
        gain = rms(noise[seg]) * 10 ** (snr / 20) / rms(speech)
        out[pos:pos + len(clip)] += gain * clip
        events.append(Event(label, round((pos + s0) / sample_rate, 4), round((pos + s1) / sample_rate, 4)))
        pos += s1 + int(rng.uniform(min_gap_s, max_gap_s) * sample_rate)
    peak = float(np.max(np.abs(out))) if len(out) else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32), events


def write_labels(path: str | os.PathLike, events: Sequence[Event]) -> None:
    """Write the ground-truth CSV: header ``label,start_s,end_s``, one event per row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "start_s", "end_s"])
        for e in events:
            w.writerow([e.label, f"{e.start_s:.4f}", f"{e.end_s:.4f}"])


def read_labels(path: str | os.PathLike) -> list[Event]:
    """Read a ground-truth CSV ``label,start_s[,end_s]`` (header optional; a missing end = start)."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise KwsError(f"{path}: cannot read labels ({exc.strerror})") from None
    events = []
    for n, row in enumerate(rows, 1):
        row = [c.strip() for c in row]
        if not row or not row[0] or row[0].startswith("#") or (n == 1 and row[0] == "label"):
            continue
        try:
            start = float(row[1])
            end = float(row[2]) if len(row) > 2 and row[2] else start
        except (IndexError, ValueError):
            raise KwsError(f"{path}:{n}: expected 'label,start_s,end_s', got {','.join(row)!r}") from None
        if end < start:
            raise KwsError(f"{path}:{n}: end_s {end} is before start_s {start}")
        events.append(Event(row[0], start, end))
    return sorted(events, key=lambda e: e.start_s)
