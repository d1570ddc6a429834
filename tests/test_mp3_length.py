"""An MP3 without an Xing/Info/VBRI length header, whose length libsndfile estimates from the file's
size and its first frame's bitrate, is decoded to its end by every tool (they all read through
kws.edge.audio), not cut off at the estimate."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import SAMPLE_RATE
from kws.edge.audio import read_audio

PART_S = 2
RICH, POOR = 0.0, 0.9  # soundfile compression levels: 160 and 24 kbit/s at 16 kHz (MPEG-2 Layer III)
MPEG2_LAYER3_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
MPEG2_FRAME_BYTES_PER_BIT_RATIO = 72
FRAME_SAMPLES = 1152  # the most samples one MP3 frame holds
DECODER_DELAY = 529  # samples libmpg123 drops at the start of an MP3 whose length a header gives
TAIL = SAMPLE_RATE // 2


def _cbr_mp3(path, audio: np.ndarray, level: float) -> bytes:
    """``audio`` as a constant-bitrate MP3's frames, without the Info frame LAME may write first."""
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile cannot write MP3, so no MP3 without a length header can be made")
    try:
        with sf.SoundFile(path, "w", SAMPLE_RATE, 1, format="MP3", subtype="MPEG_LAYER_III",
                          compression_level=level, bitrate_mode="CONSTANT") as f:
            f.write(audio)
    except TypeError:
        pytest.skip("soundfile < 0.13 cannot set an MP3's bitrate, so no variable-bitrate MP3 can be made")
    data = path.read_bytes()
    if b"Info" in data[:64] or b"Xing" in data[:64]:
        kbps = MPEG2_LAYER3_KBPS[data[2] >> 4]
        size = MPEG2_FRAME_BYTES_PER_BIT_RATIO * kbps * 1000 // SAMPLE_RATE + (data[2] >> 1 & 1)
        data = data[size:]
    path.write_bytes(data)
    return data


def _joined(tmp_path):
    """(path of a variable-bitrate MP3 with no length header: two seconds of noise at 160 kbit/s, then
    two of a tone at 24 kbit/s; what its two parts decode to on their own)."""
    rng = np.random.default_rng(0)
    noise = (0.2 * rng.standard_normal(PART_S * SAMPLE_RATE)).astype(np.float32)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(PART_S * SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    rich, poor = _cbr_mp3(tmp_path / "rich.mp3", noise, RICH), _cbr_mp3(tmp_path / "poor.mp3", tone, POOR)
    assert rich[2] >> 4 > poor[2] >> 4  # the first frame's bitrate is the higher one
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(rich + poor)
    return joined, read_audio(tmp_path / "rich.mp3")[0], read_audio(tmp_path / "poor.mp3")[0]


@pytest.mark.parametrize("source", ["path", "upload bytes"])
def test_an_mp3_longer_than_libsndfile_estimates_is_read_to_its_end(tmp_path, source):
    """libsndfile estimated 2.4 of its 4.2 s from the 160 kbit/s first frame and stopped there: the
    whole tone was lost without a word."""
    path, rich, poor = _joined(tmp_path)
    samples, info = read_audio(path if source == "path" else path.read_bytes())
    parts = len(rich) + len(poor)
    assert parts - FRAME_SAMPLES - DECODER_DELAY <= len(samples) <= parts
    assert info.num_samples == len(samples) and info.cut_short == ""
    np.testing.assert_allclose(samples[-TAIL:], poor[-TAIL:], atol=1e-4)  # the tone's end is there
