"""Offline TTS engines from Debian (espeak-ng, flite, festival): which are installed, their
voices, and synthesis of one word to float32 audio at a given rate."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from kws.edge.audio import resample
from kws.edge.errors import KwsError

APT_LINE = ("sudo apt-get install -y espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k "
            "festvox-us-slt-hts")
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc")
ESPEAK_VARIANTS = ("", "+m1", "+m2", "+m3", "+m4", "+m7", "+f1", "+f2", "+f3", "+f4", "+klatt", "+klatt4")
FLITE_VOICES = ("kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")
FESTIVAL_VOICE_DIRS = ("/usr/share/festival/voices/english", "/usr/share/festival/voices/us")
TIMEOUT_S = 30


class NoEngineError(KwsError):
    """No offline TTS engine is installed."""


@dataclass(frozen=True)
class Voice:
    """One synthesizer voice: engine + voice name (espeak: accent+variant)."""

    engine: str
    name: str

    @property
    def voice_id(self) -> str:
        """A file-name-safe id; the split by voice hashes it."""
        return f"{self.engine}-{self.name}".replace("+", "_").replace("/", "_")


def available_voices() -> list[Voice]:
    """Every voice of every installed engine; raises NoEngineError with the apt-get line if none."""
    voices: list[Voice] = []
    if shutil.which("espeak-ng"):
        voices += [Voice("espeak", a + v) for a in ESPEAK_ACCENTS for v in ESPEAK_VARIANTS]
    if shutil.which("flite"):
        try:
            listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=TIMEOUT_S).stdout
        except (OSError, subprocess.SubprocessError):
            listed = ""
        voices += [Voice("flite", v) for v in FLITE_VOICES if v in listed.split()]
    if shutil.which("text2wave"):
        installed = {d for base in FESTIVAL_VOICE_DIRS if os.path.isdir(base) for d in os.listdir(base)}
        voices += [Voice("festival", v) for v in FESTIVAL_VOICES if v in installed]
    if not voices:
        raise NoEngineError(f"no offline TTS engine found (espeak-ng, flite, festival); install them: {APT_LINE}")
    return voices


def _wav_bytes_to_float(data: bytes) -> tuple[np.ndarray, int]:
    from scipy.io import wavfile

    rate, pcm = wavfile.read(io.BytesIO(data))
    if pcm.ndim == 2:
        pcm = pcm.mean(axis=1)
    scale = 32768.0 if pcm.dtype == np.int16 else 1.0
    return pcm.astype(np.float32) / scale, int(rate)


def synthesize(voice: Voice, text: str, rate: float, pitch: float, sample_rate: int) -> np.ndarray:
    """Speak ``text``; ``rate`` is a speed factor (1 = normal), ``pitch`` a factor of the voice's
    pitch (1 = normal). Returns float32 mono at ``sample_rate``."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        if voice.engine == "espeak":
            cmd = ["espeak-ng", "-v", voice.name, "-s", str(int(175 * rate)), "-p", str(int(50 * pitch)),
                   "-w", tmp.name, text]
            stdin = None
        elif voice.engine == "flite":
            cmd = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / rate:.3f}",
                   "--setf", f"int_f0_target_mean={110 * pitch:.1f}", "-t", text, "-o", tmp.name]
            stdin = None
        elif voice.engine == "festival":
            cmd = ["text2wave", "-o", tmp.name, "-eval", f"(voice_{voice.name})",
                   "-eval", f"(Parameter.set 'Duration_Stretch {1.0 / rate:.3f})"]
            stdin = text
        else:
            raise KwsError(f"unknown TTS engine {voice.engine!r}")
        try:
            subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S, check=True)
        except (OSError, subprocess.SubprocessError) as exc:
            raise KwsError(f"{voice.engine} failed for {text!r} with voice {voice.name}: {exc}") from None
        audio, rate_in = _wav_bytes_to_float(open(tmp.name, "rb").read())
    return resample(audio, rate_in, sample_rate)
