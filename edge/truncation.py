"""How an audio file shows that it was cut short (a copy or a recording interrupted), read from its
structure without decoding it; libsndfile decodes what such a file holds without a word.

- WAV: its data chunk is shorter than its header says (``kws.edge.pcmwav.wav_shortfall``).
- Ogg (Vorbis, Opus): the file ends inside a page. The pages before it decode; the cut one cannot
  (its checksum covers the whole page), so a file cut inside its only audio page holds no audio.
- MP3: an Xing, Info or VBRI header in the first frame gives the exact length, which libsndfile
  reports, so fewer samples decoded means a cut. Without such a header libsndfile estimates the length
  from the file's size, which a cut cannot contradict: no warning then.
- FLAC: libsndfile refuses a cut file with the error it gives a damaged one ("flac decoder lost
  sync"), and through soundfile the two cannot be told apart; it stays refused.
"""
from __future__ import annotations

import os
import struct

OGG_CAPTURE = b"OggS"
OGG_PAGE = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, CRC, segments
MPEG_SYNC = 0xFFE0  # 11 set bits: an MPEG audio frame header
MPEG_HEADER_BYTES = 4
ID3V2_HEADER = 10  # "ID3", version (2), flags, size (4 bytes of 7 bits each)
ID3V2_FOOTER_FLAG = 0x10  # a footer of another 10 bytes follows the tag
MAX_ID3V2_TAGS = 8
XING_TAGS = (b"Xing", b"Info")  # after the side information: 4 + 9, 17 or 32 bytes in, 2 more with a CRC
XING_SEARCH_END = MPEG_HEADER_BYTES + 2 + 32 + 4
VBRI_TAG, VBRI_OFFSET = b"VBRI", MPEG_HEADER_BYTES + 32
MP3_FRAME_SAMPLES = 1152  # the most samples an MPEG audio frame holds: a shortfall within one is no cut
OGG_CUT = "inside an Ogg page"  # AudioInfo.cut_short of an Ogg file, after "OGG cut short"


def of_header(declared_s: float, held_s: float) -> str:
    """AudioInfo.cut_short of a file whose header declares more than it holds."""
    return f"of its header's length ({held_s:.2f} of {declared_s:.2f} s)"


def ogg_ends_inside_page(path: str | os.PathLike) -> bool:
    """Whether the Ogg file at ``path`` ends inside a page (in its header or its segments); False for
    a whole one, for a file that is no Ogg file, and for one whose pages give way to other bytes."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            pos = 0
            while pos < size:
                f.seek(pos)
                head = f.read(OGG_PAGE.size)
                if head[:len(OGG_CAPTURE)] != OGG_CAPTURE[:len(head)]:
                    return False
                if len(head) < OGG_PAGE.size:
                    return True
                table = f.read(head[-1])  # one byte per segment: its length
                if len(table) < head[-1]:
                    return True
                pos += OGG_PAGE.size + len(table) + sum(table)
            return pos > size
    except OSError:
        return False


def mp3_declares_length(path: str | os.PathLike) -> bool:
    """Whether the MP3 file at ``path`` begins (after any ID3v2 tags) with an Xing, Info or VBRI
    frame, which counts the frames of the whole file."""
    try:
        with open(path, "rb") as f:
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
            f.seek(start)
            frame = f.read(XING_SEARCH_END)
    except OSError:
        return False
    if len(frame) < XING_SEARCH_END or int.from_bytes(frame[:2], "big") & MPEG_SYNC != MPEG_SYNC:
        return False
    side = frame[MPEG_HEADER_BYTES:]
    return any(tag in side for tag in XING_TAGS) or frame[VBRI_OFFSET:VBRI_OFFSET + len(VBRI_TAG)] == VBRI_TAG
