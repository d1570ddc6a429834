"""Audio sources around the recognizer: microphone (sounddevice/PortAudio), audio file, raw PCM stream.

Each source yields float32 mono chunks at the model's rate (resampling where the input differs).
The microphone callback only copies into a queue; the caller's thread does the processing.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from .audio import (INT16_SCALE, MAGIC_BYTES, STREAMABLE_CONTAINERS, UNREADABLE, container_of, cut_short_note,
                    no_samples_reason, open_audio, resampled)
from .errors import AudioError, KwsError

BLOCK_MS = 100  # file and stdin sources read this much audio at a time
MIC_BLOCK_MS = 20  # microphone callback size
MIC_QUEUE_SECONDS = 10  # audio the queue holds before the callback has to drop blocks
MIC_STALL_S = 3.0  # no audio for this long from a started device: it is gone
STOP_TIMEOUT_S = 2.0  # how long closing a device may take before we stop waiting for it
FALLBACK_RATES = (48000, 44100, 32000, 22050, 16000, 8000)
SEVERAL_DEVICES = "Multiple input devices found"  # how sounddevice begins its error for a name matching several


class DeviceError(KwsError):
    """An audio device is unknown, cannot be opened, or stopped delivering audio."""


@dataclass
class SourceStats:
    """Counters a source keeps for the summary."""

    overflows: int = 0  # input overflows reported by PortAudio
    dropped_blocks: int = 0  # blocks the callback could not queue (processing fell behind)
    notes: list[str] = field(default_factory=list)


def _pcm_to_float(raw: bytes, width: int, channels: int) -> np.ndarray:
    """Little-endian PCM bytes to float32 mono."""
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / INT16_SCALE
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = (np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    else:
        raise AudioError(f"unsupported PCM sample width {width} bytes")
    if channels > 1:
        usable = len(x) - len(x) % channels
        x = x[:usable].reshape(-1, channels).mean(axis=1)
    return x


class FileSource:
    """An audio file (WAV, FLAC, OGG, MP3; or a named pipe carrying WAV/OGG), read block by block:
    constant memory for a file of any length."""

    def __init__(self, path: str | os.PathLike, sample_rate: int, block_ms: int = BLOCK_MS):
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.block_ms = block_ms
        self.stats = SourceStats()
        self._reader = open_audio(self.path)  # AudioError naming the file: missing, unreadable, absurd rate
        self.info = self._reader.info
        self.file_rate, self.channels = self.info.sample_rate, self.info.channels
        if self._reader.seekable and self.info.num_samples == 0:
            self._reader.close()
            raise AudioError(f"{self.path}: {UNREADABLE} ({no_samples_reason(self.info)})")

    @property
    def duration_s(self) -> float:
        return self.info.duration_s

    @property
    def input_rate(self) -> int:
        """The rate of the audio before it is resampled to ``sample_rate``."""
        return self.file_rate

    def describe(self) -> str:
        info = self.info
        length = f", {info.duration_s:.1f} s" if info.num_samples else ""
        text = f"{self.path} ({info.container}, {info.sample_rate} Hz, {info.channels} ch, {info.sample_format}{length})"
        if self.file_rate != self.sample_rate:
            text += f", resampled to {self.sample_rate} Hz"
        note = cut_short_note(self.info)
        if note:
            text += f"; {note}"
        return text

    def _blocks(self) -> Iterator[np.ndarray]:
        block = max(1, self.file_rate * self.block_ms // 1000)
        seen = 0
        try:
            for chunk in self._reader.blocks(block):
                seen += len(chunk)
                yield chunk
        finally:
            self._reader.close()
        if seen == 0:
            raise AudioError(f"{self.path}: {UNREADABLE} ({no_samples_reason(self.info)})")

    def chunks(self) -> Iterator[np.ndarray]:
        """Float32 mono chunks at ``sample_rate`` until the end of the file."""
        return resampled(self._blocks(), self.file_rate, self.sample_rate)


WavSource = FileSource  # the name from when only WAV was read


class RawSource:
    """Raw little-endian int16 PCM (mono or interleaved) from a binary stream such as stdin."""

    def __init__(self, stream: BinaryIO, file_rate: int, sample_rate: int, channels: int = 1,
                 block_ms: int = BLOCK_MS):
        if channels < 1:
            raise AudioError(f"channels must be >= 1, got {channels}")
        self.stream = stream
        self.file_rate, self.sample_rate, self.channels = file_rate, sample_rate, channels
        self.block_bytes = max(1, file_rate * block_ms // 1000) * 2 * channels
        self.stats = SourceStats()

    @property
    def input_rate(self) -> int:
        """The rate of the audio before it is resampled to ``sample_rate``."""
        return self.file_rate

    def describe(self) -> str:
        text = f"raw int16 PCM on stdin ({self.file_rate} Hz, {self.channels} ch)"
        if self.file_rate != self.sample_rate:
            text += f", resampled to {self.sample_rate} Hz"
        return text

    def _reads(self) -> Iterator[bytes]:
        """The stream's bytes as they arrive; AudioError first where they begin like an audio file,
        whose header would be heard as sound and whose own rate and channels would go unread."""
        read = getattr(self.stream, "read1", self.stream.read)
        head = b""
        while len(head) < MAGIC_BYTES:
            more = read(MAGIC_BYTES - len(head))
            if not more:
                break
            head += more
        container = container_of(head)
        if container is not None:
            instead = ("pipe it to --wav /dev/stdin" if container in STREAMABLE_CONTAINERS
                       else "save it to a file and give --wav FILE")
            raise AudioError(f"stdin: a {container} file, not the raw int16 PCM --stdin reads (its header would "
                             f"be heard as sound, its rate and channels ignored); {instead}")
        if head:
            yield head
        while raw := read(self.block_bytes):
            yield raw

    def _blocks(self) -> Iterator[np.ndarray]:
        frame = 2 * self.channels
        leftover = b""
        for raw in self._reads():
            raw = leftover + raw
            usable = len(raw) - len(raw) % frame
            leftover = raw[usable:]
            if usable:
                yield _pcm_to_float(raw[:usable], 2, self.channels)

    def chunks(self) -> Iterator[np.ndarray]:
        return resampled(self._blocks(), self.file_rate, self.sample_rate)


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as exc:  # the module imports but PortAudio is missing
        raise DeviceError(f"PortAudio is not installed ({exc}); on Debian/Raspberry Pi OS: "
                          f"sudo apt-get install libportaudio2") from None
    return sd


def list_input_devices() -> list[dict]:
    """Input devices PortAudio sees: index, name, channels, default rate, default marker."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except Exception as exc:  # noqa: BLE001 - PortAudio errors have many types
        raise DeviceError(f"cannot list audio devices: {exc}") from None
    return [{"index": i, "name": d["name"], "channels": int(d["max_input_channels"]),
             "default_rate": int(d["default_samplerate"]), "default": i == default_in}
            for i, d in enumerate(devices) if d["max_input_channels"] > 0]


def _resolve_device(sd, device: str | int | None):
    """A device index or name substring as PortAudio takes it; unknown names, or no default input
    device where none is named, raise DeviceError."""
    if device is None or device == "":
        try:
            sd.query_devices(None, "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise DeviceError(f"no default input device ({str(exc).splitlines()[0]}); plug in a microphone "
                              "or name one with --device (kws-listen --list-devices)") from None
        return None
    spec = int(device) if isinstance(device, int) or str(device).isdigit() else str(device)
    try:
        info = sd.query_devices(spec, "input")
    except (ValueError, sd.PortAudioError) as exc:
        lines = str(exc).splitlines()
        matches = [line.strip() for line in lines[1:] if line.strip()]
        if lines and lines[0].startswith(SEVERAL_DEVICES) and matches:  # then one "[index] name, API" a line
            raise DeviceError(f"--device {str(device)!r} matches {len(matches)} input devices "
                              f"({'; '.join(matches)}); give its index or more of its name") from None
        raise DeviceError(f"no input device {str(device)!r} ({lines[0] if lines else type(exc).__name__}); "
                          f"see kws-listen --list-devices") from None
    return spec if isinstance(spec, int) else info["name"]


class MicrophoneSource:
    """A PortAudio input device. ``chunks()`` yields audio as it arrives until ``stop()``."""

    def __init__(self, sample_rate: int, device: str | int | None = None, block_ms: int = MIC_BLOCK_MS,
                 stall_s: float = MIC_STALL_S, device_rate: int | None = None):
        self.sd = _sounddevice()
        self.sample_rate = sample_rate
        self.device = _resolve_device(self.sd, device)
        self.forced_rate = bool(device_rate)
        self.device_rate = self._pick_rate(device_rate)
        self.block = max(1, self.device_rate * block_ms // 1000)
        self.stats = SourceStats()
        self.stall_s = stall_s
        import queue  # here: reading a file or stdin never loads them
        import threading

        self._full, self._empty = queue.Full, queue.Empty
        self._queue: queue.Queue = queue.Queue(maxsize=max(4, MIC_QUEUE_SECONDS * 1000 // block_ms))
        self._stop = threading.Event()
        self._stream = None
        self.closed_cleanly = True
        self.device_name = self.sd.query_devices(self.device, "input")["name"]

    def _pick_rate(self, wanted: int | None = None) -> int:
        """``wanted`` if given (it must open), else the model's rate if the device opens at it, else
        the first rate it accepts."""
        info = self.sd.query_devices(self.device, "input")
        if wanted:
            try:
                self.sd.check_input_settings(device=self.device, channels=1, dtype="int16", samplerate=wanted)
            except Exception as exc:  # noqa: BLE001 - PortAudioError or ValueError
                raise DeviceError(f"input device {info['name']!r} does not open at {wanted} Hz ({exc})") from None
            return int(wanted)
        rates = [self.sample_rate, int(info["default_samplerate"])] + list(FALLBACK_RATES)
        errors = []
        for rate in dict.fromkeys(rates):
            try:
                self.sd.check_input_settings(device=self.device, channels=1, dtype="int16", samplerate=rate)
                return rate
            except Exception as exc:  # noqa: BLE001 - PortAudioError or ValueError
                errors.append(f"{rate}: {exc}")
        raise DeviceError(f"input device {info['name']!r} opens at none of the rates tried ({errors[0]})")

    @property
    def input_rate(self) -> int:
        """The rate of the audio before it is resampled to ``sample_rate``."""
        return self.device_rate

    def describe(self) -> str:
        text = f"input device {self.device_name!r} at {self.device_rate} Hz"
        if self.device_rate != self.sample_rate:
            why = "" if self.forced_rate else f"it does not open at {self.sample_rate} Hz; "
            text += f" ({why}resampling to {self.sample_rate} Hz)"
        return text

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio's thread: copy only
        if status.input_overflow:
            self.stats.overflows += 1
        try:
            self._queue.put_nowait(indata[:, 0].copy())
        except self._full:
            self.stats.dropped_blocks += 1

    def start(self) -> None:
        try:
            self._stream = self.sd.InputStream(samplerate=self.device_rate, blocksize=self.block,
                                               device=self.device, channels=1, dtype="int16",
                                               callback=self._callback)
            self._stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudioError
            raise DeviceError(f"cannot open input device {self.device_name!r}: {exc}") from None

    def stop(self) -> None:
        """Stop and close the stream. A device that hangs (vanished, or blocked in a read) is left to
        a daemon thread after STOP_TIMEOUT_S, so stopping never hangs the program."""
        self._stop.set()
        stream, self._stream = self._stream, None
        if stream is None:
            return

        def close() -> None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception:  # noqa: BLE001 - closing a vanished device may fail; we are done anyway
                pass

        import threading

        closer = threading.Thread(target=close, name="close-audio", daemon=True)
        closer.start()
        closer.join(STOP_TIMEOUT_S)
        self.closed_cleanly = not closer.is_alive()

    def _blocks(self) -> Iterator[np.ndarray]:
        waited = 0.0
        poll = 0.1
        while not self._stop.is_set():
            try:
                block = self._queue.get(timeout=poll)
            except self._empty:
                waited += poll
                stream = self._stream
                if stream is None or not stream.active or waited >= self.stall_s:
                    why = ("its stream closed" if stream is None or not stream.active
                           else f"no audio for {self.stall_s:g} s: unplugged or hung?")
                    raise DeviceError(f"input device {self.device_name!r} stopped delivering audio ({why})")
                continue
            waited = 0.0
            yield block.astype(np.float32) / INT16_SCALE

    def chunks(self) -> Iterator[np.ndarray]:
        if self._stream is None:
            self.start()
        return resampled(self._blocks(), self.device_rate, self.sample_rate)


def stdin_binary() -> BinaryIO:
    """Standard input as bytes; AudioError when the process has none (started with stdin closed)."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise AudioError("stdin is closed: nothing to read (pipe raw PCM in, e.g. arecord ... | kws-listen --stdin)")
    return stream
