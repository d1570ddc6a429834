"""A damaged MP3 (or a cut-short FLAC or OGG) is kws's one line naming the file, without libmpg123's
own "Note: Illegal Audio-MPEG-Header ..." lines around it, and the quieting of C's stderr that does
it ends with the decoding and leaves Python's stderr, other threads and child processes alone."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import SAMPLE_RATE, damaged_audio, word_audio
from kws.edge.audio import UNREADABLE, read_audio
from kws.edge.errors import AudioError
from kws.edge.native_stderr import native_stderr_silenced

VENV_BIN = Path(sys.executable).parent
LIBMPG123_NOTE = "Illegal Audio-MPEG-Header"
on_glibc = pytest.mark.skipif(not (getattr(os, "confstr", lambda name: None)("CS_GNU_LIBC_VERSION") or "")
                              .startswith("glibc"), reason="C's stderr is quieted on glibc only")


@pytest.fixture
def damaged(tmp_path) -> dict[str, Path]:
    return damaged_audio(tmp_path / "damaged")


def _decode_directly(path: Path) -> None:
    """libsndfile without kws around it: libmpg123 prints its notes on C's stderr."""
    with pytest.raises(RuntimeError):
        sf.SoundFile(io.BytesIO(path.read_bytes()))


@on_glibc
def test_reading_damaged_files_prints_nothing_and_c_stderr_comes_back(damaged, capfd):
    _decode_directly(damaged["mp3_junk"])
    assert LIBMPG123_NOTE in capfd.readouterr().err  # what users saw around kws's own line
    for name in ("mp3_junk", "flac_cut", "ogg_cut"):
        with pytest.raises(AudioError) as err:
            read_audio(damaged[name])
        assert str(err.value).startswith(f"{damaged[name]}: {UNREADABLE} (")
    samples, info = read_audio(damaged["mp3_cut"])  # half an MP3 is the audio it holds, without a warning
    assert info.container == "MP3" and 0.5 * SAMPLE_RATE < len(samples) < 1.5 * SAMPLE_RATE
    assert capfd.readouterr().err == ""
    _decode_directly(damaged["mp3_junk"])  # C's stderr is the terminal's again
    assert LIBMPG123_NOTE in capfd.readouterr().err


@on_glibc
def test_training_data_read_by_threads_lists_the_damaged_files_quietly(damaged, tmp_path, capfd):
    from kws.trainer import dataset as ds

    good = tmp_path / "good.mp3"
    sf.write(good, word_audio("up", np.random.default_rng(1)), SAMPLE_RATE, format="MP3")
    bad = [str(damaged[name]) for name in ("mp3_junk", "flac_cut", "ogg_cut")] * 4
    clips, report = ds.load_clips(bad + [str(good)] * 4, SAMPLE_RATE, SAMPLE_RATE, workers=4)
    assert list(clips) == [str(good)]
    assert sorted({p for p, _ in report.skipped}) == sorted(set(bad))
    assert capfd.readouterr().err == ""
    _decode_directly(damaged["mp3_junk"])
    assert LIBMPG123_NOTE in capfd.readouterr().err


@on_glibc
def test_only_c_stderr_is_quiet_and_only_until_the_last_thread_leaves(damaged, capfd):
    """fd 2 stays as it is: Python's writes and a child's stderr come through while a decoding
    thread is quiet; C's stderr is quiet while any thread is inside, and back after an exception."""
    inside, release, left = threading.Event(), threading.Event(), threading.Event()

    def other_decoder():
        with native_stderr_silenced():
            inside.set()
            release.wait()
        left.set()

    thread = threading.Thread(target=other_decoder)
    thread.start()
    inside.wait()
    with pytest.raises(ValueError):
        with native_stderr_silenced():
            print("python line", file=sys.stderr, flush=True)
            subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child line\\n')"], check=True)
            raise ValueError
    _decode_directly(damaged["mp3_junk"])  # the other thread is still inside
    err = capfd.readouterr().err
    assert "python line" in err and "child line" in err and LIBMPG123_NOTE not in err
    release.set()
    left.wait()
    thread.join()
    _decode_directly(damaged["mp3_junk"])
    assert LIBMPG123_NOTE in capfd.readouterr().err


@on_glibc
@pytest.mark.parametrize("name", ["mp3_junk", "flac_cut", "ogg_cut"])
def test_kws_inspect_says_one_line_for_a_damaged_file(damaged, name):
    proc = subprocess.run([str(VENV_BIN / "kws"), "inspect", str(damaged[name])], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Error: {damaged[name]}: {UNREADABLE} (") and proc.stderr.count("\n") == 1, \
        proc.stderr


@on_glibc
def test_kws_predict_and_kws_listen_say_only_their_own_lines_for_damaged_files(converted_run, damaged):
    files = [str(damaged[name]) for name in ("mp3_junk", "flac_cut", "ogg_cut")]
    predict = subprocess.run([str(VENV_BIN / "kws-predict"), "-m", str(converted_run), *files], capture_output=True,
                             text=True, timeout=120)
    assert predict.returncode == 1
    assert predict.stderr.splitlines() == [f"error: {f}: {UNREADABLE} ({why})" for f, why in
                                           zip(files, ("damaged data or an unknown format", "flac decoder lost sync",
                                                       "OGG cut short inside an Ogg page, before any audio "
                                                       "that decodes"))] + ["3 input(s) failed"]
    listen = subprocess.run([str(VENV_BIN / "kws-listen"), "-m", str(converted_run), "--wav", files[0]],
                            capture_output=True, text=True, timeout=120)
    assert listen.returncode == 1
    assert listen.stderr == f"Error: {files[0]}: {UNREADABLE} (damaged data or an unknown format)\n"
