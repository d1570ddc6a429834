"""Offline TTS engines from Debian (espeak-ng, flite, festival): which are installed, their
voices, and synthesis of words to float32 audio at a given rate and pitch.

Speed matters (thousands of clips): espeak-ng is driven in-process through libespeak-ng when the
library loads (about 1 ms a word instead of a 12 ms process), festival runs in batch mode (one
process renders a whole list of utterances), flite is started once per word (8-20 ms).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import io
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from kws.edge.errors import KwsError
from kws.trainer.augment import change_rate

APT_LINE = ("sudo apt-get install -y espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k "
            "festvox-us-slt-hts")
ENGINES = ("espeak", "flite", "festival")

# espeak-ng: English accents (language ids as `espeak-ng --voices=en` lists them) x voice variants.
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "klatt", "klatt4", "croak")
ESPEAK_BASE_WPM = 175
ESPEAK_BASE_PITCH = 50  # espeak's 0-99 pitch scale

# flite: the 16 kHz voices Debian ships; base F0 of each (Hz) for int_f0_target_mean, None where the
# voice ignores it (rms is a clustergen voice whose F0 comes from its model).
FLITE_VOICES = {"kal16": 100.0, "awb": 100.0, "rms": None, "slt": 165.0}

# festival: voice function suffix -> (base F0 for int_lr_params or None, underlying speaker).
FESTIVAL_VOICES = {"kal_diphone": (105.0, "kal"), "ked_diphone": (105.0, "ked"),
                   "cmu_us_slt_arctic_hts": (None, "slt")}
FESTIVAL_VOICE_ROOT = Path("/usr/share/festival/voices")
# HTS voices: rate through hts_engine's speech-speed option; their pitch cannot be set from festival
# (the engine ignores "-fm"), so they have base F0 None.
FESTIVAL_HTS_VOICES = ("cmu_us_slt_arctic_hts",)
HTS_RATE_OPTION = "-r"
FLITE_SPEAKERS = {"kal16": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}

TIMEOUT_S = 60
FESTIVAL_TIMEOUT_PER_CLIP_S = 5
ESPEAK_LIB = "libespeak-ng.so.1"
ESPEAK_AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_PARAM_RATE = 1
ESPEAK_PARAM_PITCH = 3
ESPEAK_POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1


class NoEngineError(KwsError):
    """No offline TTS engine is installed."""


class SynthesisError(KwsError):
    """A TTS engine failed on one utterance."""


@dataclass(frozen=True)
class Voice:
    """One synthesizer voice: engine, voice name and (espeak) accent. Rate and pitch are not part
    of a voice: the split by voice keeps all rates and pitches of one voice together."""

    engine: str
    name: str
    accent: str = ""
    base_f0: float | None = None  # Hz where the engine takes an F0 target, None where pitch is fixed
    speaker: str = ""  # the recorded human behind flite/festival voices (kal, ked, awb, rms, slt)

    @property
    def voice_id(self) -> str:
        """A file-name-safe id (letters, digits, '-'); the split and the file names use it."""
        parts = [self.engine, self.accent, self.name] if self.accent else [self.engine, self.name]
        return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-")

    @property
    def split_group(self) -> str:
        """Voices that must fall in the same split: flite's kal16 and festival's kal_diphone are
        the same recorded speaker, so they share a group."""
        return f"speaker-{self.speaker}" if self.speaker else self.voice_id

    @property
    def has_pitch(self) -> bool:
        """Whether the engine can move this voice's pitch."""
        return self.engine == "espeak" or self.base_f0 is not None


@dataclass(frozen=True)
class Utterance:
    """One thing to say: text, voice, rate factor (1 = normal speed) and pitch factor (1 = normal)."""

    voice: Voice
    text: str
    rate: float
    pitch: float


def _run(cmd: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, timeout=kwargs.pop("timeout", TIMEOUT_S), **kwargs)


def _espeak_accents() -> list[str]:
    try:
        listed = _run(["espeak-ng", "--voices=en"], text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    languages = {line.split()[1] for line in listed.splitlines()[1:] if len(line.split()) > 1}
    return [a for a in ESPEAK_ACCENTS if a in languages]


def _flite_voices() -> list[str]:
    try:
        listed = _run(["flite", "-lv"], text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    names = listed.replace("Voices available:", " ").split()
    return [v for v in FLITE_VOICES if v in names]


def _festival_voices() -> list[str]:
    installed = set()
    if FESTIVAL_VOICE_ROOT.is_dir():
        installed = {p.name for lang in FESTIVAL_VOICE_ROOT.iterdir() if lang.is_dir() for p in lang.iterdir()}
    return [v for v in FESTIVAL_VOICES if v in installed]


def available_voices(engines: Sequence[str] = ENGINES) -> list[Voice]:
    """Every voice of every installed engine among ``engines``; raises NoEngineError (with the
    apt-get line) when none is installed."""
    voices: list[Voice] = []
    if "espeak" in engines and shutil.which("espeak-ng"):
        voices += [Voice("espeak", v, accent=a) for a in _espeak_accents() for v in ESPEAK_VARIANTS]
    if "flite" in engines and shutil.which("flite"):
        voices += [Voice("flite", v, base_f0=FLITE_VOICES[v], speaker=FLITE_SPEAKERS[v]) for v in _flite_voices()]
    if "festival" in engines and shutil.which("festival"):
        voices += [Voice("festival", v, base_f0=FESTIVAL_VOICES[v][0], speaker=FESTIVAL_VOICES[v][1])
                   for v in _festival_voices()]
    if not voices:
        wanted = ", ".join(engines)
        raise NoEngineError(f"no offline TTS engine found ({wanted}); install them with: {APT_LINE}")
    return voices


def _wav_to_float(data: bytes | str) -> tuple[np.ndarray, int]:
    from scipy.io import wavfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wavfile.WavFileWarning)
        rate, pcm = wavfile.read(io.BytesIO(data) if isinstance(data, bytes) else data)
    if pcm.ndim == 2:
        pcm = pcm.mean(axis=1)
    scale = 32768.0 if pcm.dtype == np.int16 else 1.0
    return pcm.astype(np.float32) / scale, int(rate)


class EspeakLibrary:
    """libespeak-ng loaded in this process. Its synthesis state (pitch flutter phase, filters)
    carries from one utterance to the next, so a process must render the same sequence to get
    the same bytes: dataset.py gives every shard a fresh process."""

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(ESPEAK_LIB)
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                         ctypes.c_void_p)

        def collect(wav, n, _events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = callback_type(collect)  # keep a reference: C holds only the pointer
        self.sample_rate = int(self._lib.espeak_Initialize(ESPEAK_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, 0))
        if self.sample_rate <= 0:
            raise SynthesisError(f"{ESPEAK_LIB} failed to initialise")
        self._lib.espeak_SetSynthCallback(self._callback)
        self._language_files = _espeak_language_files()

    def say(self, u: Utterance) -> np.ndarray:
        """Float32 audio at self.sample_rate."""
        name = f"{self._language_files.get(u.voice.accent, u.voice.accent)}+{u.voice.name}"
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise SynthesisError(f"espeak-ng has no voice {name!r}")
        self._lib.espeak_SetParameter(ESPEAK_PARAM_RATE, _espeak_rate(u.rate), 0)
        self._lib.espeak_SetParameter(ESPEAK_PARAM_PITCH, _espeak_pitch(u.pitch), 0)
        self._chunks.clear()
        text = u.text.encode("utf-8")
        self._lib.espeak_Synth(text, len(text) + 1, 0, ESPEAK_POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if not self._chunks:
            raise SynthesisError(f"espeak-ng produced no audio for {u.text!r} ({name})")
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0


def _espeak_language_files() -> dict[str, str]:
    """Accent id -> voice file (SetVoiceByName wants 'gmw/en-GB-scotland', the CLI takes 'en-gb-scotland')."""
    try:
        listed = _run(["espeak-ng", "--voices=en"], text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    files: dict[str, str] = {}
    for line in listed.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("gmw/"):
            files.setdefault(cols[1], cols[4])
    return files


def _espeak_rate(rate: float) -> int:
    return int(round(ESPEAK_BASE_WPM * rate))


def _espeak_pitch(pitch: float) -> int:
    return int(np.clip(round(ESPEAK_BASE_PITCH * pitch), 0, 99))


def espeak_cli(u: Utterance) -> tuple[np.ndarray, int]:
    """One espeak-ng process per utterance (the fallback when the library does not load)."""
    cmd = ["espeak-ng", "-v", f"{u.voice.accent}+{u.voice.name}", "-s", str(_espeak_rate(u.rate)),
           "-p", str(_espeak_pitch(u.pitch)), "--stdout", u.text]
    try:
        res = _run(cmd, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise SynthesisError(f"espeak-ng failed for {u.text!r} ({u.voice.voice_id}): {exc}") from None
    return _wav_to_float(res.stdout)


def flite(u: Utterance) -> tuple[np.ndarray, int]:
    """One flite process per utterance (flite starts in a few ms)."""
    with tempfile.TemporaryDirectory(prefix="kws-flite-") as tmp:
        out = os.path.join(tmp, "u.wav")
        cmd = ["flite", "-voice", u.voice.name, "--setf", f"duration_stretch={1.0 / u.rate:.4f}"]
        if u.voice.base_f0 is not None:
            cmd += ["--setf", f"int_f0_target_mean={u.voice.base_f0 * u.pitch:.2f}"]
        cmd += ["-t", u.text, "-o", out]
        try:
            _run(cmd, check=True)
            return _wav_to_float(out)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise SynthesisError(f"flite failed for {u.text!r} ({u.voice.voice_id}): {exc}") from None


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


FESTIVAL_PRELUDE = """
(define (kws_say words file)
  (utt.save.wave (utt.synth (eval (list 'Utterance 'Text words))) file 'riff))
"""


def festival_batch(utterances: Sequence[Utterance]) -> list[tuple[np.ndarray, int] | SynthesisError]:
    """Render many utterances with one festival process (batch mode). Each utterance resets its
    voice and parameters first, so its audio does not depend on what came before it."""
    if not utterances:
        return []
    with tempfile.TemporaryDirectory(prefix="kws-festival-") as tmp:
        lines = [FESTIVAL_PRELUDE]
        for i, u in enumerate(utterances):
            name = u.voice.name
            lines.append(f"(voice_{name})")
            lines.append(f"(Parameter.set 'Duration_Stretch {1.0 / u.rate:.4f})")
            if name in FESTIVAL_HTS_VOICES:
                # HTS voices ignore Duration_Stretch; hts_engine's speech-speed option ("-r") sets the rate
                lines.append(f"(set! hts_engine_params (append {name}::hts_engine_params "
                             f"'((\"{HTS_RATE_OPTION}\" {u.rate:.4f}))))")
            elif u.voice.base_f0 is not None:
                lines.append(f"(set! int_lr_params '((target_f0_mean {u.voice.base_f0 * u.pitch:.2f}) "
                             "(target_f0_std 14) (model_f0_mean 170) (model_f0_std 34)))")
            lines.append(f"(kws_say {_scheme_string(u.text)} \"{tmp}/{i}.wav\")")
        script = os.path.join(tmp, "batch.scm")
        Path(script).write_text("\n".join(lines) + "\n")
        try:
            _run(["festival", "--batch", script],
                 timeout=TIMEOUT_S + FESTIVAL_TIMEOUT_PER_CLIP_S * len(utterances))
        except (OSError, subprocess.SubprocessError) as exc:
            return [SynthesisError(f"festival failed: {exc}")] * len(utterances)
        out: list[tuple[np.ndarray, int] | SynthesisError] = []
        for i, u in enumerate(utterances):
            try:
                out.append(_wav_to_float(f"{tmp}/{i}.wav"))
            except (OSError, ValueError) as exc:
                out.append(SynthesisError(f"festival gave no audio for {u.text!r} ({u.voice.voice_id}): {exc}"))
        return out


class Synthesizer:
    """Renders utterances with whichever engine each voice belongs to, resampled to one rate.
    Create one per process (it may hold libespeak-ng)."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._espeak: EspeakLibrary | None = None
        self._espeak_tried = False

    def _espeak_lib(self) -> EspeakLibrary | None:
        if not self._espeak_tried:
            self._espeak_tried = True
            try:
                self._espeak = EspeakLibrary()
            except (OSError, SynthesisError):
                self._espeak = None
        return self._espeak

    def render(self, utterances: Sequence[Utterance]) -> list[np.ndarray | SynthesisError]:
        """Audio (float32 at self.sample_rate) or the error, for each utterance, in order."""
        raw: list[tuple[np.ndarray, int] | SynthesisError | None] = [None] * len(utterances)
        fest = [i for i, u in enumerate(utterances) if u.voice.engine == "festival"]
        for i, res in zip(fest, festival_batch([utterances[i] for i in fest])):
            raw[i] = res
        for i, u in enumerate(utterances):
            if raw[i] is not None:
                continue
            try:
                if u.voice.engine == "espeak":
                    lib = self._espeak_lib()
                    raw[i] = (lib.say(u), lib.sample_rate) if lib else espeak_cli(u)
                elif u.voice.engine == "flite":
                    raw[i] = flite(u)
                else:
                    raw[i] = SynthesisError(f"unknown TTS engine {u.voice.engine!r}")
            except SynthesisError as exc:
                raw[i] = exc
        out: list[np.ndarray | SynthesisError] = []
        for res in raw:
            if isinstance(res, SynthesisError):
                out.append(res)
            else:
                audio, rate = res
                out.append(change_rate(audio, rate, self.sample_rate))
        return out


def phonemes(words: Sequence[str], accent: str = "en-us") -> dict[str, tuple[str, ...]] | None:
    """espeak-ng's phonemes of each word (one process for all), or None without espeak-ng."""
    if not shutil.which("espeak-ng") or not words:
        return None
    try:
        res = _run(["espeak-ng", "-q", "-x", "--sep= ", "-v", accent], input="\n".join(words) + "\n", text=True)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in res.stdout.splitlines() if line.strip()]
    if len(lines) != len(words):
        return None
    return {w: tuple(line.replace("_:", " ").split()) for w, line in zip(words, lines)}
