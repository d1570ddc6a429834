"""Audio files as users have them (issue 13: WAV, FLAC, OGG, MP3 through one soundfile reader) and
malformed ones (issue 14 item 6): every tool reads the same formats and every broken header is the
same one-line "not a readable audio file", never a traceback."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audio_fixtures import SAMPLE_RATE, keyword_stream, make_dataset, word_audio
from kws.edge.audio import (MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, UNREADABLE, open_audio, read_audio, stream_audio,
                            write_wav)
from kws.edge.errors import AudioError

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
EDGE_BIN = REPO / ".venv-edge" / "bin"
THRESHOLD = 0.4  # the fixture model's stream scores peak near 0.5 (see test_edge.py)
FUZZ_EXAMPLES = 300


def _tone(n: int, rate: int, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / rate)).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# --- formats: written by soundfile and by sox, read back ---------------------------------------------
@pytest.mark.parametrize("fmt, subtype, suffix, rate, sample_format, lossless", [
    ("FLAC", "PCM_16", ".flac", 44100, "int16", True),
    ("FLAC", "PCM_24", ".flac", 22050, "int24", True),
    ("OGG", "VORBIS", ".ogg", 44100, "vorbis", False),
    ("OGG", "OPUS", ".opus", 48000, "opus", False),
    ("MP3", "MPEG_LAYER_III", ".mp3", 44100, "mp3", False),
])
def test_files_written_by_soundfile_read_back_with_rate_length_and_values(tmp_path, fmt, subtype, suffix, rate,
                                                                          sample_format, lossless):
    n = int(1.5 * rate)
    left, right = _tone(n, rate, 440.0, 0.5), _tone(n, rate, 440.0, 0.25)
    path = tmp_path / f"clip{suffix}"
    sf.write(path, np.stack([left, right], axis=1), rate, format=fmt, subtype=subtype)
    samples, info = read_audio(path)
    assert (info.sample_rate, info.channels, info.container, info.sample_format) == (rate, 2, fmt, sample_format)
    assert info.num_samples == len(samples) == n
    mono = (left + right) / 2
    if lossless:
        assert np.max(np.abs(samples - mono)) < 2.0 / 32768
    else:
        assert _rms(samples) == pytest.approx(_rms(mono), rel=0.05)
    # at the model's rate, block by block: the same length as the whole-file resampling
    streamed = np.concatenate(list(stream_audio(path, SAMPLE_RATE, block_frames=4000)))
    assert abs(len(streamed) - round(n * SAMPLE_RATE / rate)) <= 1


@pytest.mark.parametrize("fmt, subtype, suffix", [("FLAC", "PCM_16", ".flac"), ("OGG", "VORBIS", ".ogg"),
                                                   ("OGG", "OPUS", ".opus"), ("MP3", "MPEG_LAYER_III", ".mp3")])
def test_reading_in_blocks_or_windows_gives_the_samples_of_one_whole_read(tmp_path, fmt, subtype, suffix):
    """libsndfile decodes an MP3 right only in one read (later reads, or reads after a seek, return
    other samples and print 'part2_3_length too large'): kws-listen --wav and every windowed read must
    still get the file's real samples."""
    rate = 48000 if subtype == "OPUS" else 16000
    audio = _tone(5 * rate, rate, 440.0, 0.3)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, audio, rate, format=fmt, subtype=subtype)
    whole, _ = sf.read(path, dtype="float32")
    with open_audio(path) as reader:
        blocks = np.concatenate(list(reader.blocks(640)))
        window = reader.read_frames(2 * rate + 123, 4000)
    assert len(blocks) == len(whole) and np.max(np.abs(blocks - whole)) < 1e-3
    assert np.max(np.abs(window - whole[2 * rate + 123:2 * rate + 4123])) < 1e-3


@pytest.mark.parametrize("suffix, rate, channels", [(".flac", 22050, 1), (".ogg", 16000, 2), (".wav", 8000, 1)])
def test_files_written_by_sox_read_back(tmp_path, suffix, rate, channels):
    path = tmp_path / f"sox{suffix}"
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", str(channels), str(path), "synth", "1.25", "sine", "440"],
                   check=True, timeout=60)
    samples, info = read_audio(path)
    assert info.sample_rate == rate and info.channels == channels
    assert len(samples) == info.num_samples == round(1.25 * rate)
    soxi = subprocess.run(["soxi", "-s", str(path)], capture_output=True, text=True, check=True, timeout=60)
    assert int(soxi.stdout) == len(samples)
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * rate / len(samples) == pytest.approx(440.0, abs=1.0)  # sox's 440 Hz sine
    assert _rms(samples) == pytest.approx(np.max(np.abs(samples)) / np.sqrt(2), rel=0.03)


def test_kws_predict_reads_flac_ogg_and_mp3_clips_and_folders(converted_run, tmp_path):
    from kws.evaluation.predict_cli import main as predict_main

    rng = np.random.default_rng(21)
    clips = _mkdir(tmp_path / "clips")
    for word, fmt, suffix in (("up", "FLAC", ".flac"), ("down", "OGG", ".ogg"), ("beep", "MP3", ".mp3")):
        sf.write(clips / f"{word}{suffix}", word_audio(word, rng, 44100), 44100, format=fmt)
    (clips / "notes.txt").write_text("not audio, not picked up")
    res = CliRunner().invoke(predict_main, ["-m", str(converted_run), str(tmp_path / "clips"), "--json"])
    assert res.exit_code == 0, res.output
    rows = {Path(r["path"]).name: r["label"] for r in map(json.loads, res.output.splitlines())}
    assert rows == {"beep.mp3": "beep", "down.ogg": "down", "up.flac": "up"}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_kws_listen_streams_a_flac_in_the_edge_environment(converted_run, tmp_path):
    """soundfile in .venv-edge (numpy<2, tflite-runtime 2.14, no TensorFlow) reads a 44.1 kHz FLAC."""
    if not (EDGE_BIN / "kws-listen").exists():
        pytest.skip(f"{EDGE_BIN} missing: `make test` creates it (make edge-venv)")
    from kws.edge.audio import resample

    audio, truth = keyword_stream(("down", "up"), np.random.default_rng(11))
    flac = tmp_path / "stream.flac"
    sf.write(flac, resample(audio, SAMPLE_RATE, 44100), 44100, format="FLAC")
    proc = subprocess.run([str(EDGE_BIN / "kws-listen"), "-m", str(converted_run), "--wav", str(flac), "--json",
                           "--threshold", str(THRESHOLD)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "FLAC, 44100 Hz, 1 ch, int16" in proc.stderr and "tflite-runtime 2.14.0" in proc.stderr
    labels = [json.loads(line)["label"] for line in proc.stdout.splitlines()]
    assert [lab for i, lab in enumerate(labels) if i == 0 or lab != labels[i - 1]] == ["down", "up"]


def test_a_named_pipe_is_read_like_a_file(converted_run, tmp_path):
    """A FIFO carrying a WAV is audio, not 'no such file' (kws-listen --wav and kws-predict)."""
    rng = np.random.default_rng(4)
    wav = tmp_path / "beep.wav"
    silence = np.zeros(SAMPLE_RATE // 2, np.float32)
    write_wav(wav, np.concatenate([silence, word_audio("beep", rng), silence, silence]), SAMPLE_RATE)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write(wav.read_bytes())

    for cmd in (["kws-predict", "-m", str(converted_run), str(fifo), "--json"],
                ["kws-listen", "-m", str(converted_run), "--wav", str(fifo), "--json", "--threshold", "0.3"]):
        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        proc = subprocess.run([str(VENV_BIN / cmd[0]), *cmd[1:]], capture_output=True, text=True, timeout=120)
        writer.join(30)
        assert proc.returncode == 0, proc.stderr
        assert '"label": "beep"' in proc.stdout and "no such file" not in proc.stderr
    assert "2.5 s of audio" in proc.stderr  # kws-listen's summary: the whole WAV came through the pipe


@pytest.mark.slow
def test_a_flac_dataset_trains(tmp_path):
    from kws.trainer.config import load_config, with_data
    from kws.trainer.train import train

    wav_root = make_dataset(tmp_path / "wav", per_word=12, unknown=8, seed=5)
    flac_root = tmp_path / "flac"
    for wav in wav_root.rglob("*.wav"):
        samples, _ = read_audio(wav)
        target = _mkdir(flac_root / wav.parent.name) / (wav.stem + ".flac")
        sf.write(target, samples, SAMPLE_RATE, format="FLAC")
    cfg = with_data(load_config(None, ("train.epochs=1", "train.batch_size=16")), str(flac_root), ("up", "down"))
    out = tmp_path / "run"
    train(cfg, out=out, quiet=True)
    split = json.loads((out / "split.json").read_text())
    files = [p for items in split["splits"].values() for p, *_ in items if p]
    assert files and all(p.endswith(".flac") for p in files)
    assert len([p for p in files if p.startswith(("up/", "down/"))]) == 24
    assert (out / "model.keras").is_file()
    assert not (out / "skipped_files.txt").exists() or ".flac" not in (out / "skipped_files.txt").read_text()


# --- malformed headers: one line everywhere -----------------------------------------------------------
def _good_wav(channels: int = 1, n: int = 1600) -> bytes:
    import io

    buf = io.BytesIO()
    data = np.stack([_tone(n, SAMPLE_RATE)] * channels, axis=1) if channels > 1 else _tone(n, SAMPLE_RATE)
    sf.write(buf, data, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _patched(offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(_good_wav())
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


# the canonical 44-byte header: channels at 22, rate at 24, block align at 32, bits at 34, data size at 40
MALFORMED = {
    "cut4": _good_wav()[:4], "cut16": _good_wav()[:16], "cut20": _good_wav()[:20], "cut24": _good_wav()[:24],
    "cut40": _good_wav()[:40], "header_only": _good_wav()[:44], "channels0": _patched(22, "<H", 0),
    "channels65535": _patched(22, "<H", 65535),
    "bits0": _patched(34, "<H", 0), "rate0": _patched(24, "<I", 0), "rate1": _patched(24, "<I", 1),
    "rate100": _patched(24, "<I", 100), "rate_huge": _patched(24, "<I", 0xFFFFFFFF), "empty": b"",
    "text": b"this is not audio at all\n" * 4,
}


@pytest.fixture
def malformed(tmp_path) -> dict[str, Path]:
    out = {}
    for name, data in MALFORMED.items():
        out[name] = tmp_path / "bad" / f"{name}.wav"
        out[name].parent.mkdir(exist_ok=True)
        out[name].write_bytes(data)
    return out


def test_block_size_zero_is_read_from_the_sample_width(tmp_path):
    path = tmp_path / "block0.wav"
    path.write_bytes(_patched(32, "<H", 0))
    samples, info = read_audio(path)
    assert info.sample_rate == SAMPLE_RATE and len(samples) == 1600
    assert np.max(np.abs(samples - _tone(1600, SAMPLE_RATE))) < 1.0 / 32768


def test_every_malformed_header_is_one_audio_error(malformed):
    for name, path in malformed.items():
        with pytest.raises(AudioError) as err:
            read_audio(path)
        message = str(err.value)
        assert message.startswith(f"{path}: {UNREADABLE} (") and "\n" not in message, (name, message)
    assert f"declares 1 Hz; expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz" in _error(malformed["rate1"])
    assert "declares 100 Hz" in _error(malformed["rate100"])
    assert "declares 4294967295 Hz" in _error(malformed["rate_huge"])  # libsndfile alone: "SF_INFO struct incomplete"


def _error(path: Path) -> str:
    with pytest.raises(AudioError) as err:
        read_audio(path)
    return str(err.value)


def test_kws_predict_lists_malformed_files_and_classifies_the_rest(converted_run, malformed, tmp_path):
    from kws.evaluation.predict_cli import main as predict_main

    good = tmp_path / "good" / "up.wav"
    write_wav(good, word_audio("up", np.random.default_rng(8)), SAMPLE_RATE)
    res = CliRunner().invoke(predict_main, ["-m", str(converted_run), "--json", *map(str, malformed.values()),
                                            str(good)])
    assert res.exit_code == 1
    assert [json.loads(line)["label"] for line in res.stdout.splitlines()] == ["up"]
    errors = res.stderr.splitlines()
    for path in malformed.values():
        assert sum(line.startswith(f"error: {path}: {UNREADABLE} (") for line in errors) == 1, res.stderr
    assert f"{len(malformed)} input(s) failed" in res.stderr


def test_kws_inspect_says_one_line_for_each_malformed_file(malformed):
    from kws.evaluation.inspect_cli import inspect_cmd

    for path in malformed.values():
        res = CliRunner().invoke(inspect_cmd, [str(path)])
        assert res.exit_code == 1 and res.output.strip().count("\n") == 0
        assert res.output.startswith(f"Error: {path}: {UNREADABLE} ("), res.output


@pytest.mark.parametrize("name", ["cut24", "channels0", "rate1"])
def test_kws_listen_says_one_line_for_a_malformed_file(converted_run, malformed, name):
    proc = subprocess.run([str(VENV_BIN / "kws-listen"), "-m", str(converted_run), "--wav", str(malformed[name])],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and f"{malformed[name]}: {UNREADABLE} (" in proc.stderr


def test_training_lists_and_skips_malformed_files(malformed, tmp_path):
    from kws.trainer import dataset as ds

    good = tmp_path / "good.flac"
    sf.write(good, word_audio("up", np.random.default_rng(2)), SAMPLE_RATE, format="FLAC")
    paths = [str(p) for p in malformed.values()] + [str(good)]
    clips, report = ds.load_clips(paths, SAMPLE_RATE, SAMPLE_RATE, workers=2)
    assert list(clips) == [str(good)] and clips[str(good)].shape == (SAMPLE_RATE,)
    assert sorted(p for p, _ in report.skipped) == sorted(str(p) for p in malformed.values())
    assert all(why.startswith(UNREADABLE) for _, why in report.skipped), report.skipped
    assert f"skipped {len(malformed)} unreadable" in report.summary(SAMPLE_RATE)


def test_kws_serve_answers_400_for_malformed_and_absurd_uploads(trained_run):
    pytest.importorskip("keras")
    from test_serving_helpers import request

    from kws.serving.predictor import Predictor
    from kws.serving.web import make_server

    httpd = make_server(Predictor(trained_run), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/api/predict?name=up.wav"
        for name in ("cut20", "channels65535", "bits0", "rate0", "rate100"):
            status, out = request(url, MALFORMED[name], {"Content-Type": "audio/wav"})
            assert status == 400, (name, out)
            assert UNREADABLE in json.dumps(out) and "up.wav" in json.dumps(out), (name, out)
        flac = tmp_flac_bytes(word_audio("up", np.random.default_rng(9)))
        status, out = request(url, flac, {"Content-Type": "audio/flac"})
        assert status == 200 and out["labels"][0]["label"] == "up", out
    finally:
        httpd.shutdown()
        httpd.server_close()


def tmp_flac_bytes(samples: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, samples, SAMPLE_RATE, format="FLAC")
    return buf.getvalue()


# --- property-based: random truncations and header fields ---------------------------------------------
BASE_WAV = _good_wav(channels=2, n=800)


def _check_reader(data: bytes, max_samples: int | None = None) -> None:
    """Reading ``data`` either gives finite float32 audio at a sane rate (at most ``max_samples``) or
    raises AudioError."""
    try:
        with open_audio(data, name="fuzz.wav") as reader:
            assert MIN_SAMPLE_RATE <= reader.info.sample_rate <= MAX_SAMPLE_RATE
            total = 0
            for block in reader.blocks(256):
                assert block.dtype == np.float32 and block.ndim == 1 and np.all(np.isfinite(block))
                total += len(block)
            assert max_samples is None or total <= max_samples
    except AudioError as exc:
        assert str(exc).startswith("fuzz.wav: ") and "\n" not in str(exc)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(BASE_WAV)),
       patches=st.lists(st.tuples(st.integers(0, 47), st.sampled_from(["<B", "<H", "<I"]), st.integers(0, 2 ** 32 - 1)),
                        max_size=4))
def test_fuzz_wav_header_fields_and_truncations(cut, patches):
    data = bytearray(BASE_WAV)
    for offset, fmt, value in patches:
        struct.pack_into(fmt, data, offset, value % (1 << (8 * struct.calcsize(fmt))))
    _check_reader(bytes(data[:cut]), max_samples=len(data))  # PCM: never more samples than bytes


BASE_FLAC = tmp_flac_bytes(_tone(800, SAMPLE_RATE))


@settings(max_examples=FUZZ_EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(0, len(BASE_FLAC)), offset=st.integers(0, 63), value=st.integers(0, 255))
def test_fuzz_flac_truncations_and_header_bytes(cut, offset, value):
    data = bytearray(BASE_FLAC)
    data[offset] = value
    _check_reader(bytes(data[:cut]))


def test_a_missing_soundfile_is_a_one_line_error_with_the_install_line(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_soundfile(name, *args, **kwargs):
        if name == "soundfile":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    path, plain = tmp_path / "a.wav", tmp_path / "plain.wav"
    sf.write(path, _tone(1600, SAMPLE_RATE), SAMPLE_RATE, format="WAV", subtype="PCM_24")
    write_wav(plain, _tone(1600, SAMPLE_RATE), SAMPLE_RATE)
    monkeypatch.setattr(builtins, "__import__", no_soundfile)
    with pytest.raises(AudioError, match=r"soundfile is not installed .*: pip install soundfile$"):
        read_audio(path)
    assert len(read_audio(plain)[0]) == 1600  # 16-bit PCM WAV needs no libsndfile


def test_float_samples_far_beyond_full_scale_are_one_error_not_nan_scores(tmp_path):
    """A float file may exceed 1.0 a little (and is read as it is); one at 1e18 made the features
    overflow into NaN scores and invalid JSON."""
    from kws.edge.audio import MAX_SAMPLE_MAGNITUDE

    tone = _tone(SAMPLE_RATE, SAMPLE_RATE)
    loud = tmp_path / "loud.wav"
    sf.write(loud, tone * 4.0, SAMPLE_RATE, subtype="FLOAT")  # peak 2.0: 6 dB over full scale
    samples, _ = read_audio(loud)
    assert 1.9 < np.max(np.abs(samples)) <= 2.0
    for gain in (MAX_SAMPLE_MAGNITUDE * 10, 1e18):
        absurd = tmp_path / f"absurd{gain:g}.wav"
        sf.write(absurd, tone * gain, SAMPLE_RATE, subtype="FLOAT")
        message = _error(absurd)
        assert message.startswith(f"{absurd}: {UNREADABLE} (holds samples up to ") and "far beyond full scale" in message
        with open_audio(absurd) as reader:  # a window read says the same
            with pytest.raises(AudioError, match="far beyond full scale"):
                reader.read_frames(0, 1000)


def test_a_recording_longer_than_the_caller_allows_stops_at_the_limit(tmp_path):
    from kws.edge.errors import AudioTooLongError

    path = tmp_path / "ten_s.flac"
    sf.write(path, _tone(10 * SAMPLE_RATE, SAMPLE_RATE), SAMPLE_RATE, format="FLAC")
    assert len(read_audio(path, max_seconds=10)[0]) == 10 * SAMPLE_RATE
    with pytest.raises(AudioTooLongError, match=r"ten_s.flac: longer than the 9.5 s allowed here"):
        read_audio(path, max_seconds=9.5)


def test_an_odd_sample_rate_is_resampled_at_the_nearest_ratio_with_small_factors():
    """A WAV declaring 383999 Hz shares no factor with 16 kHz: the exact ratio designed a filter of
    7.7 million taps (856 MB); the nearest ratio within MAX_RATE_FACTOR is 3 ppm off."""
    from kws.edge.audio import resample
    from kws.edge.resample import MAX_RATE_FACTOR, StreamResampler, rate_factors

    for rate, exact in ((8000, (2, 1)), (11025, (640, 441)), (44100, (160, 441)), (48000, (1, 3)),
                        (192000, (1, 12)), (16000, (1, 1))):
        assert rate_factors(rate, 16000) == exact
        assert rate_factors(16000, rate) == exact[::-1]
    for rate in (383999, 44101, 1009, 191999):
        up, down = rate_factors(rate, 16000)
        assert max(up, down) <= MAX_RATE_FACTOR and abs((up / down) / (16000 / rate) - 1) < 1e-4, rate
        assert StreamResampler(rate, 16000)._phases.size < 50_000  # taps; the exact ratio: millions
    x = np.sin(2 * np.pi * 440 * np.arange(383999) / 383999).astype(np.float32)
    y = resample(x, 383999, 16000)
    assert abs(len(y) - 16000) <= 1
    assert np.max(np.abs(y[100:-100] - np.sin(2 * np.pi * 440 * np.arange(len(y))[100:-100] / 16000))) < 0.01
