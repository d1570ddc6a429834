"""Real negatives for training (data.negatives): indexing by header, seeded windows read after a
seek (never the whole file), one-line errors, kws-train --negatives end to end, and the negatives.txt
a dataset folder (kws-synth --negatives-dir) lists."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audio_fixtures import SAMPLE_RATE, other_audio
from kws.edge.audio import read_audio, to_int16, write_wav
from kws.trainer.config import ConfigError, load_config
from kws.trainer.dataset import DataError
from kws.trainer.negatives import (EPOCH_KEY, LISTED_NEGATIVES, epoch_windows, index_negatives, listed_negatives,
                                   read_window, talk_pool, windows_per_epoch, write_listed_negatives)

CLIP = SAMPLE_RATE  # 1 s windows


def _long_recording(seconds: float, seed: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Noise bursts ('other words') one after another, as long as asked."""
    rng = np.random.default_rng(seed)
    parts = [other_audio(rng, rate) for _ in range(int(np.ceil(seconds)))]
    return np.concatenate(parts)[:int(seconds * rate)]


@pytest.fixture(scope="module")
def negatives_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("negatives")
    write_wav(root / "talk.wav", _long_recording(40.0, 1), SAMPLE_RATE)
    (root / "sub").mkdir()
    soundfile.write(root / "sub" / "tv.flac", _long_recording(20.0, 2, 44100), 44100)
    (root / "notes.txt").write_text("not audio")
    return root


def test_index_reads_headers_and_durations(negatives_dir):
    neg = index_negatives([negatives_dir])
    by_name = {f.path.rsplit("/", 1)[-1]: f for f in neg.files}
    assert set(by_name) == {"talk.wav", "tv.flac"}  # recursive, audio suffixes only
    assert by_name["talk.wav"].frames == 40 * SAMPLE_RATE and by_name["talk.wav"].sample_rate == SAMPLE_RATE
    assert by_name["tv.flac"].frames == 20 * 44100 and by_name["tv.flac"].duration_s == pytest.approx(20.0)
    assert neg.seconds == pytest.approx(60.0)


def test_windows_are_seeded_and_exact(negatives_dir):
    neg = index_negatives([negatives_dir])
    a = epoch_windows(neg, 12, CLIP, SAMPLE_RATE, [5, 0])
    b = epoch_windows(neg, 12, CLIP, SAMPLE_RATE, [5, 0])
    c = epoch_windows(neg, 12, CLIP, SAMPLE_RATE, [5, 1])
    assert list(a) == [f"{EPOCH_KEY}{k}" for k in range(12)]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    assert all(v.dtype == np.int16 and v.shape == (CLIP,) for v in a.values())
    # a window of a file at the model rate is exactly those samples of the file
    whole, _ = read_audio(negatives_dir / "talk.wav")
    window = read_window(str(negatives_dir / "talk.wav"), 12.5, CLIP, SAMPLE_RATE)
    start = int(12.5 * SAMPLE_RATE)
    assert np.array_equal(to_int16(window), to_int16(whole[start:start + CLIP]))
    # the end of a file is zero-padded to a whole clip; a 44.1 kHz file is resampled to the clip length
    tail = read_window(str(negatives_dir / "talk.wav"), 39.5, CLIP, SAMPLE_RATE)
    assert tail.shape == (CLIP,) and not tail[CLIP // 2 + 10:].any() and tail[:CLIP // 2 - 10].any()
    tv = read_window(str(negatives_dir / "sub" / "tv.flac"), 3.0, CLIP, SAMPLE_RATE)
    assert tv.shape == (CLIP,) and 0.01 < float(np.sqrt(np.mean(tv ** 2))) < 1.0
    assert windows_per_epoch(120, 50.0) == 60 and windows_per_epoch(7, 10.0) == 1


@pytest.mark.parametrize("suffix", ["wav", "flac"])  # the plain-WAV reader and libsndfile
def test_long_files_are_never_read_whole(tmp_path, monkeypatch, suffix):
    from kws.edge.pcmwav import CanonicalWav

    path = tmp_path / f"ten_minutes.{suffix}"
    ramp = (np.arange(600 * SAMPLE_RATE) % 1000 / 1000.0 * 0.5).astype(np.float32)
    soundfile.write(path, ramp, SAMPLE_RATE, subtype="PCM_16")
    neg = index_negatives([path])
    requested = []

    def counting(cls):
        real_read = cls.read

        def read(self, frames=-1, *args, **kwargs):
            requested.append(frames)
            return real_read(self, frames, *args, **kwargs)
        monkeypatch.setattr(cls, "read", read)

    counting(soundfile.SoundFile)
    counting(CanonicalWav)
    windows = epoch_windows(neg, 20, CLIP, SAMPLE_RATE, [1, 0])
    assert len(windows) == 20 and len(requested) == 20
    assert max(requested) == CLIP and -1 not in requested  # one clip per read, never "the rest"
    # and each window holds the file's samples at its start (the ramp's phase)
    start = 123.4
    window = read_window(str(path), start, CLIP, SAMPLE_RATE)
    first = int(round(start * SAMPLE_RATE))
    assert np.allclose(window, ramp[first:first + CLIP], atol=1 / 32768)


def test_talk_pool_is_seeded_float_windows_without_silent_ones(negatives_dir, tmp_path):
    """The talk mixed under words (augment.talk_background_share): float windows of the asked length
    read from the negatives, the same for the same seed, other windows for another epoch; a stretch
    of digital silence is left out (it would add nothing at any SNR)."""
    negs = index_negatives([negatives_dir])
    pool = talk_pool(negs, 2 * CLIP, SAMPLE_RATE, [1, 0], n=20)
    assert len(pool) == 20 and all(w.dtype == np.float32 and w.shape == (2 * CLIP,) for w in pool)
    again = talk_pool(negs, 2 * CLIP, SAMPLE_RATE, [1, 0], n=20)
    assert all(np.array_equal(a, b) for a, b in zip(pool, again))
    other = talk_pool(negs, 2 * CLIP, SAMPLE_RATE, [1, 1], n=20)
    assert not all(np.array_equal(a, b) for a, b in zip(pool, other))
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    audio = _long_recording(10.0, 3)
    audio[:int(5.5 * SAMPLE_RATE)] = 0.0  # the first 5.5 s are digital silence
    write_wav(quiet / "half_silent.wav", audio, SAMPLE_RATE)
    kept = talk_pool(index_negatives([quiet]), CLIP // 2, SAMPLE_RATE, [2], n=200)
    # windows starting in the first 5 s are silent: about half of the draws are dropped
    assert 70 <= len(kept) <= 130 and all(np.max(np.abs(w)) > 0.01 for w in kept)
    silent = tmp_path / "silent"
    silent.mkdir()
    write_wav(silent / "zeros.wav", np.zeros(5 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    with pytest.raises(DataError, match=r"all 10 windows drawn from the negatives \(1 files, 0.00 h\) are digital silence"):
        talk_pool(index_negatives([silent]), CLIP, SAMPLE_RATE, [3], n=10)


def test_negatives_folders_pass_by_hidden_files_and_macosx_as_the_dataset_does(tmp_path):
    """kws-train and kws-mine --negatives read audio in hidden folders (.Trashes/) and __MACOSX/,
    which the dataset reader and every other tool pass by; a hidden file named as a source is read."""
    root = tmp_path / "neg"
    for rel in ("talk.wav", ".Trashes/old.wav", "__MACOSX/talk.wav", "sub/.tmp.wav"):
        write_wav(root / rel, np.random.default_rng(3).normal(0, 0.1, SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    neg = index_negatives([root, root / ".Trashes" / "old.wav"])
    assert [Path(f.path).relative_to(root).as_posix() for f in neg.files] == ["talk.wav", ".Trashes/old.wav"]
    with pytest.raises(DataError, match=r"no audio files \(.*; hidden files and folders and __MACOSX/ are not read\)"):
        index_negatives([root / "sub"])  # only a hidden file in it


def test_bad_negatives_are_one_line_errors_naming_the_file(tmp_path):
    bad = tmp_path / "neg" / "broken.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(DataError) as err:
        index_negatives([bad.parent])
    assert str(bad) in str(err.value) and "\n" not in str(err.value) and "not a readable audio file" in str(err.value)
    with pytest.raises(DataError, match="negatives folder not found"):
        index_negatives([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        index_negatives([tmp_path / "empty"])


def test_negative_config_keys_are_validated():
    cfg = load_config(None, ["data.negatives=a,b", "data.negatives_percentage=25", "data.negatives_label=_silence_"])
    assert cfg.data.negatives == ("a", "b") and cfg.data.negatives_percentage == 25.0
    with pytest.raises(ConfigError, match="negatives_label must be one of _unknown_, _silence_"):
        load_config(None, ["data.negatives_label=yes"])


def test_kws_train_with_negatives(tiny_dataset, negatives_dir, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "kws.trainer.cli", "--data", str(tiny_dataset), "--words", "up,down,beep",
           "--negatives", str(negatives_dir), "--out", str(out), "--set", "train.epochs=2",
           "--set", "train.batch_size=16", "--set", "data.negatives_percentage=25"]
    res = subprocess.run(cmd + ["--set", "augment.talk_background_share=0.5"], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    n_train_keywords = sum(1 for _, label, _ in json.loads((out / "split.json").read_text())["splits"]["training"]
                           if label in ("up", "down", "beep"))
    expected = windows_per_epoch(n_train_keywords, 25.0)
    assert f"negatives: 2 files, 0.02 h from {negatives_dir}; {expected} windows per epoch as _unknown_" in res.stderr
    split = json.loads((out / "split.json").read_text())
    assert not any("negatives" in str(e[0]) for s in split["splits"].values() for e in s)  # val/test untouched
    cfg = load_config(out / "config.yaml")
    assert cfg.data.negatives == (str(negatives_dir),) and cfg.augment.talk_background_share == 0.5
    bad = subprocess.run(cmd[:-6] + ["--out", str(tmp_path / "run2"), "--negatives", str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "negatives folder not found" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and not (tmp_path / "run2").exists()  # one line, no folder left
    # talk under the words needs negatives to draw it from: one line naming the key, no folder
    no_talk = [c for c in cmd[:-6] if c not in ("--negatives", str(negatives_dir))]
    bad = subprocess.run(no_talk + ["--out", str(tmp_path / "run3"), "--set", "augment.talk_background_share=0.5"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "augment.talk_background_share is 0.5 but there are no data.negatives" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and not (tmp_path / "run3").exists()


def test_a_dataset_folder_lists_its_negatives(tmp_path, negatives_dir):
    (tmp_path / "rel").mkdir()
    assert listed_negatives(tmp_path) == ()
    write_listed_negatives(tmp_path, [negatives_dir])
    assert listed_negatives(tmp_path) == (str(negatives_dir.resolve()),)
    (tmp_path / LISTED_NEGATIVES).write_text(f"# recorded by hand\n\n{negatives_dir}\nrel\n")
    assert listed_negatives(tmp_path) == (str(negatives_dir), str(tmp_path / "rel"))
    (tmp_path / LISTED_NEGATIVES).write_text(f"{negatives_dir}\ngone\n")
    with pytest.raises(DataError, match=r"negatives.txt:2: negatives source gone not found"):
        listed_negatives(tmp_path)


def test_kws_train_uses_the_negatives_a_dataset_lists(tiny_dataset, negatives_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    write_listed_negatives(data, [negatives_dir])
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "kws.trainer.cli", "--data", str(data), "--words", "up,down,beep",
                          "--out", str(out), "--set", "train.epochs=1", "--set", "train.batch_size=16", "-q"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert load_config(out / "config.yaml").data.negatives == (str(negatives_dir.resolve()),)
    (data / LISTED_NEGATIVES).write_text("nope\n")
    bad = subprocess.run([sys.executable, "-m", "kws.trainer.cli", "--data", str(data), "--words", "up,down,beep",
                          "--out", str(tmp_path / "run2"), "-q"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and f"{data / LISTED_NEGATIVES}:1: negatives source nope not found" in bad.stderr
    assert not (tmp_path / "run2").exists()
