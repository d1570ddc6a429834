"""How an audio file shows that it was cut short (a copy or a recording interrupted), read from its
structure without decoding it; libsndfile decodes what such a file holds without a word.

- WAV: its data chunk is shorter than its header says (``kws.edge.pcmwav.wav_shortfall``).
- Ogg (Vorbis, Opus): the file ends inside a page. The pages before it decode; the cut one cannot
  (its checksum covers the whole page), so a file cut inside its only audio page holds no audio.
- MP3: an Xing, Info or VBRI header in the first frame gives the exact length, which libsndfile
  reports, so fewer samples decoded means a cut. Without such a header libsndfile estimates the length
  from the file's size, which a cut cannot contradict: no warning then (kws.edge.mp3frames counts
  the frames of such a file, so that none beyond the estimate is dropped).
- FLAC: libsndfile refuses a cut file with the error it gives a damaged one ("flac decoder lost
  sync"), and through soundfile the two cannot be told apart; it stays refused.
"""
from __future__ import annotations

import os
import struct

from .mp3frames import LENGTH_HEADER_SEARCH, declares_length, id3v2_end

OGG_CAPTURE = b"OggS"
OGG_PAGE = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, sequence, CRC, segments
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
            f.seek(id3v2_end(f))
            frame = f.read(LENGTH_HEADER_SEARCH)
    except OSError:
        return False
    return declares_length(frame)
