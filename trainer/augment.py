"""The one augmentation library of kws (``kws-train`` and ``kws-synth`` both use it): voices (speed
perturbation, time-stretch, pitch-and-formant shift for kws-synth's pseudo-speakers; the vocal-tract
warp of training lives in the training frontend, ``features.py``), rooms (generated
or recorded impulse responses), microphones and channels (random EQ, band-limiting, input level),
background noise at a speech-to-noise ratio, time shift, and SpecAugment masks on features.

Pure numpy/scipy; every random choice comes from the ``numpy.random.Generator`` passed in, so the
same generator state gives the same clip.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from .config import AugmentConfig

NOISE_KINDS = ("white", "pink", "brown")
ACTIVE_DB = -40.0  # level measurement ignores samples this far below the peak (silence around the word)
RT60_DECAY_DB = 60.0
REVERB_DIRECT_GAIN = 1.0  # kws-synth's rooms: direct path as strong as all reflections together (DRR 0 dB)
PREDELAY_MS = 3.0  # sound travel before the first reflections
MAX_RIR_S = 1.0  # recorded impulse responses are cut to this length
EQ_POINTS_HZ = (100.0, 250.0, 600.0, 1500.0, 3500.0, 7000.0)  # control points of the random EQ curve
BAND_ORDER = 4  # slope of the band-limit edges (Butterworth-like magnitude, 24 dB/octave)
PHONE_LOW_HZ = (200.0, 400.0)  # band-limiting: high-pass corner drawn from this range ...
PHONE_HIGH_HZ = (3000.0, 4500.0)  # ... and low-pass corner from this one (telephone-like channel)
CLIP_LIMIT = 1.0  # an ADC saturates here
NOISE_EXPONENTS = (0.0, 2.0)  # generated noise: spectral slope from white to brown
GENERATED_NOISE_RMS = 0.05  # its level where a raw volume applies (background_snr_db: [])
STRETCH_FFT = 512  # phase-vocoder frame (32 ms at 16 kHz) ...
STRETCH_HOP = 128  # ... and hop (75% overlap)
WORD_POSITIONS = ("shift", "centre", "end", "anywhere")  # where a word clip's speech is put in the window
SPEECH_FRAME_MS = 10.0  # speech bounds: energy frames of this length ...
SPEECH_DB_BELOW_PEAK = 25.0  # ... within this many dB of the loudest frame (kws-eval's stream rule)
MASK_LEAVES = 1  # a SpecAugment mask leaves at least this many frames (bins) of the input unmasked


# ---- levels and resampling ---------------------------------------------------------------------

def active_rms(audio: np.ndarray) -> float:
    """RMS over the samples within ACTIVE_DB of the peak (the speech, not the silence around it)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0:
        return 0.0
    active = audio[np.abs(audio) > peak * 10 ** (ACTIVE_DB / 20)]
    return float(np.sqrt(np.mean(active.astype(np.float64) ** 2)))


def change_rate(audio: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """Band-limited (FFT) resampling to any rate ratio; exact for silence-padded audio and ~10x
    faster than a polyphase filter for 22050 -> 16000 Hz."""
    if from_rate == to_rate or len(audio) == 0:
        return audio.astype(np.float32, copy=False)
    from scipy.fft import next_fast_len
    from scipy.signal import resample

    n_out = max(1, int(round(len(audio) * to_rate / from_rate)))
    padded_in = next_fast_len(len(audio) + 64)
    padded_out = int(round(padded_in * to_rate / from_rate))
    buf = np.zeros(padded_in, dtype=np.float64)
    buf[:len(audio)] = audio
    return resample(buf, padded_out)[:n_out].astype(np.float32)


def speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster, tempo and pitch together (band-limited resampling; kws-synth)."""
    if abs(factor - 1.0) < 1e-6:
        return audio
    return change_rate(audio, factor, 1.0)


def speed_perturb(audio: np.ndarray, factor: float, length: int) -> np.ndarray:
    """``length`` samples of the audio played ``factor`` times faster, centred: linear interpolation,
    about 10x cheaper than ``speed`` per training clip; its aliasing above 7 kHz at factors within
    +-10% lies beyond the mel filters' upper edge."""
    if abs(factor - 1.0) < 1e-6:
        return fit_length(audio, length)
    n = len(audio)
    centre_in, centre_out = (n - 1) / 2.0, (length - 1) / 2.0
    positions = centre_in + (np.arange(length) - centre_out) * factor
    return np.interp(positions, np.arange(n), audio, left=0.0, right=0.0).astype(np.float32)


def time_stretch(audio: np.ndarray, rate: float, n_fft: int = STRETCH_FFT, hop: int = STRETCH_HOP) -> np.ndarray:
    """``rate`` times faster (shorter) at the same pitch: a phase vocoder (magnitudes interpolated
    between analysis frames, phases advanced by each bin's measured frequency), about
    ``len(audio) / rate`` samples."""
    if abs(rate - 1.0) < 1e-6 or len(audio) == 0:
        return audio.astype(np.float32, copy=False)
    window = np.hanning(n_fft)
    padded = np.pad(np.asarray(audio, np.float64), (n_fft // 2, n_fft // 2 + n_fft))
    n_frames = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = np.fft.rfft(padded[index] * window, axis=1)
    steps = np.arange(0.0, n_frames - 1, rate)
    steps = steps[steps < n_frames - 1]  # a float arange may step past its end
    i = np.minimum(steps.astype(int), n_frames - 2)
    frac = (steps - i)[:, None]
    mag = (1 - frac) * np.abs(spec[i]) + frac * np.abs(spec[i + 1])
    expected = 2 * np.pi * hop * np.arange(spec.shape[1]) / n_fft
    delta = np.angle(spec[i + 1]) - np.angle(spec[i]) - expected
    delta -= 2 * np.pi * np.round(delta / (2 * np.pi))
    phase = np.angle(spec[0]) + np.concatenate([np.zeros((1, spec.shape[1])),
                                                np.cumsum(expected + delta, axis=0)[:-1]])
    frames = np.fft.irfft(mag * np.exp(1j * phase), n_fft, axis=1) * window
    out = np.zeros(hop * (len(steps) - 1) + n_fft)
    norm = np.zeros_like(out)
    for k, frame in enumerate(frames):
        out[k * hop:k * hop + n_fft] += frame
        norm[k * hop:k * hop + n_fft] += window ** 2
    out = out / np.maximum(norm, 1e-3 * norm.max())
    n_out = int(round(len(audio) / rate))
    return out[n_fft // 2:n_fft // 2 + n_out].astype(np.float32)


def voice_shift(audio: np.ndarray, factor: float) -> np.ndarray:
    """Another speaker's voice from this one: pitch and formants (vocal-tract length) both scaled by
    ``factor`` (> 1: a smaller speaker), the duration kept (resampling, then time-stretching back)."""
    if abs(factor - 1.0) < 1e-6:
        return audio
    return fit_length(time_stretch(speed(audio, factor), 1.0 / factor), len(audio))


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop or zero-pad to exactly ``length`` samples (a sped-up or slowed clip back to size)."""
    n = len(audio)
    if n == length:
        return audio
    if n > length:
        start = (n - length) // 2
        return audio[start:start + length]
    out = np.zeros(length, dtype=np.float32)
    start = (length - n) // 2
    out[start:start + n] = audio
    return out


def time_shift(clip: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Shift by a uniform offset in [-max_shift, max_shift], filling with zeros."""
    if max_shift <= 0:
        return clip
    shift = int(rng.integers(-max_shift, max_shift + 1))
    if shift == 0:
        return clip
    out = np.zeros_like(clip)
    if shift > 0:
        out[shift:] = clip[:-shift]
    else:
        out[:shift] = clip[-shift:]
    return out


def speech_bounds(clip: np.ndarray, sample_rate: int) -> tuple[int, int]:
    """(first, last + 1) sample of the speech in a clip: the SPEECH_FRAME_MS frames within
    SPEECH_DB_BELOW_PEAK of the loudest one (the rule kws-eval uses for a keyword's start and end)."""
    hop = max(1, int(sample_rate * SPEECH_FRAME_MS / 1000))
    n = len(clip) // hop
    if n == 0:
        return 0, len(clip)
    energy = (clip[:n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(axis=1)
    db = 10 * np.log10(energy + 1e-12)
    active = np.flatnonzero(db >= db.max() - SPEECH_DB_BELOW_PEAK)
    return int(active[0] * hop), int((active[-1] + 1) * hop)


def shift_by(clip: np.ndarray, shift: int) -> np.ndarray:
    """The clip moved ``shift`` samples later (earlier when negative), zeros where nothing was."""
    if shift == 0:
        return clip
    out = np.zeros_like(clip)
    if abs(shift) >= len(clip):
        return out
    if shift > 0:
        out[shift:] = clip[:-shift]
    else:
        out[:shift] = clip[-shift:]
    return out


def place_word(clip: np.ndarray, position: str, jitter: int, end_margin: int, rng: np.random.Generator,
               sample_rate: int) -> np.ndarray:
    """A word clip with its speech (``speech_bounds``) moved to one place in the window, plus a
    uniform jitter of +-``jitter`` samples: ``centre`` (speech centred) or ``end`` (speech ending
    ``end_margin`` samples before the newest edge, where a stream first sees the whole word); or
    ``anywhere`` (uniformly over every place where the whole speech fits, no jitter: a stream's
    window holds each word at all of them as it slides). The shift is clamped so that the whole
    speech stays inside the window."""
    s0, s1 = speech_bounds(clip, sample_rate)
    n = len(clip)
    if position == "anywhere":
        return shift_by(clip, int(rng.integers(-s0, n - s1 + 1)))
    if position == "centre":
        target = (n - (s1 - s0)) // 2 - s0
    elif position == "end":
        target = n - end_margin - s1
    else:
        raise ValueError(f"position must be centre or end, got {position!r}")
    shift = target + (int(rng.integers(-jitter, jitter + 1)) if jitter > 0 else 0)
    return shift_by(clip, int(np.clip(shift, -s0, n - s1)))


def partial_word(clip: np.ndarray, visible: Sequence[float], rng: np.random.Generator,
                 sample_rate: int) -> np.ndarray:
    """A window holding only part of a word: a share drawn from ``visible`` of its speech, cut at
    the newest edge (the word has begun, the rest is still to come) or, as often, at the oldest
    edge (only its end is left), as a stream's window shows every word before and after it is
    whole. Trained as ``_unknown_``, so a model stops answering on a word's first syllable."""
    s0, s1 = speech_bounds(clip, sample_rate)
    n = len(clip)
    keep = max(1, int(round((s1 - s0) * _uniform(rng, visible))))
    if rng.random() < 0.5:
        shift = n - (s0 + keep)  # the newest edge cuts the word after its first ``keep`` samples
    else:
        shift = -(s1 - keep)  # the oldest edge cuts it: its last ``keep`` samples remain
    return shift_by(clip, shift)


def set_gain_db(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """The clip ``gain_db`` louder, never past full scale (a louder talker, not a broken ADC)."""
    gain = 10 ** (gain_db / 20)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 0 and peak * gain > CLIP_LIMIT:
        gain = CLIP_LIMIT / peak
    return (audio * gain).astype(np.float32)


# ---- noise ----------------------------------------------------------------------------------------

def colored_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """White (flat), pink (1/f power) or brown (1/f^2 power) noise of n samples with unit RMS."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise kind must be one of {NOISE_KINDS}, got {kind!r}")
    white = rng.standard_normal(n)
    if kind == "white":
        noise = white
    else:
        spectrum = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)  # no infinite gain at DC
        spectrum /= np.sqrt(f) if kind == "pink" else f
        noise = np.fft.irfft(spectrum, n)
    noise = noise - noise.mean()
    return (noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)).astype(np.float32)


def noise_segment(source: np.ndarray, n: int, position: float) -> np.ndarray:
    """n samples of ``source`` starting at ``position`` (0..1) of it, looped if it is shorter."""
    if len(source) == 0:
        return np.zeros(n, dtype=np.float32)
    start = int(position * max(1, len(source) - n))
    seg = source[start:start + n]
    if len(seg) < n:
        seg = np.resize(source, n) if len(source) < n else np.concatenate([seg, source[:n - len(seg)]])
    return seg.astype(np.float32, copy=False)


def tilted_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise of n samples with power falling as 1/f^exponent (0 white, 1 pink, 2 brown; any value
    between), unit RMS: a new noise colour per clip, beyond the colours of the noise files."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n), 1.0 / n)
    noise = np.fft.irfft(spectrum * f ** (-exponent / 2), n)
    noise -= noise.mean()
    return (noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)).astype(np.float32)


def background_segment(backgrounds: Sequence[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample stretch of a random background file (looped if shorter)."""
    noise = backgrounds[int(rng.integers(len(backgrounds)))]
    return noise_segment(noise, length, float(rng.random()))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Speech plus noise scaled so that active speech RMS / noise RMS is ``snr_db``."""
    speech_rms = active_rms(speech)
    noise_rms = float(np.sqrt(np.mean(noise.astype(np.float64) ** 2)))
    if speech_rms <= 0 or noise_rms <= 0:
        return speech
    return (speech + noise * (speech_rms / noise_rms) * 10 ** (-snr_db / 20)).astype(np.float32)


# ---- rooms ----------------------------------------------------------------------------------------

def room_impulse_response(rt60_s: float, sample_rate: int, rng: np.random.Generator,
                          direct_gain: float = REVERB_DIRECT_GAIN) -> np.ndarray:
    """A synthetic room: a direct path, then exponentially decaying noise (the diffuse tail, with
    unit energy) reaching -60 dB at ``rt60_s``; ``direct_gain`` sets the direct-to-reverberant ratio
    (20 log10 of it, in dB). Unit energy overall."""
    n = max(2, int(rt60_s * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-np.log(10 ** (RT60_DECAY_DB / 20)) * t / rt60_s)
    tail[: int(PREDELAY_MS * sample_rate / 1000)] = 0.0
    tail /= np.sqrt(np.sum(tail ** 2)) + 1e-12
    ir = tail
    ir[0] = direct_gain
    return (ir / np.sqrt(np.sum(ir ** 2))).astype(np.float32)


def convolve_same(clip: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """The clip filtered by ``ir``, same length (the tail past the clip's end is cut, as a recording
    window would)."""
    from scipy.signal import fftconvolve

    return fftconvolve(clip, ir)[:len(clip)].astype(np.float32)


def reverb(clip: np.ndarray, rt60_s: float, sample_rate: int, rng: np.random.Generator,
           direct_gain: float = REVERB_DIRECT_GAIN) -> np.ndarray:
    """The clip as heard in a generated room of the given RT60 (see room_impulse_response)."""
    return convolve_same(clip, room_impulse_response(rt60_s, sample_rate, rng, direct_gain))


def prepare_rir(ir: np.ndarray, sample_rate: int) -> np.ndarray:
    """A recorded impulse response made ready to use: starts at its strongest tap (the direct path,
    so the word is not delayed), at most MAX_RIR_S long, unit energy."""
    ir = np.asarray(ir, dtype=np.float32)
    start = int(np.argmax(np.abs(ir))) if ir.size else 0
    ir = ir[start:start + int(MAX_RIR_S * sample_rate)]
    energy = float(np.sqrt(np.sum(ir.astype(np.float64) ** 2)))
    if energy <= 0:
        raise ValueError("impulse response is silent")
    return (ir / energy).astype(np.float32)


def load_rirs(folder: str | os.PathLike, sample_rate: int) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
    """Every audio file under ``folder`` (``audio_files``' rule, the one of every kws tool: WAV, FLAC,
    OGG/Opus, MP3; hidden files and folders and __MACOSX/ passed by) as a ready impulse response;
    unreadable or silent files are returned as (path, why) instead of raised. Raises FileNotFoundError
    for a missing folder."""
    from kws.edge.audio import load_audio
    from kws.edge.errors import AudioError

    from .dataset import audio_files

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: augment.rir_dir is not a folder")
    rirs, skipped = [], []
    for path in audio_files(root):
        try:
            samples, _ = load_audio(path, sample_rate)
            rirs.append(prepare_rir(samples, sample_rate))
        except (AudioError, ValueError) as exc:
            skipped.append((str(path), str(exc).split(": ", 1)[-1]))
    return rirs, skipped


# ---- microphones and channels ---------------------------------------------------------------------

def eq_curve(freqs_hz: np.ndarray, gains_db: Sequence[float]) -> np.ndarray:
    """A smooth magnitude response: ``gains_db`` at EQ_POINTS_HZ, linear in dB over log frequency
    between them, flat beyond the first and last point."""
    logf = np.log(np.maximum(freqs_hz, 1.0))
    db = np.interp(logf, np.log(EQ_POINTS_HZ), np.asarray(gains_db, dtype=np.float64))
    return 10 ** (db / 20)


def band_curve(freqs_hz: np.ndarray, low_hz: float, high_hz: float, order: int = BAND_ORDER) -> np.ndarray:
    """Band-pass magnitude with Butterworth-like edges at ``low_hz`` and ``high_hz``."""
    f = np.maximum(freqs_hz, 1e-3)
    high_pass = 1.0 / np.sqrt(1.0 + (low_hz / f) ** (2 * order))
    low_pass = 1.0 / np.sqrt(1.0 + (f / high_hz) ** (2 * order))
    return high_pass * low_pass


def apply_response(clip: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Filter by a zero-phase magnitude ``response`` given on rfftfreq(len(clip)) bins."""
    return np.fft.irfft(np.fft.rfft(clip) * response, len(clip)).astype(np.float32)


def room_and_channel(clip: np.ndarray, ir: np.ndarray | None, eq_gains: Sequence[float] | None,
                     band: tuple[float, float] | None, sample_rate: int) -> np.ndarray:
    """The clip through a room (impulse response ``ir``) and a channel (EQ gains at EQ_POINTS_HZ,
    band edges ``(low_hz, high_hz)``), any of them None for none, in one FFT pair; same length."""
    n = len(clip)
    size = _fast_size(n + (len(ir) - 1 if ir is not None else 0))
    spectrum = np.fft.rfft(clip, size)
    if ir is not None:
        spectrum *= np.fft.rfft(ir, size)
    if eq_gains is not None or band is not None:
        freqs = np.fft.rfftfreq(size, 1.0 / sample_rate)
        if eq_gains is not None:
            spectrum *= eq_curve(freqs, eq_gains)
        if band is not None:
            spectrum *= band_curve(freqs, *band)
    return np.fft.irfft(spectrum, size)[:n].astype(np.float32)


def _fast_size(n: int) -> int:
    """An FFT length >= n with only factors 2, 3 and 5 (fast for pocketfft)."""
    from scipy.fft import next_fast_len

    return int(next_fast_len(n, real=True))


# ---- the training pipeline ------------------------------------------------------------------------

@dataclass(frozen=True)
class AugmentSources:
    """Audio the pipeline draws from: background noise files, recorded impulse responses, and
    windows of real negatives (talk, TV, music) to mix under words (``talk_background_share``)."""

    backgrounds: Sequence[np.ndarray] = ()
    rirs: Sequence[np.ndarray] = ()
    talk: Sequence[np.ndarray] = ()


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    lo, hi = bounds
    return float(lo) if lo == hi else float(rng.uniform(lo, hi))


def augment_audio(clip: np.ndarray, is_silence: bool, cfg: "AugmentConfig", sample_rate: int,
                  sources: AugmentSources | Sequence[np.ndarray], rng: np.random.Generator,
                  kind: str = "word") -> np.ndarray:
    """One augmented float32 clip of the same length.

    ``kind`` says what the clip is: ``word`` (a keyword or _unknown_ clip of the data folder: placed
    by ``cfg.word_position``), ``partial`` (a keyword clip to be cut by ``partial_word``: the caller
    labels it _unknown_) or ``window`` (a window of long audio, e.g. real negatives: shifted only).

    Keyword and _unknown_ clips: speed perturbation, time shift, a room (generated or recorded
    impulse response), a microphone/channel (random EQ, band-limiting), background noise at a random
    speech-to-noise ratio (or, with ``background_snr_db`` empty, at the tutorial's raw volume; in
    ``talk_background_share`` of the mixes a window of ``sources.talk``), then a random input level.
    _silence_ clips: background alone at a volume in [0, silence_volume], then the same input level.
    Every step's probability or range is in ``cfg`` (configs/default.yaml).
    """
    if not isinstance(sources, AugmentSources):
        sources = AugmentSources(backgrounds=tuple(sources))
    backgrounds = sources.backgrounds
    length = len(clip)
    if is_silence:
        out = np.zeros(length, dtype=np.float32)
        if backgrounds or cfg.generated_noise_share:
            out += _noise_piece(length, backgrounds, cfg, rng) * np.float32(rng.uniform(0, cfg.silence_volume))
        return _input_level(out, cfg, rng)
    out = clip
    if tuple(cfg.speed_range) != (1.0, 1.0):
        out = speed_perturb(out, _uniform(rng, cfg.speed_range), length)
    jitter = int(round(cfg.time_shift_ms * sample_rate / 1000))
    if kind == "partial":
        out = partial_word(out, cfg.partial_word_visible, rng, sample_rate)
    elif kind == "word" and cfg.word_position != "shift":
        out = place_word(out, cfg.word_position, jitter, int(round(cfg.word_end_margin_ms * sample_rate / 1000)),
                         rng, sample_rate)
    else:
        out = time_shift(out, jitter, rng)
    ir = None
    if cfg.reverb_probability and rng.random() < cfg.reverb_probability:
        if sources.rirs and rng.random() < cfg.recorded_rir_share:
            ir = sources.rirs[int(rng.integers(len(sources.rirs)))]
        else:
            drr_db = _uniform(rng, cfg.reverb_drr_db)
            ir = room_impulse_response(_uniform(rng, cfg.reverb_rt60_s), sample_rate, rng, 10 ** (drr_db / 20))
    eq_gains = band = None
    if cfg.eq_probability and rng.random() < cfg.eq_probability:
        eq_gains = rng.uniform(-cfg.eq_db, cfg.eq_db, size=len(EQ_POINTS_HZ))
    if cfg.band_limit_probability and rng.random() < cfg.band_limit_probability:
        band = (_uniform(rng, PHONE_LOW_HZ), _uniform(rng, PHONE_HIGH_HZ))
    if ir is not None or eq_gains is not None or band is not None:
        out = room_and_channel(out, ir, eq_gains, band, sample_rate)
    if (backgrounds or cfg.generated_noise_share or sources.talk) and rng.random() < cfg.background_frequency:
        if sources.talk and cfg.talk_background_share and rng.random() < cfg.talk_background_share:
            noise = background_segment(sources.talk, length, rng)
        else:
            noise = _noise_piece(length, backgrounds, cfg, rng)
        if cfg.background_snr_db:
            out = mix_at_snr(out, noise, _uniform(rng, cfg.background_snr_db))
        else:
            out = out + noise * np.float32(rng.uniform(0, cfg.background_volume))
    return _input_level(out, cfg, rng)


def _noise_piece(length: int, backgrounds: Sequence[np.ndarray], cfg: "AugmentConfig",
                 rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of background: generated noise of a random colour (always where there are
    no noise files, else in ``generated_noise_share`` of the draws), otherwise a piece of a file."""
    if not backgrounds or (cfg.generated_noise_share and rng.random() < cfg.generated_noise_share):
        return tilted_noise(length, _uniform(rng, NOISE_EXPONENTS), rng) * np.float32(GENERATED_NOISE_RMS)
    return background_segment(backgrounds, length, rng)


def _input_level(audio: np.ndarray, cfg: "AugmentConfig", rng: np.random.Generator) -> np.ndarray:
    """A random input level, uniform in +-gain_db (quieter or louder talker, microphone gain)."""
    if cfg.gain_db > 0:
        audio = set_gain_db(audio, float(rng.uniform(-cfg.gain_db, cfg.gain_db)))
    return np.clip(audio, -CLIP_LIMIT, CLIP_LIMIT).astype(np.float32)


def widest_mask(configured: int, extent: int) -> int:
    """The widest mask drawn over ``extent`` frames (or bins): the configured width, but at most all
    of them but MASK_LEAVES (kws-train warns where the configuration asks for more)."""
    return max(0, min(configured, extent - MASK_LEAVES))


def spec_augment(features: np.ndarray, cfg: "AugmentConfig", rng: np.random.Generator) -> np.ndarray:
    """SpecAugment masks on (frames, bins): masked cells take the clip's mean value. Each mask's width
    is drawn uniformly from 0 up to its widest (``widest_mask``), so no one mask blanks the whole input."""
    if not (cfg.time_masks and cfg.time_mask_frames) and not (cfg.freq_masks and cfg.freq_mask_bins):
        return features
    out = features.copy()
    fill = out.mean()
    frames, bins = out.shape
    for _ in range(cfg.time_masks):
        width = int(rng.integers(0, widest_mask(cfg.time_mask_frames, frames) + 1))
        if width:
            start = int(rng.integers(0, max(1, frames - width)))
            out[start:start + width, :] = fill
    for _ in range(cfg.freq_masks):
        width = int(rng.integers(0, widest_mask(cfg.freq_mask_bins, bins) + 1))
        if width:
            start = int(rng.integers(0, max(1, bins - width)))
            out[:, start:start + width] = fill
    return out


def mixup(x: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mixup of a set of examples: each input and its target become ``lam * own + (1 - lam) * other``
    with a partner drawn from the same set and ``lam`` from Beta(alpha, alpha), folded to >= 0.5 so
    each example stays mostly itself. Inputs are features (x) and probability targets (y), both
    indexed by example; alpha <= 0 returns them unchanged."""
    if alpha <= 0 or len(x) < 2:
        return x, y
    partner = rng.permutation(len(x))
    lam = rng.beta(alpha, alpha, size=len(x))
    lam = np.maximum(lam, 1.0 - lam).astype(np.float32)
    lam_x = lam.reshape((-1,) + (1,) * (x.ndim - 1))
    lam_y = lam.reshape((-1,) + (1,) * (y.ndim - 1))
    mixed_x = lam_x * x + (1.0 - lam_x) * x[partner]
    mixed_y = lam_y * y + (1.0 - lam_y) * y[partner]
    return mixed_x.astype(x.dtype, copy=False), mixed_y.astype(y.dtype, copy=False)
