"""Long test streams for ``kws-eval``: keyword and unknown-word clips placed at random times
into background noise at a chosen SNR, with a ground-truth CSV ``label,start_s,end_s``; and the
ground truth of a given stream, in that format or the TF tutorial's ``label, time_ms``.

The start and end of each event are those of its speech, found by energy (frames within
SPEECH_DB_BELOW_PEAK of the clip's loudest frame), not of the clip file's padding.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kws.edge.audio import load_audio
from kws.edge.errors import AudioError, KwsError
from kws.edge.manifest import BACKGROUND_LABELS, UNKNOWN_LABEL, atomic_write_text
from kws.trainer.dataset import NOT_READ_NOTE, UNKNOWN_DIR, audio_files, passed_by_name

MIN_GAP_S = 2.0            # silence between the end of one event and the start of the next, at least ...
MAX_GAP_S = 6.0            # ... and at most
UNKNOWN_SHARE = 0.3        # fraction of events that are unknown words (when there are any)
GAIN_DB = 6.0              # reused clips get a random gain of +-GAIN_DB
ENERGY_FRAME_MS = 10.0
SPEECH_DB_BELOW_PEAK = 25.0
PINK_SECONDS = 60.0        # length of the generated pink-noise loop
MAX_CLIPS_PER_LABEL = 2000
NOISE_RMS = 0.03           # background level (about -30 dBFS)
PEAK_LIMIT = 0.99          # no sample of a placed word (with the noise under it) beyond this
BED_PEAK = 0.5             # the noise bed's rare transients (a slam at 78x its RMS) are clipped here,
                           # as a microphone next to a talker would saturate; words keep their headroom
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


SkipHook = Callable[[Path, str], None]  # told of each file left out: its path and why
ReadHook = Callable[[Path, int], None]  # told of each file read: its path and its own sample rate


def load_clips(folder: str | os.PathLike, keywords: Sequence[str], sample_rate: int,
               on_skip: SkipHook | None = None, on_read: ReadHook | None = None) -> dict[str, list[np.ndarray]]:
    """Clips per label from a folder of label folders: folders named like a keyword keep their
    name, every other word folder becomes ``_unknown_`` (and ``_unknown_/``); as kws-train, no other
    folder named with a leading '_' is read (``kws.trainer.dataset.unread_folders`` names those holding
    audio), nor a hidden one or __MACOSX. An unreadable file is left out and passed to ``on_skip``
    with the reason; every file read is passed to ``on_read`` with its own sample rate."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KwsError(f"{folder}: not a folder of label folders")
    out: dict[str, list[np.ndarray]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if passed_by_name(sub.name) or (sub.name.startswith("_") and sub.name != UNKNOWN_DIR):
            continue
        label = sub.name if sub.name in keywords else UNKNOWN_LABEL
        for wav in audio_files(sub)[:MAX_CLIPS_PER_LABEL]:
            try:
                audio, info = load_audio(wav, sample_rate)
            except AudioError as exc:
                if on_skip is not None:
                    on_skip(wav, str(exc))
                continue
            if on_read is not None:
                on_read(wav, info.sample_rate)
            if rms(audio) > 1e-5:
                out.setdefault(label, []).append(audio)
    if not any(k in out for k in keywords):
        named = [k for k in keywords if (folder / k).is_dir()]
        if named:  # there are keyword folders: what they lack is audio
            raise KwsError(f"{folder}: no readable, non-silent audio in its keyword folders "
                           f"({', '.join(k + '/' for k in named)}; {NOT_READ_NOTE})")
        raise KwsError(f"{folder}: no folder named after a keyword ({', '.join(keywords)})")
    return out


def load_noise(folder: str | os.PathLike | None, sample_rate: int, rng: np.random.Generator,
               on_skip: SkipHook | None = None, on_read: ReadHook | None = None) -> list[np.ndarray]:
    """Noise recordings from a folder of WAVs (recursive), or generated pink noise when None; each
    file left out or read is passed to ``on_skip`` or ``on_read`` as ``load_clips`` does."""
    if folder is None:
        return [pink_noise(int(PINK_SECONDS * sample_rate), rng)]
    wavs = audio_files(Path(folder))
    noises = []
    for w in wavs:
        try:
            audio, info = load_audio(w, sample_rate)
        except AudioError as exc:
            if on_skip is not None:
                on_skip(w, str(exc))
            continue
        if on_read is not None:
            on_read(w, info.sample_rate)
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
    noise = np.clip(noise_bed(noises, total, rng) * NOISE_RMS, -BED_PEAK, BED_PEAK)
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
        if pos + len(clip) > total:
            break
        event, speech_end = _place(out, noise, clip, label, pos, snr_db, sample_rate, rng)
        events.append(event)
        pos += speech_end + int(rng.uniform(min_gap_s, max_gap_s) * sample_rate)
    return out, events


def _place(out: np.ndarray, noise: np.ndarray, clip: np.ndarray, label: str, pos: int, snr_db: tuple[float, float],
           sample_rate: int, rng: np.random.Generator) -> tuple[Event, int]:
    """Add ``clip`` at ``pos`` with its speech ``snr`` dB (drawn from ``snr_db``) above the noise there;
    returns the event and the end of the speech within the clip (samples)."""
    s0, s1 = speech_bounds(clip, sample_rate)
    seg = slice(pos + s0, pos + s1)
    snr = rng.uniform(*snr_db)
    gain = rms(noise[seg]) * 10 ** (snr / 20) / rms(clip[s0:s1])
    span = slice(pos, pos + len(clip))
    gain = min(gain, _headroom_gain(out[span], clip))
    out[span] += gain * clip
    return Event(label, round((pos + s0) / sample_rate, 4), round((pos + s1) / sample_rate, 4)), s1


def _headroom_gain(under: np.ndarray, clip: np.ndarray) -> float:
    """The largest gain at which ``clip`` added to ``under`` stays within PEAK_LIMIT.

    A word that would clip is turned down on its own (its SNR drops a little), as a talker
    close to the microphone meets the input's ceiling; the rest of the stream keeps its level.
    """
    clip_peak = float(np.max(np.abs(clip))) if len(clip) else 0.0
    under_peak = float(np.max(np.abs(under))) if len(under) else 0.0
    if clip_peak <= EPS:
        return float("inf")
    return max(0.0, PEAK_LIMIT - under_peak) / clip_peak


def build_clip_stream(clips: dict[str, list[np.ndarray]], noises: Sequence[np.ndarray], snr_db: tuple[float, float],
                      sample_rate: int, seed: int = 0, min_gap_s: float = MIN_GAP_S,
                      max_gap_s: float = MAX_GAP_S) -> tuple[np.ndarray, list[Event]]:
    """Like ``build_stream``, but every clip exactly once, in a seeded random order, and the stream
    as long as they need: a detection rate over a set of recordings, each counted once."""
    rng = np.random.default_rng(seed)
    order = [(label, clip) for label in sorted(clips) for clip in clips[label]]
    order = [order[i] for i in rng.permutation(len(order))]
    gaps = rng.uniform(min_gap_s, max_gap_s, len(order) + 1)
    total = int((sum(len(c) for _, c in order) / sample_rate + gaps.sum()) * sample_rate)
    noise = np.clip(noise_bed(noises, total, rng) * NOISE_RMS, -BED_PEAK, BED_PEAK)
    out = noise.astype(np.float32).copy()
    events, pos = [], int(gaps[0] * sample_rate)
    for (label, clip), gap in zip(order, gaps[1:]):
        events.append(_place(out, noise, clip, label, pos, snr_db, sample_rate, rng)[0])
        pos += len(clip) + int(gap * sample_rate)
    return out, events


def write_labels(path: str | os.PathLike, events: Sequence[Event]) -> None:
    """Write the ground-truth CSV: header ``label,start_s,end_s``, one event per row (atomically)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["label", "start_s", "end_s"])
    for e in events:
        w.writerow([e.label, f"{e.start_s:.4f}", f"{e.end_s:.4f}"])
    atomic_write_text(path, buf.getvalue())


KWS_FORMAT = "label,start_s,end_s (seconds)"
TUTORIAL_FORMAT = "label,time_ms (TF speech_commands streaming test: clip start in ms)"
KWS_HEADERS = (("label", "start_s", "end_s"), ("label", "start_s"))
TUTORIAL_HEADER = ("label", "time_ms")
MS_PER_S = 1000.0


@dataclass(frozen=True)
class GroundTruth:
    """Events read from a labels file, and which of the two formats it was read as."""

    events: list[Event]
    format: str


def read_ground_truth(path: str | os.PathLike, clip_s: float = 1.0) -> GroundTruth:
    """Read a ground-truth CSV in one of two formats, told apart by the header or, without one, by
    the number of columns:

    * kws's ``label,start_s,end_s`` (header written by ``write_labels``; a missing end = start);
    * the TF tutorial's ``label, time_ms`` (``generate_streaming_test_wav.py``: no header, the time
      in milliseconds where the clip starts); each event spans that clip, ``clip_s`` long.
    """
    path = Path(path)
    try:
        # utf-8-sig: spreadsheets save "CSV UTF-8" with a byte-order mark before the header
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise KwsError(f"{path}: cannot read labels ({getattr(exc, 'strerror', None) or exc})") from None
    rows = [(n, [c.strip() for c in row]) for n, row in enumerate(rows, 1)]
    rows = [(n, row) for n, row in rows if any(row) and not row[0].startswith("#")]
    if not rows:
        raise KwsError(f"{path}: the labels file holds no events")
    first = tuple(c.lower() for c in rows[0][1])
    if first[:1] == ("label",):
        if first == TUTORIAL_HEADER:
            fmt = TUTORIAL_FORMAT
        elif first in KWS_HEADERS:
            fmt = KWS_FORMAT
        else:
            raise KwsError(f"{path}:{rows[0][0]}: unknown header {','.join(rows[0][1])!r} (expected "
                           f"'label,start_s,end_s' or 'label,time_ms')")
        rows = rows[1:]
    else:
        fmt = TUTORIAL_FORMAT if len(rows[0][1]) == 2 else KWS_FORMAT
    width = 2 if fmt == TUTORIAL_FORMAT else 3
    events = []
    for n, row in rows:
        expected = "'label, time_ms'" if width == 2 else "'label,start_s,end_s'"
        if len(row) > width or len(row) < 2:
            raise KwsError(f"{path}:{n}: expected {expected} like the first line, got {','.join(row)!r}")
        if not row[0]:
            raise KwsError(f"{path}:{n}: no label in {','.join(row)!r}")
        try:
            values = [float(c) for c in row[1:] if c]
        except ValueError:
            raise KwsError(f"{path}:{n}: expected {expected}, got {','.join(row)!r}") from None
        if not values or not all(np.isfinite(values)):
            raise KwsError(f"{path}:{n}: expected {expected}, got {','.join(row)!r}")
        if fmt == TUTORIAL_FORMAT:
            start = values[0] / MS_PER_S
            end = start + clip_s
        else:
            start, end = values[0], values[-1]
        if end < start:
            raise KwsError(f"{path}:{n}: end_s {end} is before start_s {start}")
        events.append(Event(row[0], start, end))
    return GroundTruth(sorted(events, key=lambda e: e.start_s), fmt)


def read_labels(path: str | os.PathLike, clip_s: float = 1.0) -> list[Event]:
    """The events of a ground-truth CSV in either format (``read_ground_truth``)."""
    return read_ground_truth(path, clip_s).events


def check_events_fit(events: Sequence[Event], duration_s: float, source: str, fmt: str,
                     slack_s: float = 0.0) -> None:
    """KwsError unless every event lies inside the stream: starts within [0, duration_s] and ends by
    duration_s + slack_s. Labels outside it mean the file does not belong to this stream or was read
    in the wrong unit; a word that starts after the stream's end could only ever count as missed."""
    outside = [e for e in events if e.start_s < 0 or e.start_s > duration_s or e.end_s > duration_s + slack_s]
    if outside:
        e = outside[0]
        raise KwsError(f"{source}: {len(outside)} of {len(events)} labels lie outside the stream's "
                       f"{duration_s:.1f} s (first: {e.label} at {e.start_s:g}..{e.end_s:g} s, read as {fmt}); "
                       f"wrong labels file, or wrong unit?")


def check_keywords_apart(events: Sequence[Event], source: str) -> None:
    """KwsError where two keyword events (labels other than ``_silence_`` and ``_unknown_``) overlap in
    time, or start together: the recognizer reports one word at a time, so one of them would silently
    count as missed (a row given twice, or a wrong time). Other words may overlap a keyword: talk
    under a wake word."""
    words = sorted((e for e in events if e.label not in BACKGROUND_LABELS), key=lambda e: (e.start_s, e.end_s))
    clashes, latest = [], None  # latest: the word so far that ends last (the later one on ties)
    for word in words:
        if latest is not None and (word.start_s < latest.end_s or word.start_s == latest.start_s):
            clashes.append((latest, word))
        if latest is None or word.end_s >= latest.end_s:
            latest = word
    if clashes:
        a, b = clashes[0]
        more = f" (and {len(clashes) - 1} more overlaps)" if len(clashes) > 1 else ""
        raise KwsError(f"{source}: keyword {b.label} at {b.start_s:g}..{b.end_s:g} s overlaps {a.label} at "
                       f"{a.start_s:g}..{a.end_s:g} s{more}: the recognizer reports one word at a time, so one "
                       "would count as missed; a row given twice, or a wrong time?")
