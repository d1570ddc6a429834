"""kws-synth: layout, clip format, split by voice, determinism, resume, errors."""
import csv
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from kws.synth.vocabulary import close_words

SYNTH = [sys.executable, "-m", "kws.synth.cli"]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (make test installs it)")


def _run(*args, env=None):
    return subprocess.run(SYNTH + [str(a) for a in args], capture_output=True, text=True, timeout=300, env=env)


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "yesno"
    res = _run("--words", "yes,no", "--per-word", 30, "--negatives", 20, "--seed", 5, "--out", out, "-q")
    assert res.returncode == 0, res.stderr
    return out, res.stdout


@needs_espeak
def test_layout_format_and_metadata(small_set):
    out, summary = small_set
    assert {p.name for p in out.iterdir()} >= {"yes", "no", "_unknown_", "_background_noise_", "synth_meta.csv",
                                                "validation_list.txt", "testing_list.txt"}
    assert len(list((out / "yes").glob("*.wav"))) == 30 and len(list((out / "_unknown_").glob("*.wav"))) == 20
    for wav in list((out / "yes").glob("*.wav"))[:10]:
        rate, data = wavfile.read(wav)
        assert rate == 16000 and data.dtype == np.int16 and data.shape == (16000,)
        rms_db = 20 * np.log10(np.sqrt(np.mean((data[np.abs(data) > 3] / 32768.0) ** 2)))
        assert -40 < rms_db < -10 and np.max(np.abs(data)) < 32767  # normalised, not clipped
    rows = list(csv.DictReader((out / "synth_meta.csv").open()))
    assert len(rows) == 80
    assert set(rows[0]) == {"path", "label", "text", "engine", "voice", "rate", "pitch", "speed",
                            "reverb_rt60_s", "noise", "snr_db", "split"}
    assert all((out / r["path"]).is_file() for r in rows)
    unknown_texts = {r["text"] for r in rows if r["label"] == "_unknown_"}
    assert not unknown_texts & {"yes", "no"}
    assert "80 clips" in summary and "yes 30" in summary


@needs_espeak
def test_split_is_by_voice(small_set):
    out, _ = small_set
    rows = list(csv.DictReader((out / "synth_meta.csv").open()))
    voice_of = {r["path"]: (r["engine"], r["voice"]) for r in rows}
    listed = {s: set((out / f"{s}_list.txt").read_text().split()) for s in ("validation", "testing")}
    train = set(voice_of) - listed["validation"] - listed["testing"]
    voices = {s: {voice_of[p] for p in paths} for s, paths in {**listed, "training": train}.items()}
    assert not voices["training"] & voices["validation"] and not voices["training"] & voices["testing"]
    assert listed["validation"] or listed["testing"]


@needs_espeak
def test_same_seed_same_bytes_and_resume_redoes_only_missing(small_set, tmp_path):
    out, _ = small_set
    again = tmp_path / "again"
    res = _run("--words", "yes,no", "--per-word", 30, "--negatives", 20, "--seed", 5, "--out", again, "-q",
               "--jobs", 1)
    assert res.returncode == 0, res.stderr
    assert _digest(again) == _digest(out)  # one worker or two: identical
    removed = sorted((again / "yes").glob("*.wav"))[:3]
    for p in removed:
        p.unlink()
    res = _run("--words", "yes,no", "--per-word", 30, "--negatives", 20, "--seed", 5, "--out", again, "-q")
    assert "3 rendered, 77 already there" in res.stdout
    assert _digest(again) == _digest(out)


@needs_espeak
def test_words_too_long_are_reported(tmp_path):
    res = _run("--words", "internationalization", "--per-word", 4, "--negatives", 0, "--clip-ms", 300,
               "--speed", "1:1", "--out", tmp_path / "long", "-q")
    assert res.returncode == 0
    assert "too long for 300 ms, skipped" in res.stdout


def test_no_engine_is_a_one_line_error_with_the_apt_line(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    res = _run("--words", "yes", "--out", tmp_path / "x", env=env)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install -y espeak-ng flite festival" in lines[0]


def test_phonetic_neighbours_share_onset_or_rhyme():
    near = close_words("computer")
    assert {"commuter", "compute", "scooter"} <= set(near)
    assert all(w[:2] == "co" or w.endswith("ter") for w in near)
    assert "computer" not in near
