"""An MP3 without an Xing/Info/VBRI length header, whose length libsndfile estimates from the file's
size and its first frame's bitrate, is decoded to its end by every tool (they all read through
kws.edge.audio), not cut off at the estimate."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import SAMPLE_RATE
from kws.edge import audio
from kws.edge.audio import read_audio
from kws.edge.errors import AudioError

PART_S = 2
RICH, POOR = 0.0, 0.9  # soundfile compression levels: 160 and 24 kbit/s at 16 kHz (MPEG-2 Layer III)
MPEG2_LAYER3_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
MPEG2_FRAME_BYTES_PER_BIT_RATIO = 72
FRAME_SAMPLES = 1152  # the most samples one MP3 frame holds
DECODER_DELAY = 529  # samples libmpg123 drops at the start of an MP3 whose length a header gives
TAIL = SAMPLE_RATE // 2
LIMIT_S = 6  # a lowered MAX_MP3_SAMPLES: above the 4.2 s the low-first file holds, below libsndfile's 16 s estimate


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


def _joined(tmp_path, low_first: bool = False):
    """(path of a variable-bitrate MP3 with no length header: two seconds of noise at 160 kbit/s, then
    two of a tone at 24 kbit/s (``low_first``: the tone first); what its two parts decode to on their
    own, the file's first part first)."""
    rng = np.random.default_rng(0)
    noise = (0.2 * rng.standard_normal(PART_S * SAMPLE_RATE)).astype(np.float32)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(PART_S * SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    rich, poor = _cbr_mp3(tmp_path / "rich.mp3", noise, RICH), _cbr_mp3(tmp_path / "poor.mp3", tone, POOR)
    assert rich[2] >> 4 > poor[2] >> 4  # the noise's frames have the higher bitrate
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(poor + rich if low_first else rich + poor)
    parts = read_audio(tmp_path / "rich.mp3")[0], read_audio(tmp_path / "poor.mp3")[0]
    return (joined, *(parts[::-1] if low_first else parts))


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


def test_an_mp3_shorter_than_libsndfile_estimates_is_held_to_the_limit_by_its_length(tmp_path, monkeypatch):
    """Its first frame at 24 kbit/s, libsndfile estimated 16 s of its 4.2 s, and kws's MP3 size
    limit took the estimate: a file that fits was refused as too long. Its counted frames decide now,
    and a file over the limit, or decoding past a count cut short, is still refused."""
    path, poor, rich = _joined(tmp_path, low_first=True)
    parts = len(poor) + len(rich)
    assert sf.info(str(path)).frames > LIMIT_S * SAMPLE_RATE > parts  # libsndfile's estimate is over the limit
    monkeypatch.setattr(audio, "MAX_MP3_SAMPLES", LIMIT_S * SAMPLE_RATE)
    samples, info = read_audio(path)
    assert parts - FRAME_SAMPLES - DECODER_DELAY <= len(samples) <= parts and info.num_samples == len(samples)
    np.testing.assert_allclose(samples[-TAIL:], rich[-TAIL:], atol=1e-4)  # the noise's end is there
    monkeypatch.setattr(audio, "MAX_MP3_SAMPLES", parts // 2)
    with pytest.raises(AudioError, match=f"^{path}: .*an MP3 of 0 min; kws decodes MP3 whole"):
        read_audio(path)
    monkeypatch.setattr(audio, "MAX_MP3_SAMPLES", LIMIT_S * SAMPLE_RATE // 2)
    monkeypatch.setattr(audio, "headerless_samples", lambda data: FRAME_SAMPLES)  # as if junk stopped the count
    with pytest.raises(AudioError, match="an MP3 of 0 min; kws decodes MP3 whole"):
        read_audio(path.read_bytes())
