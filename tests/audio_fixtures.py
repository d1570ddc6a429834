"""Tiny synthetic datasets the tests build themselves: classes a small model separates in a few
epochs (rising chirp, falling chirp, two-tone beep), plus background noise and odd WAV formats."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.edge.audio import write_wav

SAMPLE_RATE = 16000
WORD_SHAPES = {
    "up": ("chirp", 300.0, 2400.0),
    "down": ("chirp", 2400.0, 300.0),
    "beep": ("tones", 800.0, 1600.0),
}


def word_audio(word: str, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE,
               length_s: float = 1.0) -> np.ndarray:
    """One synthetic 'utterance' of a word: a 0.35-0.55 s sound at a random place, random level."""
    kind, f0, f1 = WORD_SHAPES[word]
    dur = rng.uniform(0.35, 0.55)
    n = int(dur * sample_rate)
    t = np.arange(n) / sample_rate
    jitter = rng.uniform(0.9, 1.1)
    if kind == "chirp":
        freq = (f0 + (f1 - f0) * t / dur) * jitter
        phase = 2 * np.pi * np.cumsum(freq) / sample_rate
        sound = np.sin(phase)
    else:
        half = n // 2
        sound = np.concatenate([np.sin(2 * np.pi * f0 * jitter * t[:half]),
                                np.sin(2 * np.pi * f1 * jitter * t[half:])])
    sound *= np.hanning(n) * rng.uniform(0.2, 0.6)
    total = int(length_s * sample_rate)
    out = rng.normal(0, 0.003, total)
    start = int(rng.integers(0, total - n))
    out[start:start + n] += sound
    return out.astype(np.float32)


def other_audio(rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An 'unknown word': band-limited noise bursts."""
    total = sample_rate
    out = rng.normal(0, 0.003, total)
    n = int(rng.uniform(0.2, 0.5) * sample_rate)
    start = int(rng.integers(0, total - n))
    burst = np.convolve(rng.normal(0, 1, n), np.ones(8) / 8, mode="same") * np.hanning(n) * 0.3
    out[start:start + n] += burst
    return out.astype(np.float32)


def make_dataset(root: Path, per_word: int = 40, unknown: int = 30, seed: int = 0,
                 words=("up", "down", "beep")) -> Path:
    """Write label folders, an _unknown_ folder (as 'other' words) and _background_noise_."""
    rng = np.random.default_rng(seed)
    for w in words:
        for i in range(per_word):
            write_wav(root / w / f"spk{i}_nohash_{i}.wav", word_audio(w, rng), SAMPLE_RATE)
    for i in range(unknown):
        write_wav(root / "other" / f"oth{i}_nohash_{i}.wav", other_audio(rng), SAMPLE_RATE)
    noise = rng.normal(0, 0.05, SAMPLE_RATE * 5).astype(np.float32)
    write_wav(root / "_background_noise_" / "white.wav", noise, SAMPLE_RATE)
    return root


def keyword_stream(words, rng: np.random.Generator, gap_s: float = 0.8, lead_s: float = 1.0,
                   sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, list[tuple[str, float]]]:
    """Quiet noise with the given words one after another: (audio, [(word, end of its 1 s clip in s)])."""
    parts = [rng.normal(0, 0.003, int(lead_s * sample_rate)).astype(np.float32)]
    truth, t = [], lead_s
    for w in words:
        parts.append(word_audio(w, rng, sample_rate))
        t += 1.0
        truth.append((w, t))
        parts.append(rng.normal(0, 0.003, int(gap_s * sample_rate)).astype(np.float32))
        t += gap_s
    return np.concatenate(parts), truth


def damaged_audio(folder: Path) -> dict[str, Path]:
    """Files as a crashed recorder or an interrupted copy leaves them, written with soundfile:
    ``mp3_junk`` (an MP3's first frame, then zeros: libmpg123 prints notes and libsndfile fails),
    ``mp3_cut`` (the first half of an MP3: it decodes, and libmpg123 warns about its length), and the
    first halves of a FLAC and an OGG/Vorbis file (libsndfile fails)."""
    import io

    import soundfile as sf

    rng = np.random.default_rng(0)
    audio = np.concatenate([word_audio("up", rng), word_audio("down", rng)])
    encoded = {}
    for fmt in ("MP3", "FLAC", "OGG"):
        buf = io.BytesIO()
        sf.write(buf, audio, SAMPLE_RATE, format=fmt)
        encoded[fmt] = buf.getvalue()
    mp3_first_frame = 64  # bytes of the MP3 kept before the zeros: its header and first frame start
    contents = {"mp3_junk.mp3": encoded["MP3"][:mp3_first_frame] + bytes(4000),
                "mp3_cut.mp3": encoded["MP3"][:len(encoded["MP3"]) // 2],
                "flac_cut.flac": encoded["FLAC"][:len(encoded["FLAC"]) // 2],
                "ogg_cut.ogg": encoded["OGG"][:len(encoded["OGG"]) // 2]}
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, data in contents.items():
        out[name.split(".")[0]] = folder / name
        out[name.split(".")[0]].write_bytes(data)
    return out
