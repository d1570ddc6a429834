"""From one synthesized utterance to one fixed-length training clip: change rate, trim silence
(energy based), place at an offset, and set the level (peak or RMS to a target dBFS)."""
from __future__ import annotations

import numpy as np

from kws.trainer.augment import active_rms

TRIM_DB = -40.0  # frames this far below the loudest frame count as silence
TRIM_FRAME_MS = 10
TRIM_PAD_MS = 20  # keep this much of the fade-in/out around the detected speech
PEAK_LIMIT_DBFS = -1.0
LEVEL_MODES = ("rms", "peak")


def trim_silence(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading and trailing frames whose RMS is TRIM_DB below the loudest frame."""
    frame = max(1, sample_rate * TRIM_FRAME_MS // 1000)
    n = len(audio) // frame
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[:n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1) + 1e-20)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > TRIM_DB)
    pad = sample_rate * TRIM_PAD_MS // 1000
    start = max(0, loud[0] * frame - pad)
    end = min(len(audio), (loud[-1] + 1) * frame + pad)
    return audio[start:end]


def place(audio: np.ndarray, clip_samples: int, position: float) -> tuple[np.ndarray, int]:
    """The utterance inside a silent clip, starting at ``position`` (0..1) of the free space;
    returns (clip, start sample). The caller checks the length first (see fits)."""
    if len(audio) > clip_samples:
        raise ValueError(f"utterance of {len(audio)} samples does not fit a clip of {clip_samples}")
    start = int(position * (clip_samples - len(audio) + 1))
    start = min(start, clip_samples - len(audio))
    out = np.zeros(clip_samples, dtype=np.float32)
    out[start:start + len(audio)] = audio
    return out, start


def fits(audio: np.ndarray, clip_samples: int) -> bool:
    """Whether the trimmed utterance fits the clip (else it is reported as too long, never cut)."""
    return len(audio) <= clip_samples


def level_dbfs(audio: np.ndarray, mode: str) -> float:
    """The level as normalise measures it: active RMS or peak, in dBFS (-inf for silence)."""
    value = active_rms(audio) if mode == "rms" else float(np.max(np.abs(audio), initial=0.0))
    return 20 * np.log10(value) if value > 0 else float("-inf")


def normalise(audio: np.ndarray, target_dbfs: float, mode: str = "rms") -> np.ndarray:
    """Scale so the level (``mode`` rms or peak) is ``target_dbfs``, never with a peak above
    PEAK_LIMIT_DBFS (a loud RMS target on a peaky word stops at the limit)."""
    if mode not in LEVEL_MODES:
        raise ValueError(f"level mode must be one of {LEVEL_MODES}, got {mode!r}")
    current = level_dbfs(audio, mode)
    if not np.isfinite(current):
        return audio.astype(np.float32, copy=False)
    gain = 10 ** ((target_dbfs - current) / 20)
    peak = float(np.max(np.abs(audio))) * gain
    limit = 10 ** (PEAK_LIMIT_DBFS / 20)
    if peak > limit:
        gain *= limit / peak
    return (audio * gain).astype(np.float32)
