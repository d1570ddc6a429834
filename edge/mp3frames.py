"""The structure of an MP3 read from its bytes, without decoding it: where its audio begins after
any ID3v2 tags, whether its first frame holds an Xing, Info or VBRI header giving its length, and how
many samples its Layer III frames hold.

libsndfile takes an MP3's length from such a header; without one it estimates the length from the
file's size and the first frame's bitrate, and never decodes past that estimate. A variable-bitrate
MP3 without a header (written by a streaming encoder, or joined from parts) whose first frame has a
higher bitrate than the rest is longer than the estimate, and its end would be dropped without a
word. ``with_length_header`` gives such a file's bytes with an Xing frame counting its frames in
front, which libsndfile then decodes to the end. One whose first frame has a lower bitrate than the
rest is shorter than the estimate: ``headerless_samples`` counts its length, which kws's MP3 size
limit (kws.edge.audio.MAX_MP3_SAMPLES) takes instead of the estimate.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import BinaryIO

MPEG_SYNC = 0xFFE0  # 11 set bits: an MPEG audio frame header
MPEG_HEADER_BYTES = 4
ID3V2_HEADER = 10  # "ID3", version (2), flags, size (4 bytes of 7 bits each)
ID3V2_FOOTER_FLAG = 0x10  # a footer of another 10 bytes follows the tag
MAX_ID3V2_TAGS = 8
LAYER_III = 1  # the layer bits of a Layer III header
MPEG_1, MPEG_2, MPEG_25 = 3, 2, 0  # the version bits
# kbit/s by bitrate index (0: free format, which has no frame size in its header; 15: invalid)
LAYER_III_KBPS = {MPEG_1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
                  MPEG_2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
LAYER_III_KBPS[MPEG_25] = LAYER_III_KBPS[MPEG_2]
SAMPLE_RATES = {MPEG_1: (44100, 48000, 32000), MPEG_2: (22050, 24000, 16000), MPEG_25: (11025, 12000, 8000)}
# samples per channel in a frame, and frame bytes per (bit/s / Hz)
FRAME_SAMPLES = {MPEG_1: 1152, MPEG_2: 576, MPEG_25: 576}
FRAME_BYTES_PER_BIT_RATIO = {MPEG_1: 144, MPEG_2: 72, MPEG_25: 72}
MONO_MODE = 3  # channel mode bits of a mono frame
# bytes of side information after the header (where an Xing/Info tag begins): [MPEG 1][mono]
SIDE_INFO_BYTES = {(True, False): 32, (True, True): 17, (False, False): 17, (False, True): 9}
NO_CRC_BIT = 0x01  # in the second header byte: set when no 2-byte CRC follows the header
XING_TAG = b"Xing"
XING_TAGS = (XING_TAG, b"Info")  # after the side information: 4 + 9, 17 or 32 bytes in, 2 more with a CRC
LENGTH_HEADER_SEARCH = MPEG_HEADER_BYTES + 2 + 32 + 4  # bytes of a first frame that hold its length header
VBRI_TAG, VBRI_OFFSET = b"VBRI", MPEG_HEADER_BYTES + 32
XING_FRAMES_FLAG = 0x0001  # the Xing header's flags: a frame count follows
XING_FIELDS = struct.Struct(">II")  # flags, frame count


@dataclass(frozen=True)
class FrameHeader:
    """One Layer III frame header: its size in bytes, the samples it decodes to, and what stays the
    same from frame to frame of one stream (version, sample rate, mono or not)."""

    size: int
    samples: int
    stream: tuple
    mpeg1: bool
    mono: bool


def frame_header(head: bytes) -> FrameHeader | None:
    """The Layer III frame header in the first 4 bytes of ``head``; None for anything else (another
    layer, a free-format or invalid bitrate, a reserved version or rate)."""
    if len(head) < MPEG_HEADER_BYTES or int.from_bytes(head[:2], "big") & MPEG_SYNC != MPEG_SYNC:
        return None
    version, layer = head[1] >> 3 & 3, head[1] >> 1 & 3
    rate_index, bitrate_index = head[2] >> 2 & 3, head[2] >> 4
    if version not in SAMPLE_RATES or layer != LAYER_III or rate_index == 3 or bitrate_index in (0, 15):
        return None
    rate = SAMPLE_RATES[version][rate_index]
    bitrate = LAYER_III_KBPS[version][bitrate_index] * 1000
    padding = head[2] >> 1 & 1
    mono = head[3] >> 6 == MONO_MODE
    return FrameHeader(size=FRAME_BYTES_PER_BIT_RATIO[version] * bitrate // rate + padding,
                       samples=FRAME_SAMPLES[version], stream=(version, rate_index, mono),
                       mpeg1=version == MPEG_1, mono=mono)


def declares_length(frame: bytes) -> bool:
    """Whether ``frame``, the first LENGTH_HEADER_SEARCH bytes of an MP3's first frame, holds an
    Xing, Info or VBRI header, which counts the frames of the whole file."""
    if len(frame) < LENGTH_HEADER_SEARCH or int.from_bytes(frame[:2], "big") & MPEG_SYNC != MPEG_SYNC:
        return False
    side = frame[MPEG_HEADER_BYTES:LENGTH_HEADER_SEARCH]
    return any(tag in side for tag in XING_TAGS) or frame[VBRI_OFFSET:VBRI_OFFSET + len(VBRI_TAG)] == VBRI_TAG


def id3v2_end(f: BinaryIO) -> int:
    """Where the audio of the MP3 open as ``f`` begins: the offset after its ID3v2 tags (0 without)."""
    start = 0
    for _ in range(MAX_ID3V2_TAGS):
        f.seek(start)
        tag = f.read(ID3V2_HEADER)
        if len(tag) < ID3V2_HEADER or tag[:3] != b"ID3":
            break
        size = 0
        for byte in tag[6:10]:
            size = size << 7 | (byte & 0x7F)
        start += ID3V2_HEADER + size + (ID3V2_HEADER if tag[5] & ID3V2_FOOTER_FLAG else 0)
    return start


def count_samples(data: bytes, start: int) -> int:
    """Samples per channel in the whole frames of one stream from ``start`` on, the frames a decoder
    reads until the first bytes that are no such frame (a trailing tag, junk, or a cut)."""
    first = frame_header(data[start:start + MPEG_HEADER_BYTES])
    if first is None:
        return 0
    pos, samples = start, 0
    while True:
        header = frame_header(data[pos:pos + MPEG_HEADER_BYTES])
        if header is None or header.stream != first.stream or pos + header.size > len(data):
            return samples
        pos += header.size
        samples += header.samples


def headerless_samples(data: bytes) -> int | None:
    """Samples per channel in the frames of the MP3 ``data`` (count_samples from its first frame on),
    where it has no Xing/Info/VBRI length header, so that libsndfile estimated its length; None where
    it has one, or where its first frame is none this module reads (a free-format bitrate)."""
    start = id3v2_end(io.BytesIO(data))
    if frame_header(data[start:start + MPEG_HEADER_BYTES]) is None:
        return None
    if declares_length(data[start:start + LENGTH_HEADER_SEARCH]):
        return None
    return count_samples(data, start)


def xing_frame(first: bytes, frames: int) -> bytes | None:
    """A frame of no audio, of the same stream as the frame header ``first``, whose Xing header
    counts ``frames`` frames; None where ``first`` is no Layer III header."""
    head = bytearray(first[:MPEG_HEADER_BYTES])
    head[1] |= NO_CRC_BIT
    header = frame_header(bytes(head))
    if header is None:
        return None
    tag_at = MPEG_HEADER_BYTES + SIDE_INFO_BYTES[header.mpeg1, header.mono]
    frame = bytearray(header.size)
    if tag_at + len(XING_TAG) + XING_FIELDS.size > len(frame):
        return None
    frame[:MPEG_HEADER_BYTES] = head
    frame[tag_at:tag_at + len(XING_TAG)] = XING_TAG
    XING_FIELDS.pack_into(frame, tag_at + len(XING_TAG), XING_FRAMES_FLAG, frames)
    return bytes(frame)


def with_length_header(data: bytes, estimate: int) -> tuple[bytes, int] | None:
    """An MP3 without a length header (``data``, whose length libsndfile estimated as ``estimate``
    samples per channel) that holds more than one frame beyond the estimate: (its bytes with an Xing
    frame counting its frames in front of the first, the samples those frames hold). None where the
    estimate covers it, and where its frames cannot be counted (a free-format bitrate)."""
    start = id3v2_end(io.BytesIO(data))
    first = frame_header(data[start:start + MPEG_HEADER_BYTES])
    if first is None or declares_length(data[start:start + LENGTH_HEADER_SEARCH]):
        return None
    samples = count_samples(data, start)
    if samples <= estimate + first.samples:
        return None
    xing = xing_frame(data[start:start + MPEG_HEADER_BYTES], samples // first.samples)
    if xing is None:
        return None
    return data[:start] + xing + data[start:], samples
