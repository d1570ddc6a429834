"""The structure of an MP3 read from its bytes, without decoding it: where its audio begins after
any ID3v2 tags, and whether its first frame holds an Xing, Info or VBRI header giving its length.
"""
from __future__ import annotations

from typing import BinaryIO

MPEG_SYNC = 0xFFE0  # 11 set bits: an MPEG audio frame header
MPEG_HEADER_BYTES = 4
ID3V2_HEADER = 10  # "ID3", version (2), flags, size (4 bytes of 7 bits each)
ID3V2_FOOTER_FLAG = 0x10  # a footer of another 10 bytes follows the tag
MAX_ID3V2_TAGS = 8
XING_TAGS = (b"Xing", b"Info")  # after the side information: 4 + 9, 17 or 32 bytes in, 2 more with a CRC
LENGTH_HEADER_SEARCH = MPEG_HEADER_BYTES + 2 + 32 + 4  # bytes of a first frame that hold its length header
VBRI_TAG, VBRI_OFFSET = b"VBRI", MPEG_HEADER_BYTES + 32


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
