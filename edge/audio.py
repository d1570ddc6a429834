"""Reading audio files (WAV, FLAC, OGG/Vorbis/Opus, MP3: whatever libsndfile reads, through
soundfile) and writing WAV, converting any rate, sample format and channel count to float32 mono.

One reader for every tool: ``open_audio`` checks the header (rates outside MIN_SAMPLE_RATE ..
MAX_SAMPLE_RATE are refused before anything is allocated) and yields blocks, so a file of any length
streams in bounded memory; ``read_audio`` reads a whole (clip-sized) file. Every failure is an
AudioError whose one line names the file and says "not a readable audio file (why)". A file cut short
(a WAV, MP3 or OGG copied or recorded only in part) gives what it holds, and ``AudioInfo.cut_short``
says how it falls short (kws.edge.truncation), for the tools to say so.
"""
from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from .errors import AudioError, AudioTooLongError
from .mp3frames import MPEG_SYNC, headerless_samples, with_length_header
from .native_stderr import native_stderr_silenced
from .truncation import (MP3_FRAME_SAMPLES, OGG_CUT, mp3_declares_length, of_header,
                         ogg_ends_inside_page)

INT16_SCALE = 32768.0
# file name endings the tools pick up from folders; any format libsndfile reads also works when named
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3")
# declared rates outside this range are refused: below it a tiny file resamples to gigabytes
# (1 Hz -> 16 kHz is 16000 output samples per input sample), above it no microphone records
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
READ_BLOCK_FRAMES = 65536  # frames per block when reading a whole file
UNREADABLE = "not a readable audio file"
NO_SAMPLES = "holds no samples"
EMPTY_FILE = "an empty file: 0 bytes"
BEFORE_AUDIO = "before any audio that decodes"  # after "<container> cut short ...": nothing to use
# libsndfile subtypes -> the sample-format names kws reports (others are shown lowercased)
SAMPLE_FORMATS = {"PCM_U8": "uint8", "PCM_S8": "int8", "PCM_16": "int16", "PCM_24": "int24",
                  "PCM_32": "int32", "FLOAT": "float32", "DOUBLE": "float64", "VORBIS": "vorbis",
                  "OPUS": "opus", "MPEG_LAYER_III": "mp3"}
MP3_SUBTYPE = "MPEG_LAYER_III"
# libsndfile (1.2.2, as soundfile bundles it) decodes an MP3 right only in one read call: a second
# call, or a read after a seek, returns other samples (and libmpg123 prints "part2_3_length (...) too
# large" on stderr; opening and decoding are done with native_stderr_silenced, so kws's own one-line
# error is all a user sees of a damaged MP3). So an MP3 is decoded whole, as int16, if it holds at most this many samples (all
# channels; 256 MiB: 25 min of 44.1 kHz stereo, 2.3 h of 16 kHz mono), and served from memory.
MAX_MP3_SAMPLES = 128 * 2 ** 20
# what a failing libsndfile / soundfile call raises (LibsndfileError is a RuntimeError)
_READ_ERRORS = (RuntimeError, ValueError, TypeError, OSError, EOFError, OverflowError, MemoryError)


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file held before conversion."""

    sample_rate: int
    channels: int
    sample_format: str  # e.g. "int16", "int24", "uint8", "float32", "vorbis", "mp3"
    num_samples: int  # frames per channel
    container: str = "WAV"  # libsndfile's major format: WAV, FLAC, OGG, MP3, ...
    # how the file falls short of what it declares, after "<container> cut short" (kws.edge.truncation):
    # "of its header's length (0.50 of 1.00 s)", "inside an Ogg page"; "" for a whole file (or unknown)
    cut_short: str = ""

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate if self.sample_rate else 0.0

    def describe(self) -> str:
        """'FLAC, 44100 Hz, 2 ch, int16, 3.2 s'."""
        return (f"{self.container}, {self.sample_rate} Hz, {self.channels} ch, {self.sample_format}, "
                f"{self.duration_s:.1f} s")


WavInfo = AudioInfo  # the name before the reader took every format

MAGIC_BYTES = 12  # how much of a file container_of and looks_like_audio need
# how a file of each format kws reads begins, where no raw int16 PCM plausibly begins so (a bare MPEG
# frame sync, two bytes, is left out: as little-endian PCM it is just a quiet negative sample)
CONTAINER_MAGICS = ((b"RIFF", "WAV"), (b"RIFX", "WAV"), (b"RF64", "WAV"), (b"fLaC", "FLAC"), (b"OggS", "OGG"),
                    (b"ID3", "MP3"))
STREAMABLE_CONTAINERS = ("WAV", "OGG")  # the formats libsndfile reads from a pipe (--wav /dev/stdin)


def container_of(head: bytes) -> str | None:
    """The audio file format ("WAV", "FLAC", "OGG", "MP3") whose header the bytes ``head`` (at least
    MAGIC_BYTES of them) begin with, or None where they do not begin like an audio file."""
    for magic, name in CONTAINER_MAGICS:
        if head.startswith(magic) and (name != "WAV" or head[8:12] == b"WAVE"):
            return name
    return None


def looks_like_audio(head: bytes) -> bool:
    """Whether the first MAGIC_BYTES of a file start like one of the formats kws reads: a container's
    header, or an MPEG frame sync (an MP3 without an ID3 tag). A cheap check before a download is
    handed to the reader, which has the final word."""
    if container_of(head) is not None:
        return True
    return len(head) >= 2 and (int.from_bytes(head[:2], "big") & MPEG_SYNC) == MPEG_SYNC


def _soundfile():
    try:
        import soundfile
    except ImportError:
        raise AudioError("soundfile is not installed (an install from before it joined the requirements): "
                         "pip install soundfile") from None
    except OSError as exc:  # the module imports but libsndfile is missing (no bundled copy on armv7l)
        raise AudioError(f"libsndfile is not installed ({exc}); on Debian/Raspberry Pi OS: "
                         f"sudo apt-get install libsndfile1") from None
    return soundfile


# largest sample magnitude read (full scale is 1.0): a float file can hold more, and 60 dB over full
# scale is already no recording; far larger values overflow the float32 features into NaN scores
MAX_SAMPLE_MAGNITUDE = 1000.0
# what libsndfile 1.2 answers for a regular file whose data it cannot parse (an MP3 header followed by
# junk), although the file exists and is regular
MISLEADING_OPEN_ERROR = "File does not exist or is not a regular file"
LIBSNDFILE_ERROR_PREFIX = "Error : "  # how libsndfile begins a decoder's message ("Error : flac decoder lost sync")


def _reason(exc: BaseException) -> str:
    """libsndfile's message without soundfile's "Error opening '<path>': " prefix, on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if text.startswith("Error opening ") and ": " in text:
        text = text.split(": ", 1)[1]
    if text.startswith(MISLEADING_OPEN_ERROR):  # libsndfile's word for a file it cannot parse (a broken MP3)
        text = "damaged data or an unknown format"
    text = text.removeprefix(LIBSNDFILE_ERROR_PREFIX)
    return text.rstrip(".")


def downmix(frames: np.ndarray) -> np.ndarray:
    """Mono of (frames, channels) samples: a mono file's one channel, else the mean of the channels
    (float32), what every tool hears of a file."""
    return frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)


class AudioReader:
    """An open audio file: ``info`` from its header, ``blocks()`` float32 mono blocks at its own rate.

    ``source`` is a path, or bytes / a binary file object (an upload) with ``name`` for messages.
    """

    def __init__(self, source: str | os.PathLike | bytes | BinaryIO, name: str | None = None):
        self._pipe = False
        if isinstance(source, (str, os.PathLike)):
            from .pcmwav import open_canonical_wav

            self._check_path(Path(source))  # a named pipe must not be read ahead: soundfile streams it
            plain = None if self._pipe else open_canonical_wav(source)
            if plain is not None:  # 16-bit PCM with a plain header: no libsndfile needed
                self.name, self._file = name or str(Path(source)), plain
                try:
                    self.info = self._header()
                except AudioError:
                    plain.close()
                    raise
                return
        sf = _soundfile()
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.name, target = name or "upload", io.BytesIO(bytes(source))
        elif hasattr(source, "read"):
            self.name, target = name or getattr(source, "name", "upload"), source
        else:
            path = Path(source)
            self.name, target = name or str(path), str(path)
            self._check_path(path)
        # a regular file's structure says whether it was cut short (a pipe is never read twice)
        regular = target if isinstance(target, str) and not self._pipe else None
        try:
            with native_stderr_silenced():  # libmpg123's notes on a damaged MP3 (or on junk it took for one)
                self._file = sf.SoundFile(target)
        except _READ_ERRORS as exc:
            why = _wav_rate_problem(target)
            if why is None and regular is not None and ogg_ends_inside_page(regular):  # cut in its headers
                why = f"OGG cut short {OGG_CUT}, {BEFORE_AUDIO}"
            raise self._error(exc, why) from None
        try:
            self.info = self._header()
            declared = self.info.num_samples
            if self._file.subtype == MP3_SUBTYPE:
                self._file = _DecodedMp3(self._file, self.name, _headerless_mp3(regular, target))
                self.info = replace(self.info, num_samples=self._file.frames)
            if regular is not None:
                self.info = replace(self.info, cut_short=_cut_short(regular, self.info, declared))
        except AudioError:
            self._file.close()
            raise

    def _check_path(self, path: Path) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise AudioError(f"{path}: no such file") from None
        except OSError as exc:
            raise AudioError(f"{path}: cannot read ({exc.strerror or exc})") from None
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise AudioError(f"{path}: is a folder, not an audio file")
        self._pipe = stat.S_ISFIFO(mode)
        if not (stat.S_ISREG(mode) or self._pipe):
            raise AudioError(f"{path}: not a regular file or named pipe")
        if stat.S_ISREG(mode) and st.st_size == 0:  # libsndfile: 'Format not recognised'
            raise AudioError(f"{path}: {UNREADABLE} ({EMPTY_FILE})")

    def _error(self, exc: BaseException, why: str | None = None) -> AudioError:
        why = why or _reason(exc)
        if self._pipe:
            why += "; from a named pipe only WAV and OGG stream, FLAC and MP3 need a regular file"
        return AudioError(f"{self.name}: {UNREADABLE} ({why})")

    def _header(self) -> AudioInfo:
        f = self._file
        rate, channels = int(f.samplerate), int(f.channels)
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            raise AudioError(f"{self.name}: {UNREADABLE} (declares {rate} Hz; expected "
                             f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)")
        if channels < 1:
            raise AudioError(f"{self.name}: {UNREADABLE} (declares {channels} channels)")
        # a pipe may not know its length: 0 here, counted while reading
        self.seekable = bool(f.seekable())
        frames = int(f.frames) if self.seekable and 0 <= f.frames < 2 ** 62 else 0
        return AudioInfo(sample_rate=rate, channels=channels,
                         sample_format=SAMPLE_FORMATS.get(f.subtype, str(f.subtype).lower()),
                         num_samples=frames, container=str(f.format))

    def blocks(self, frames: int = READ_BLOCK_FRAMES, channels: bool = False) -> Iterator[np.ndarray]:
        """Float32 mono blocks of up to ``frames`` samples until the end of the file (``channels``:
        (frames, channels) blocks, every channel as the file holds it)."""
        while True:
            try:
                data = self._file.read(frames, dtype="float32", always_2d=True)
            except _READ_ERRORS as exc:
                raise self._error(exc) from None
            if len(data) == 0:
                return
            yield self._checked(data, channels)

    def read_frames(self, start: int, count: int) -> np.ndarray:
        """Float32 mono samples ``[start, start + count)`` (fewer at the end of the file), read after a
        seek, so a window of a long file costs only its own frames."""
        if not self.seekable:
            raise AudioError(f"{self.name}: {UNREADABLE} (cannot seek: not a regular file)")
        try:
            self._file.seek(int(start))
            data = self._file.read(int(count), dtype="float32", always_2d=True)
        except _READ_ERRORS as exc:
            raise self._error(exc) from None
        return self._checked(data)

    def _checked(self, data: np.ndarray, channels: bool = False) -> np.ndarray:
        """The mono float32 of frames read (``channels``: the frames themselves); AudioError where a
        sample is NaN, infinite, or so far beyond full scale (a float file's) that the features would
        overflow."""
        mono = downmix(data)
        peak = float(np.max(np.abs(mono))) if mono.size else 0.0
        if not np.isfinite(peak):
            raise AudioError(f"{self.name}: {UNREADABLE} (holds NaN or infinite samples)")
        if peak > MAX_SAMPLE_MAGNITUDE:
            raise AudioError(f"{self.name}: {UNREADABLE} (holds samples up to {peak:.3g}, far beyond "
                             f"full scale, which is 1.0 for float audio)")
        return np.ascontiguousarray(data if channels else mono, dtype=np.float32)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _DecodedMp3:
    """An MP3 decoded in one read (see MP3_SUBTYPE), offering the part of ``soundfile.SoundFile``
    that AudioReader uses."""

    subtype = MP3_SUBTYPE
    format = "MP3"

    def __init__(self, f, name: str, headerless: bytes | None = None):
        """``headerless``: the bytes of the MP3 open as ``f`` where it has no length header, so that
        libsndfile estimated its length (from its size and first frame's bitrate), and never decodes
        past that estimate. Such a file's frames are counted: one longer than the estimate is reopened
        with a header that counts them all, one shorter (its first frame's bitrate the lower) is held
        to MAX_MP3_SAMPLES by its counted length, not by the estimate."""
        self.samplerate, self.channels = int(f.samplerate), int(f.channels)
        frames = max(0, int(f.frames))
        counted = headerless_samples(headerless) if headerless else None
        whole = with_length_header(headerless, frames) if counted and counted > frames else None
        if whole is not None:  # longer than estimated: reopened with an Xing header that counts it all
            f.close()
            data, frames = whole
            try:
                with native_stderr_silenced():
                    f = _soundfile().SoundFile(io.BytesIO(data))
            except _READ_ERRORS as exc:
                raise AudioError(f"{name}: {UNREADABLE} ({_reason(exc)})") from None
        elif counted:
            frames = min(frames, counted)
        if frames * self.channels > MAX_MP3_SAMPLES:
            f.close()
            raise self._too_long(name, frames)
        most = MAX_MP3_SAMPLES // self.channels  # a count cut short by junk the decoder reads past stays held
        try:
            with native_stderr_silenced():
                self._pcm = f.read(most + 1, dtype="int16", always_2d=True)  # every frame, in one call
        except _READ_ERRORS as exc:
            raise AudioError(f"{name}: {UNREADABLE} ({_reason(exc)})") from None
        finally:
            f.close()
        if len(self._pcm) > most:
            self._pcm = self._pcm[:0]
            raise self._too_long(name, most + 1)
        self.frames = len(self._pcm)
        self._pos = 0

    def _too_long(self, name: str, frames: int) -> AudioError:
        """The one-line refusal of an MP3 of ``frames`` frames, over MAX_MP3_SAMPLES."""
        return AudioError(f"{name}: {UNREADABLE} (an MP3 of {frames / self.samplerate / 60:.0f} min; kws "
                          f"decodes MP3 whole, up to {MAX_MP3_SAMPLES // 2 ** 20} M samples: convert it to FLAC "
                          "or WAV)")

    def seekable(self) -> bool:
        return True

    def read(self, frames: int = -1, dtype: str = "float32", always_2d: bool = True) -> np.ndarray:
        end = self.frames if frames < 0 else min(self.frames, self._pos + int(frames))
        out = self._pcm[self._pos:end].astype(np.float32) / np.float32(INT16_SCALE)
        self._pos = end
        return out

    def seek(self, frame: int) -> int:
        self._pos = max(0, min(int(frame), self.frames))
        return self._pos

    def close(self) -> None:
        self._pcm = self._pcm[:0]


def _headerless_mp3(path: str | None, target) -> bytes | None:
    """The bytes of an MP3 without an Xing/Info/VBRI length header, read from the regular file at
    ``path`` or from an upload held in memory (``target``); None for one with such a header (whose
    length libsndfile reads, and no byte more is read here) and for a source that cannot be read
    again (a named pipe, a caller's file object)."""
    if path is not None:
        if mp3_declares_length(path):
            return None
        try:
            return Path(path).read_bytes()
        except OSError:
            return None
    return target.getvalue() if isinstance(target, io.BytesIO) else None


def _cut_short(path: str, info: AudioInfo, declared: int) -> str:
    """AudioInfo.cut_short of the regular file at ``path`` (kws.edge.truncation), opened as ``info``;
    ``declared``: the frames libsndfile reported before decoding (an MP3's from its Xing header, or
    estimated from its size)."""
    if info.container == "OGG":
        return OGG_CUT if ogg_ends_inside_page(path) else ""
    if info.container == "MP3":
        if declared - info.num_samples > MP3_FRAME_SAMPLES and mp3_declares_length(path):
            return of_header(declared / info.sample_rate, info.num_samples / info.sample_rate)
        return ""
    from .pcmwav import wav_shortfall

    short = wav_shortfall(path)
    return of_header(*short) if short else ""


def cut_short_note(info: AudioInfo) -> str | None:
    """One phrase for a file cut short of what it declares (``info.cut_short``), for the tools that
    use what it holds: "WAV cut short of its header's length (0.50 of 1.00 s), used as it is"; None
    for a whole file."""
    return f"{info.container} cut short {info.cut_short}, used as it is" if info.cut_short else None


def no_samples_reason(info: AudioInfo) -> str:
    """Why a file gave no samples: it holds none, or it was cut short before any that decode."""
    return f"{info.container} cut short {info.cut_short}, {BEFORE_AUDIO}" if info.cut_short else NO_SAMPLES


def open_audio(source: str | os.PathLike | bytes | BinaryIO, name: str | None = None) -> AudioReader:
    """Open an audio file (path, bytes or binary file object) and check its header; AudioError if not one."""
    return AudioReader(source, name)


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """The header of an audio file, without reading its samples."""
    with open_audio(path) as reader:
        return reader.info


WAV_RATE_BYTES = slice(24, 28)  # the sample rate in a RIFF/WAVE header whose fmt chunk comes first


def _wav_rate_problem(target) -> str | None:
    """Why libsndfile refused a WAV in our words, where its header declares a rate out of range
    (libsndfile says only 'SF_INFO struct incomplete'); None otherwise."""
    try:
        if isinstance(target, io.BytesIO):
            head = target.getvalue()[:WAV_RATE_BYTES.stop]
        elif isinstance(target, str):
            with open(target, "rb") as f:
                head = f.read(WAV_RATE_BYTES.stop)
        else:
            return None
    except OSError:
        return None
    if len(head) < WAV_RATE_BYTES.stop or head[:4] != b"RIFF" or head[8:16] != b"WAVEfmt ":
        return None
    rate = int.from_bytes(head[WAV_RATE_BYTES], "little")
    if MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        return None
    return f"declares {rate} Hz; expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"


def read_audio(source: str | os.PathLike | bytes | BinaryIO, name: str | None = None,
               max_seconds: float | None = None, channels: bool = False) -> tuple[np.ndarray, AudioInfo]:
    """Read a whole audio file as float32 mono in [-1, 1] at its own rate, with what it held;
    AudioTooLongError as soon as more than ``max_seconds`` of it has been decoded (a small compressed
    file can hold hours of audio). ``channels``: (frames, channels) samples, every channel as the
    file holds it (its levels: the mono mean hides a channel that clips), ``downmix`` gives the mono.

    Memory follows the samples actually present, never the length a header declares.
    """
    with open_audio(source, name) as reader:
        info = reader.info
        limit = None if max_seconds is None else int(max_seconds * info.sample_rate)
        parts, count = [], 0
        for block in reader.blocks(channels=channels):
            count += len(block)
            if limit is not None and count > limit:
                raise AudioTooLongError(f"{reader.name}: longer than the {max_seconds:g} s allowed here")
            parts.append(block)
    samples = np.concatenate(parts) if parts else np.zeros((0, info.channels) if channels else 0, np.float32)
    if samples.size == 0:
        raise AudioError(f"{reader.name}: {UNREADABLE} ({no_samples_reason(info)})")
    if info.num_samples != len(samples):
        info = replace(info, num_samples=len(samples))
    return samples, info


read_wav = read_audio  # the name before the reader took every format


def stream_audio(source: str | os.PathLike | AudioReader, sample_rate: int,
                 block_frames: int = READ_BLOCK_FRAMES) -> Iterator[np.ndarray]:
    """Float32 mono chunks of a file resampled to ``sample_rate``, in bounded memory (the filter's
    state carries across blocks, so the result does not depend on ``block_frames``)."""
    reader = source if isinstance(source, AudioReader) else open_audio(source)
    try:
        yield from resampled(reader.blocks(block_frames), reader.info.sample_rate, sample_rate)
    finally:
        if reader is not source:
            reader.close()


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling between integer rates (44.1k/48k/8k -> 16k and back)."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    from .resample import rate_factors

    up, down = rate_factors(from_rate, to_rate)
    out = resample_poly(samples.astype(np.float64), up, down)
    return out.astype(np.float32)


def load_audio(path: str | os.PathLike, sample_rate: int) -> tuple[np.ndarray, AudioInfo]:
    """Read any audio file and return float32 mono at ``sample_rate``, plus the original format."""
    samples, info = read_audio(path)
    return resample(samples, info.sample_rate, sample_rate), info


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float [-1, 1] to int16 PCM, rounding and clipping."""
    return np.clip(np.round(np.asarray(samples, dtype=np.float64) * INT16_SCALE), -32768, 32767).astype(np.int16)


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 PCM or float to float32 in [-1, 1]."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / INT16_SCALE
    if samples.dtype.kind in "iu":
        raise AudioError(f"unsupported PCM sample type {samples.dtype}; give int16 or float")
    return samples.astype(np.float32, copy=False)


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit mono PCM atomically (temp file in the same folder, then rename; an OSError names
    ``path``)."""
    from scipy.io import wavfile

    from .manifest import atomic_file

    pcm = samples if samples.dtype == np.int16 else to_int16(samples)
    with atomic_file(path) as f:
        wavfile.write(f, int(sample_rate), pcm)


def resampled(chunks: Iterator[np.ndarray], from_rate: int, to_rate: int) -> Iterator[np.ndarray]:
    """The chunks resampled to ``to_rate`` by one streaming filter, flushed at the end."""
    from .resample import StreamResampler

    resampler = StreamResampler(from_rate, to_rate)
    for chunk in chunks:
        out = resampler.process(chunk)
        if len(out):
            yield out
    tail = resampler.flush()
    if len(tail):
        yield tail
