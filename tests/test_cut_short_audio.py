"""A file cut short (a copy or recording interrupted) is used as it is by kws-predict and kws-listen
--wav, as kws-train and data-stats do, but never without a word: libsndfile reads what is there
silently. A WAV shorter than its header says, an MP3 shorter than its Xing header says, an OGG that
ends inside a page (kws.edge.truncation)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from audio_fixtures import SAMPLE_RATE, word_audio
from kws.edge.audio import cut_short_note, read_audio, write_wav
from kws.edge.errors import AudioError
from kws.edge.listen_cli import main as listen_main
from kws.evaluation.inspect_cli import data_stats_cmd, inspect_cmd
from kws.evaluation.predict_cli import main as predict_main

NOTE = "WAV cut short of its header's length (0.50 of 1.00 s), used as it is"


def cut_wav(tmp_path):
    path = tmp_path / "up.wav"
    write_wav(path, word_audio("up", np.random.default_rng(0)), SAMPLE_RATE)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - SAMPLE_RATE])  # half of the 16-bit samples gone, header unchanged
    return path


def test_kws_predict_names_a_cut_short_wav_and_still_classifies_it(converted_run, tmp_path):
    wav = cut_wav(tmp_path)
    whole = tmp_path / "whole.wav"
    write_wav(whole, word_audio("up", np.random.default_rng(0)), SAMPLE_RATE)
    res = CliRunner().invoke(predict_main, ["-m", str(converted_run), str(wav), str(whole), "--json"])
    assert res.exit_code == 0, res.output
    assert f"warning: {wav}: {NOTE}" in res.stderr
    assert str(whole) not in res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[0]["path"] == str(wav) and rows[0]["warning"] == NOTE and rows[0]["top"]
    assert "warning" not in rows[1]


def test_kws_listen_says_so_when_it_starts_on_a_cut_short_wav(converted_run, tmp_path):
    wav = cut_wav(tmp_path)
    res = CliRunner().invoke(listen_main, ["-m", str(converted_run), "--wav", str(wav)])
    assert res.exit_code == 0, res.output
    assert f"listening to {wav} (" in res.stderr and f"; {NOTE}" in res.stderr


def test_kws_inspect_warns_on_a_cut_short_wav(converted_run, tmp_path):
    wav = cut_wav(tmp_path)
    res = CliRunner().invoke(inspect_cmd, [str(wav), "-m", str(converted_run)])
    assert res.exit_code == 0, res.output
    assert "0.500 s, 16000 Hz" in res.stdout and "prediction: " in res.stdout
    assert f"warning: {wav}: {NOTE}" in res.stderr
    whole = tmp_path / "whole.wav"
    write_wav(whole, word_audio("up", np.random.default_rng(0)), SAMPLE_RATE)
    assert "warning" not in CliRunner().invoke(inspect_cmd, [str(whole)]).stderr


SECONDS = 5


def _noise(rate: int = SAMPLE_RATE, seconds: float = SECONDS) -> np.ndarray:
    """Audio a codec cannot squeeze into one page: noise."""
    return (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype(np.float32)


def _cut(path, share: float):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * share)])
    return path


def _without_first_frame(path):
    """The MP3 without its first frame, the Xing/Info frame libsndfile (LAME) writes: an MP3 as encoders
    without that header write it, whose length libsndfile estimates from the file's size."""
    data = path.read_bytes()
    assert b"Xing" in data[:64] or b"Info" in data[:64]
    nxt = next(i for i in range(4, len(data) - 1) if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0
               and data[i + 1:i + 2] == data[1:2])  # the next frame header of the same MPEG version/layer
    path.write_bytes(data[nxt:])
    return path


@pytest.mark.parametrize("fmt, suffix, share, note", [
    ("MP3", ".mp3", 0.5, r"MP3 cut short of its header's length \(2\.\d\d of 5\.00 s\), used as it is"),
    ("OGG", ".ogg", 0.5, r"OGG cut short inside an Ogg page, used as it is"),
    ("OGG", ".opus", 0.5, r"OGG cut short inside an Ogg page, used as it is")])
def test_a_cut_short_mp3_or_ogg_is_read_as_it_is_and_said(tmp_path, fmt, suffix, share, note):
    """An MP3 or OGG cut in half decoded what it held without a word, where a cut WAV is named."""
    import re

    rate = 48000 if suffix == ".opus" else SAMPLE_RATE
    path = tmp_path / f"clip{suffix}"
    sf.write(path, _noise(rate), rate, format=fmt, subtype="OPUS" if suffix == ".opus" else None)
    whole, info = read_audio(path)
    assert cut_short_note(info) is None and len(whole) == SECONDS * rate
    samples, info = read_audio(_cut(path, share))
    assert 0 < len(samples) < len(whole) and info.num_samples == len(samples)
    assert re.fullmatch(note, cut_short_note(info))


def test_an_mp3_after_an_id3_tag_is_still_said_to_be_cut(tmp_path):
    path = tmp_path / "tagged.mp3"
    sf.write(path, _noise(), SAMPLE_RATE, format="MP3")
    padding = 300  # an ID3v2.3 tag of nothing but padding; its size in 7-bit bytes
    tag = b"ID3\x03\x00\x00" + bytes([0, 0, padding >> 7, padding & 0x7F]) + bytes(padding)
    path.write_bytes(tag + path.read_bytes())
    assert read_audio(path)[1].cut_short == ""
    samples, info = read_audio(_cut(path, 0.5))
    assert info.cut_short.startswith("of its header's length (2.") and info.num_samples == len(samples)


def test_an_mp3_without_a_length_header_is_never_said_to_be_cut(tmp_path):
    """Without an Xing/Info/VBRI header libsndfile estimates an MP3's length from the file's size:
    a cut cannot show, and no warning is made up."""
    path = tmp_path / "clip.mp3"
    sf.write(path, _noise(), SAMPLE_RATE, format="MP3")
    _without_first_frame(path)
    for share in (1.0, 0.5):
        samples, info = read_audio(_cut(path, share))
        assert len(samples) > 0 and info.cut_short == ""


@pytest.mark.parametrize("share", [0.9, 0.1], ids=["in its only audio page", "in its headers"])
def test_an_ogg_cut_before_any_audio_that_decodes_says_so(tmp_path, share):
    """Half an OGG whose audio sits in one page (a short or quiet recording): libsndfile decodes no
    complete page and said 'holds no samples' (or, cut in its headers, 'file is malformed')."""
    path = tmp_path / "tone.ogg"
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    sf.write(path, tone, SAMPLE_RATE, format="OGG")
    _cut(path, share)
    for read in (read_audio, lambda p: CliRunner().invoke(inspect_cmd, [str(p)])):
        if read is read_audio:
            with pytest.raises(AudioError) as caught:
                read(path)
            line = str(caught.value)
        else:
            res = read(path)
            assert res.exit_code == 1
            line = res.output.strip().splitlines()[-1].removeprefix("Error: ")
        assert line == (f"{path}: not a readable audio file (OGG cut short inside an Ogg page, before any audio "
                        "that decodes)")


def test_data_stats_and_training_name_a_cut_short_ogg(tmp_path):
    from kws.trainer.dataset import load_clips

    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        for i in range(3):
            sf.write(tmp_path / word / f"spk{i}_nohash_0.ogg", _noise(seconds=2), SAMPLE_RATE, format="OGG")
    cut = _cut(tmp_path / "yes" / "spk0_nohash_0.ogg", 0.6)
    stats = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"]).output)
    truncated = [p for p in stats["problems"] if p["kind"] == "truncated"]
    assert truncated == [{"kind": "truncated", "path": "yes/spk0_nohash_0.ogg",
                          "detail": "OGG cut short inside an Ogg page (cut off while copied or recorded?)"}]
    paths = sorted(str(p) for p in tmp_path.rglob("*.ogg"))
    clips, report = load_clips(paths, SAMPLE_RATE, SAMPLE_RATE)
    assert len(clips) == 6 and report.truncated == [str(cut)]
    assert f"1 audio file cut short (copied or recorded only in part), used as it is (first: {cut}; " \
        in report.summary(SAMPLE_RATE)


def test_kws_predict_names_a_cut_short_mp3(converted_run, tmp_path):
    path = tmp_path / "up.mp3"
    sf.write(path, word_audio("up", np.random.default_rng(0)), SAMPLE_RATE, format="MP3")
    _cut(path, 0.5)
    res = CliRunner().invoke(predict_main, ["-m", str(converted_run), str(path), "--json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)
    assert row["warning"].startswith("MP3 cut short of its header's length (0.") and row["top"]
    assert f"warning: {path}: {row['warning']}" in res.stderr


def test_an_ogg_is_cut_short_exactly_when_it_ends_inside_a_page(tmp_path):
    """Every cut of an OGG file: inside a page is a cut; at a page's end is a whole (shorter) stream
    as far as its structure shows, as a recorder stopped between pages leaves it."""
    from kws.edge.truncation import ogg_ends_inside_page

    whole = tmp_path / "whole.ogg"
    sf.write(whole, _noise(seconds=1), SAMPLE_RATE, format="OGG")
    data = whole.read_bytes()
    ends = {i for i in range(1, len(data)) if data.startswith(b"OggS", i)} | {len(data)}
    assert len(ends) >= 3  # headers, audio, last page
    cut = tmp_path / "cut.ogg"
    for size in range(len(data) + 1):
        cut.write_bytes(data[:size])
        assert ogg_ends_inside_page(cut) == (0 < size and size not in ends), size
    (tmp_path / "other.wav").write_bytes(b"RIFF" + bytes(40))
    assert not ogg_ends_inside_page(tmp_path / "other.wav")
