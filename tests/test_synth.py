"""kws-synth: layout, clip format, levels, CSV, split by voice, determinism, resume (after deleted
files and after Ctrl-C), too-long words, the missing-engine error, voice balance, engine rate and
pitch controls, phonetic neighbours, augmentation maths, the progress bar without tqdm."""
import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from kws.edge.audio import write_wav
from kws.synth import clips
from kws.trainer import augment
from kws.synth.dataset import META_FIELDS, assign_splits, pick_voices
from kws.synth.engines import Voice
from kws.synth.vocabulary import close_words, negative_vocabulary, phonetic_neighbours, spelling_onset, spelling_rhyme
from signal_helpers import signal_self

SYNTH = [sys.executable, "-m", "kws.synth.cli"]
HAS_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng not installed (make test installs it)")
needs_all_engines = pytest.mark.skipif(
    not all(shutil.which(b) for b in ("espeak-ng", "flite", "festival")),
    reason="needs espeak-ng, flite and festival (make test installs them)")
SMALL = ("--words", "yes,no", "--per-word", 24, "--negatives", 16, "--seed", 5, "--reverb-prob", 0.5,
         "--noise-prob", 0.5, "-q")


def _run(*args, env=None):
    return subprocess.run(SYNTH + [str(a) for a in args], capture_output=True, text=True, timeout=300, env=env)


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".synth_state" not in p.parts}


def _rows(out: Path) -> list[dict]:
    with (out / "synth_meta.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """yes/no x 24 + 16 negatives from every installed engine, two workers."""
    if not HAS_ESPEAK:
        pytest.skip("espeak-ng not installed")
    out = tmp_path_factory.mktemp("synth") / "yesno"
    res = _run(*SMALL, "--out", out, "--jobs", 2)
    assert res.returncode == 0, res.stderr
    return out, res.stdout


@needs_espeak
def test_layout_clip_format_and_levels(small_set):
    out, summary = small_set
    assert {p.name for p in out.iterdir()} >= {"yes", "no", "_unknown_", "_background_noise_", "synth_meta.csv",
                                                "validation_list.txt", "testing_list.txt"}
    assert len(list((out / "yes").glob("*.wav"))) == 24 and len(list((out / "_unknown_").glob("*.wav"))) == 16
    rows = {r["path"]: r for r in _rows(out)}
    for wav in sorted((out / "yes").glob("*.wav")):
        rate, data = wavfile.read(wav)
        assert rate == 16000 and data.dtype == np.int16 and data.shape == (16000,)
        row = rows[f"yes/{wav.name}"]
        audio = data / 32768.0
        assert np.max(np.abs(audio)) <= 10 ** (clips.PEAK_LIMIT_DBFS / 20) + 1e-4  # never clipped
        if not row["noise"] and float(row["reverb_rt60_s"]) == 0:
            # clean clips: the speech's RMS is the target (-24 dBFS) plus the drawn gain, unless the
            # peak limit stopped it
            got = clips.level_dbfs(audio.astype(np.float32), "rms")
            wanted = float(row["level_dbfs"])
            assert got == pytest.approx(wanted, abs=0.3) or np.max(np.abs(audio)) > 0.88
            assert -30.5 <= wanted <= -17.5
    noises = sorted(p.name for p in (out / "_background_noise_").glob("*.wav"))
    assert noises == ["brown_noise.wav", "pink_noise.wav", "white_noise.wav"]
    rate, noise = wavfile.read(out / "_background_noise_" / "pink_noise.wav")
    assert rate == 16000 and 30 <= len(noise) / rate <= 60
    assert summary.startswith("kws-synth: 64 clips") and "yes 24, no 24, _unknown_ 16" in summary


@needs_espeak
def test_metadata_csv_describes_every_clip(small_set):
    out, _ = small_set
    rows = _rows(out)
    assert tuple(rows[0]) == META_FIELDS and len(rows) == 64
    assert all((out / r["path"]).is_file() for r in rows)
    assert {r["label"] for r in rows} == {"yes", "no", "_unknown_"}
    for r in rows:
        assert Path(r["path"]).name.startswith(f"{r['voice_id']}_nohash_")
        assert 0.75 <= float(r["rate"]) <= 1.3 and 0.9 <= float(r["speed"]) <= 1.1
        assert float(r["offset_ms"]) + float(r["speech_ms"]) <= 1000.5
        if r["noise"]:
            assert 5 <= float(r["snr_db"]) <= 30
    # every noise-free, reverb-free clip is silent before its recorded offset
    for r in rows[:20]:
        if not r["noise"] and float(r["reverb_rt60_s"]) == 0 and float(r["offset_ms"]) > 5:
            _, data = wavfile.read(out / r["path"])
            assert np.all(data[:int(float(r["offset_ms"]) * 16) - 1] == 0)
    texts = {r["text"] for r in rows if r["label"] == "_unknown_"}
    assert not texts & {"yes", "no", "know"}  # never a keyword or a homophone of one


@needs_espeak
def test_split_is_by_voice(small_set):
    out, _ = small_set
    rows = _rows(out)
    voice_of = {r["path"]: r["voice_id"] for r in rows}
    listed = {s: set((out / f"{s}_list.txt").read_text().split()) for s in ("validation", "testing")}
    assert listed["validation"] and listed["testing"]
    assert all(p in voice_of for s in listed.values() for p in s)
    train = set(voice_of) - listed["validation"] - listed["testing"]
    voices = {s: {voice_of[p] for p in paths} for s, paths in {**listed, "training": train}.items()}
    assert not voices["training"] & voices["validation"]
    assert not voices["training"] & voices["testing"]
    assert not voices["validation"] & voices["testing"]
    assert {r["split"] for r in rows if r["path"] in listed["validation"]} == {"validation"}


def test_assign_splits_gives_each_split_a_voice_and_training_the_most():
    counts = {f"v{i}": 10 for i in range(40)}
    splits = assign_splits(counts, 10, 10)
    n = {s: sum(1 for v in splits.values() if v == s) for s in ("training", "validation", "testing")}
    assert n == {"training": 32, "validation": 4, "testing": 4}
    assert assign_splits({"a": 5, "b": 5, "c": 5}, 10, 10) == {**{g: s for g, s in assign_splits(
        {"a": 5, "b": 5, "c": 5}, 10, 10).items()}}  # stable
    assert sorted(assign_splits({"a": 5, "b": 5, "c": 5}, 10, 10).values()) == ["testing", "training", "validation"]
    assert set(assign_splits({"a": 5, "b": 5}, 10, 10).values()) == {"training"}  # too few voices to split


@needs_espeak
def test_same_seed_same_bytes_any_workers_and_resume_redoes_only_missing(small_set, tmp_path):
    out, _ = small_set
    again = tmp_path / "again"
    res = _run(*SMALL, "--out", again, "--jobs", 1)
    assert res.returncode == 0, res.stderr
    assert _digest(again) == _digest(out)  # one worker or two: identical WAVs, lists and CSV
    removed = sorted((again / "yes").glob("*.wav"))[:2] + sorted((again / "_unknown_").glob("*.wav"))[:1]
    kept = sorted((again / "no").glob("*.wav"))[0]
    kept_mtime = kept.stat().st_mtime_ns
    for p in removed:
        p.unlink()
    res = _run(*SMALL, "--out", again, "--jobs", 2)
    assert res.returncode == 0, res.stderr
    assert "3 rendered, 61 already there" in res.stdout
    assert kept.stat().st_mtime_ns == kept_mtime
    assert _digest(again) == _digest(out)
    res = _run(*SMALL, "--out", again)
    assert "0 rendered, 64 already there" in res.stdout


@needs_espeak
def test_other_options_into_the_same_folder_is_refused(small_set, tmp_path):
    out = tmp_path / "opts"
    assert _run("--words", "up", "--per-word", 2, "--negatives", 0, "--out", out, "-q").returncode == 0
    res = _run("--words", "up", "--per-word", 3, "--negatives", 0, "--out", out, "-q")
    assert res.returncode == 1 and "made with other options" in res.stderr


@needs_espeak
def test_a_refused_rerun_names_the_options_that_differ(tmp_path):
    """kws-synth's own warning says 'rerun kws-synth with a larger --per-word'; doing so into the same
    folder was refused as 'made with other options (<path>/options.json)', naming none of them."""
    import json

    from click.testing import CliRunner

    from kws.synth.cli import main as synth_main
    from kws.synth.dataset import STATE_DIR, SynthOptions

    out = tmp_path / "words"
    earlier = SynthOptions(words=("cat", "dog"), out=out, per_word=6, negatives=6, engines=("espeak",))
    (out / STATE_DIR).mkdir(parents=True)
    (out / STATE_DIR / "options.json").write_text(json.dumps(earlier.fingerprint(), indent=1, sort_keys=True))
    res = CliRunner().invoke(synth_main, ["--words", "cat,dog", "--per-word", "8", "--negatives", "6",
                                          "--engines", "espeak", "--speed", "1", "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert res.stderr.strip() == (f"Error: {out} holds a dataset made with other options (--per-word 6 there, "
                                  "8 now; --speed 0.9:1.1 there, 1:1 now); use another --out or delete it to start over")
    assert sorted(p.name for p in out.iterdir()) == [STATE_DIR]  # nothing rendered into it


@needs_espeak
def test_words_too_long_are_reported_not_cut(tmp_path):
    res = _run("--words", "internationalization", "--per-word", 4, "--negatives", 0, "--clip-ms", 300,
               "--speed", "1", "--out", tmp_path / "long", "--engines", "espeak", "-q")
    assert res.returncode == 1  # the only word got no clip (the summary still comes first)
    assert "too long for 300 ms: 4 (e.g. 'internationalization' by espeak-" in res.stdout
    assert "no clip of 'internationalization' fits in 300 ms" in res.stderr
    assert not list((tmp_path / "long" / "internationalization").glob("*.wav"))
    assert len(_rows(tmp_path / "long")) == 0


@needs_espeak
def test_a_redirected_log_gets_one_progress_line_not_bar_updates(tmp_path):
    """stderr is a pipe here (as in make demo > log): no carriage-return redraws, one summary line."""
    res = _run("--words", "go", "--per-word", 6, "--negatives", 0, "--engines", "espeak", "--noise-prob", 0,
               "--reverb-prob", 0, "--out", tmp_path / "log", "--jobs", 1)
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stderr and "\x1b[" not in res.stderr
    assert [line for line in res.stderr.splitlines() if line.startswith("kws-synth:")] == [
        line for line in res.stderr.splitlines() if line.startswith("kws-synth: 6/6 clips")]
    assert len([line for line in res.stderr.splitlines() if "6/6 clips" in line]) == 1


@needs_espeak
def test_other_rate_and_length(tmp_path):
    out = tmp_path / "sr8k"
    res = _run("--words", "go", "--per-word", 3, "--negatives", 0, "--sample-rate", 8000, "--clip-ms", 1500,
               "--engines", "espeak", "--level", "peak", "--level-dbfs", -6, "--gain", 0, "--noise-prob", 0,
               "--reverb-prob", 0, "--out", out, "-q")
    assert res.returncode == 0, res.stderr
    for wav in (out / "go").glob("*.wav"):
        rate, data = wavfile.read(wav)
        assert rate == 8000 and data.shape == (12000,)
        assert 20 * np.log10(np.max(np.abs(data)) / 32768) == pytest.approx(-6.0, abs=0.05)


@needs_all_engines
def test_all_three_engines_are_used(small_set):
    out, _ = small_set
    assert {r["engine"] for r in _rows(out)} == {"espeak", "flite", "festival"}


def test_no_engine_is_a_one_line_error_with_the_apt_line(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    talk = tmp_path / "talk.wav"
    write_wav(talk, np.full(32000, 0.1, np.float32), 16000)
    for extra in ((), ("--negatives-dir", talk)):  # the list of negatives used to be left behind
        res = _run("--words", "yes", "--out", tmp_path / "x", *extra, env=env)
        assert res.returncode == 1
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "apt-get install -y espeak-ng flite festival" in lines[0]
        assert not (tmp_path / "x").exists()


def test_bad_values_are_one_line_errors(tmp_path):
    res = _run("--words", "yes", "--out", tmp_path / "x", "--snr", "30:5")
    assert res.returncode == 2 and "LOW <= HIGH" in res.stderr
    res = _run("--words", "yes/no", "--out", tmp_path / "x")
    assert res.returncode == 1 and "folder names" in res.stderr


@needs_espeak
def test_a_folder_kws_synth_did_not_make_is_never_written_into(tmp_path):
    """--out naming your own dataset used to add the words to it and replace its
    validation_list.txt (changing its split) and synth_meta.csv; now it is refused, with or without
    --negatives-dir, and nothing in it changes. A new, empty or earlier kws-synth folder is fine."""
    mine = tmp_path / "mine"
    write_wav(mine / "up" / "spk0_nohash_0.wav", np.zeros(16000, np.float32), 16000)
    (mine / "validation_list.txt").write_text("up/spk0_nohash_0.wav\n")
    negatives = tmp_path / "talk.wav"
    write_wav(negatives, np.full(32000, 0.1, np.float32), 16000)
    before = _digest(mine)
    for extra in ((), ("--negatives-dir", negatives)):
        res = _run("--words", "yes", "--per-word", 1, "--negatives", 0, "--engines", "espeak", "--out", mine, *extra)
        assert res.returncode == 1 and res.stderr.strip().splitlines() == [
            f"Error: {mine}: exists and holds files kws-synth did not make (its lists and synth_meta.csv would "
            "be replaced); give --out a new or empty folder"]
        assert _digest(mine) == before and sorted(p.name for p in mine.iterdir()) == ["up", "validation_list.txt"]
    empty = tmp_path / "empty"
    (empty / ".hidden").mkdir(parents=True)
    for _ in range(2):  # the second run resumes the folder the first one made
        res = _run("--words", "yes", "--per-word", 1, "--negatives", 0, "--engines", "espeak", "--noise-prob", 0,
                   "--reverb-prob", 0, "--jobs", 1, "--out", empty, "--negatives-dir", negatives, "-q")
        assert res.returncode == 0, res.stderr
    assert (empty / "negatives.txt").is_file() and len(list((empty / "yes").iterdir())) == 1


@needs_espeak
def test_a_bad_noise_dir_leaves_nothing_that_blocks_the_rerun(tmp_path):
    """A --noise-dir without audio failed after options.json was written, so the rerun with the
    folder fixed was refused as 'a dataset made with other options'."""
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "readme.txt").write_text("recordings to come\n")
    out = tmp_path / "out"
    args = ("--words", "yes", "--per-word", 1, "--negatives", 0, "--engines", "espeak", "--jobs", 1, "--out", out, "-q")
    res = _run(*args, "--noise-dir", noise)
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        f"Error: --noise-dir {noise}: no audio files in it (.wav, .wave, .flac, .ogg, .oga, .opus, .mp3; "
        "hidden files and folders and __MACOSX/ are not read)"]
    assert not out.exists()
    write_wav(noise / "hum.wav", np.full(16000, 0.05, np.float32), 16000)
    res = _run(*args, "--noise-dir", noise)
    assert res.returncode == 0, res.stderr
    assert (out / "_background_noise_" / "user_hum.wav").is_file()


def test_a_bad_word_is_named_with_the_rule_it_breaks(tmp_path):
    """'_unknown_' is letters and '_', so "must be letters, digits, ' - or _" alone did not say
    what was wrong (a word may not start with _ or -); an empty word was reported twice."""
    from kws.edge.errors import KwsError
    from kws.synth.dataset import SynthOptions

    with pytest.raises(KwsError) as err:
        SynthOptions(words=("yes", "_unknown_", "-no"), out=tmp_path)
    assert str(err.value) == ("words must be letters, digits, ' - or _ (folder names) and start with a letter, "
                              "digit or ', got ['_unknown_', '-no']")
    with pytest.raises(KwsError) as err:
        SynthOptions(words=("yes", "", "no"), out=tmp_path)
    assert str(err.value) == "words must be non-empty, got ('yes', '', 'no')"
    assert not any(tmp_path.iterdir())


def test_phonetic_neighbours_share_onset_or_rhyme():
    assert spelling_onset("computer") == "co" and spelling_rhyme("computer") == "ter"
    near = close_words("computer")
    assert {"commuter", "compute", "scooter", "tutor"} & set(near) == {"commuter", "compute", "scooter"}
    assert all(w.startswith("co") or w.endswith("ter") for w in near)
    assert "computer" not in near
    assert "know" not in close_words("no") and "write" not in close_words("right")


def test_phoneme_neighbours_from_a_table():
    table = {"computer": ("k", "@", "m", "p", "j", "'u:", "t#", "3"), "commuter": ("k", "@", "m", "j", "'u:", "t#", "3"),
             "scooter": ("s", "k", "'u:", "t#", "3"), "banana": ("b", "@", "n", "'a", "n", "@"),
             "kompyooter": ("k", "@", "m", "p", "j", "'u:", "t#", "3")}
    assert phonetic_neighbours("computer", table) == ["commuter", "scooter"]  # the homophone is left out
    close, general, parts = negative_vocabulary(["hey computer"])
    assert parts == ["computer", "hey"] and "hey computer" not in close + general


@needs_espeak
def test_phoneme_neighbours_of_computer_from_espeak():
    from kws.synth.engines import phonemes

    table = phonemes(["computer", "commuter", "compute", "scooter", "banana", "window"])
    assert table["computer"][:2] == ("k", "@")
    assert phonetic_neighbours("computer", table) == ["commuter", "compute", "scooter"]


def test_augmentation_maths():
    rng = np.random.default_rng(0)
    n = 2 ** 16
    spectra = {k: np.abs(np.fft.rfft(augment.colored_noise(k, n, rng))) ** 2 for k in augment.NOISE_KINDS}
    f = np.fft.rfftfreq(n)
    low, high = (f > 0.01) & (f < 0.02), (f > 0.2) & (f < 0.4)
    slope = {k: 10 * np.log10(s[low].mean() / s[high].mean()) for k, s in spectra.items()}
    assert abs(slope["white"]) < 1 and 10 < slope["pink"] < 16 and 25 < slope["brown"] < 32
    speech = np.zeros(16000, np.float32)
    speech[4000:8000] = 0.1 * np.sin(np.arange(4000) * 0.2)
    noise = augment.colored_noise("white", 16000, rng)
    mixed = augment.mix_at_snr(speech, noise, 10.0)
    added = mixed - speech
    snr = 20 * np.log10(augment.active_rms(speech) / np.sqrt(np.mean(added ** 2)))
    assert snr == pytest.approx(10.0, abs=0.01)
    ir = augment.room_impulse_response(0.5, 16000, rng)
    energy = np.cumsum(ir[::-1] ** 2)[::-1]  # Schroeder decay
    t60 = np.flatnonzero(10 * np.log10(energy / energy[0]) < -30)[0] * 2 / 16000  # T30 x 2
    assert 0.35 < t60 < 0.65
    x = clips.normalise(speech, -20.0, "rms")
    assert clips.level_dbfs(x, "rms") == pytest.approx(-20.0, abs=0.01)
    trimmed = clips.trim_silence(speech, 16000)
    assert 4000 <= len(trimmed) <= 4000 + 2 * 320 + 160
    assert len(augment.speed(trimmed, 1.25)) == pytest.approx(len(trimmed) / 1.25, abs=1)


def test_assign_splits_keeps_scarce_recorded_speakers_in_training():
    counts = {f"espeak-{i}": 10 for i in range(30)}
    counts.update({"speaker-kal": 60, "speaker-slt": 60})
    splits = assign_splits(counts, 10, 10, scarce={"speaker-kal", "speaker-slt"})
    assert splits["speaker-kal"] == splits["speaker-slt"] == "training"
    held = Counter(s for g, s in splits.items())
    assert held["validation"] >= 3 and held["testing"] >= 3
    # with nothing else to hold out, recorded speakers are split too
    only = assign_splits({"speaker-a": 10, "speaker-b": 10, "speaker-c": 10, "speaker-d": 10}, 10, 10,
                         scarce={"speaker-a", "speaker-b", "speaker-c", "speaker-d"})
    assert sorted(only.values()) == ["testing", "training", "training", "validation"]


def test_pick_voices_uses_every_voice_of_an_engine_equally_without_repeats():
    voices = [Voice("flite", "kal16", base_f0=100.0, speaker="kal"), Voice("flite", "rms", speaker="rms"),
              Voice("festival", "kal_diphone", base_f0=105.0, speaker="kal")]
    picked = pick_voices(voices, 600, np.random.default_rng(0))
    per_voice = Counter(v.name for v, _, _ in picked)
    flite = per_voice["kal16"] + per_voice["rms"]
    assert abs(per_voice["kal16"] - per_voice["rms"]) <= 1  # rms (no pitch control) as often as kal16
    assert 0.5 < flite / 600 < 0.75  # engine weights flite 0.3 : festival 0.2
    kal = [(r, p) for v, r, p in picked if v.name == "kal16"]
    assert len(set(kal[:84])) == min(84, len(kal))  # 12 rates x 7 pitches, no repeat
    assert {p for v, _, p in picked if v.name == "rms"} == {1.0}


@needs_espeak
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_resumes_without_redoing_finished_clips(tmp_path, sig):
    out = tmp_path / "int"
    args = ("--words", "yes,no", "--per-word", 150, "--negatives", 0, "--seed", 3, "--jobs", 1, "-q",
            "--out", out)
    tmp_root = tmp_path / "tmp"  # the engines' temp folders: none may outlive the run
    tmp_root.mkdir()
    proc = subprocess.Popen(SYNTH + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, TMPDIR=str(tmp_root)))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(out.glob(".synth_state/shards/*.json")):
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    assert not list((out / ".synth_state" / "tmp").glob("*"))  # no half-written clip left behind
    assert not list(tmp_root.iterdir())
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*.wav") if p.parent.name != "_background_noise_"}
    assert 0 < len(before) < 300
    res = _run(*args)
    assert res.returncode == 0, res.stderr
    rendered, already = (int(x) for x in
                         res.stdout.split("; ")[2].replace(" rendered, ", " ").replace(" already there", "").split())
    assert already >= len(before) and rendered + already == 300
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())


@needs_all_engines
def test_engines_honour_rate_and_pitch():
    from kws.synth.engines import Synthesizer, Utterance, available_voices

    voices = {v.voice_id: v for v in available_voices()}
    synth = Synthesizer(16000)
    ids = ["espeak-en-us-m1", "flite-kal16", "festival-kal-diphone", "festival-cmu-us-slt-arctic-hts"]
    utts = [Utterance(voices[i], "computer", rate, 1.0) for i in ids for rate in (0.75, 1.3)]
    out = synth.render(utts)
    for i, vid in enumerate(ids):
        slow, fast = (len(clips.trim_silence(a, 16000)) for a in out[2 * i:2 * i + 2])
        assert slow > 1.3 * fast, vid  # every engine (the HTS voice too) changes its speaking rate
    low, high = synth.render([Utterance(voices["festival-kal-diphone"], "computer", 1.0, p) for p in (0.8, 1.25)])
    assert _f0(high) > 1.3 * _f0(low)


def _f0(audio: np.ndarray, sr: int = 16000) -> float:
    """Median autocorrelation pitch (Hz) over the loud 40 ms frames."""
    n = int(0.04 * sr)
    frames = [audio[i:i + n] for i in range(0, len(audio) - n, n)]
    loud = [f for f in frames if np.sqrt(np.mean(f ** 2)) > 0.3 * max(np.sqrt(np.mean(g ** 2)) for g in frames)]
    out = []
    for f in loud:
        c = np.correlate(f - f.mean(), f - f.mean(), "full")[n - 1:]
        lo, hi = sr // 400, sr // 60
        out.append(sr / (lo + int(np.argmax(c[lo:hi]))))
    return float(np.median(out))


def test_plain_progress_bar_without_tqdm(monkeypatch, capsys):
    import builtins

    from kws.synth import progress

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name == "tqdm":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    bar = progress.progress_bar(10, 4, "kws-synth", disable=False)
    assert isinstance(bar, progress.PlainBar)
    bar.update(6)
    bar.close()
    assert "kws-synth: 10/10 clips" in capsys.readouterr().err


@needs_espeak
def test_voice_variants_add_pseudo_speakers_and_keep_the_original_clips(small_set, tmp_path):
    out, _ = small_set
    varied = tmp_path / "varied"
    res = _run(*SMALL, "--out", varied, "--jobs", 2, "--voice-variants", 2)
    assert res.returncode == 0, res.stderr
    base_rows, rows = _rows(out), _rows(varied)
    originals = [r for r in rows if r["speaker"] == r["voice_id"]]
    variants = [r for r in rows if r["speaker"] != r["voice_id"]]
    # the clips of the engine voices are byte-identical to a run without variants
    assert sorted(r["path"] for r in originals) == sorted(r["path"] for r in base_rows)
    for r in originals:
        assert (varied / r["path"]).read_bytes() == (out / r["path"]).read_bytes()
    # up to two pseudo-speakers per clip (a word stretched past the clip is left out, as always)
    assert len(rows) - len(originals) == len(variants) > 1.5 * len(originals)
    assert {r["speaker"].rsplit("-v", 1)[1] for r in variants} == {"1", "2"}
    split_of = {r["voice_id"]: r["split"] for r in originals}
    by_speaker: dict[str, set] = {}
    for r in variants:
        assert Path(r["path"]).name.startswith(f"{r['speaker']}_nohash_")
        assert r["split"] == split_of.get(r["voice_id"], r["split"])  # with its voice: never across splits
        by_speaker.setdefault(r["speaker"], set()).add((r["voice_shift"], r["tempo"]))
        assert 0.84 <= float(r["voice_shift"]) <= 1.19 and 0.88 <= float(r["tempo"]) <= 1.12
    assert all(len(params) == 1 for params in by_speaker.values())  # one pseudo-speaker, one voice
    speakers = {r["speaker"] for r in rows}
    assert len(speakers) == 3 * len({r["voice_id"] for r in originals})
    assert f"{len(speakers)} voices" in res.stdout


@needs_espeak
def test_negatives_dir_is_listed_for_kws_train(tmp_path):
    from kws.trainer.negatives import listed_negatives

    talk = tmp_path / "talk"
    talk.mkdir()
    write_wav(talk / "radio.wav", np.zeros(3 * 16000, dtype=np.float32) + 0.01, 16000)
    out = tmp_path / "ds"
    base = ("--words", "yes", "--per-word", 2, "--negatives", 0, "--engines", "espeak", "--jobs", 1, "-q")
    res = _run(*base, "--out", out, "--negatives-dir", talk)
    assert res.returncode == 0, res.stderr
    assert listed_negatives(out) == (str(talk.resolve()),)
    (talk / "broken.flac").write_bytes(b"not flac")
    bad = _run(*base, "--out", tmp_path / "ds2", "--negatives-dir", talk)
    assert bad.returncode == 1 and "broken.flac" in bad.stderr and bad.stderr.strip().count("\n") == 0
    assert not (tmp_path / "ds2").exists()


@needs_espeak
def test_a_word_with_no_clip_that_fits_fails_and_keeps_the_others(tmp_path):
    """A word longer than the clip in every rendering got 0 clips and kws-synth exited 0 anyway; it
    now exits 1 naming the word and the clip length, after the summary, with the other words kept."""
    out = tmp_path / "long"
    res = _run("--words", "up,internationalization", "--per-word", 4, "--negatives", 4, "--clip-ms", 700,
               "--out", out, "--engines", "espeak", "--jobs", 1, "-q")
    assert res.returncode == 1
    assert "(up 4, internationalization 0, _unknown_ 4)" in res.stdout
    assert res.stderr.strip().splitlines()[-1] == (
        "Error: no clip of 'internationalization' fits in 700 ms (every rendering was longer; the clips of "
        "the other words are kept): give --clip-ms more room or a shorter phrase")
    assert len(list((out / "up").glob("*.wav"))) == 4 and not (out / "internationalization").exists()


def test_pseudo_speakers_get_noise_at_the_noise_share_of_any_kind():
    """--noise-prob is the share of clips with noise, variants included: a pseudo-speaker's clip drew
    noise only when the clip it came from had some (so at noise_prob squared: 27% instead of 50%
    with --voice-variants 3) and always of that clip's kind."""
    from kws.synth.dataset import SynthOptions, plan

    voices = [Voice("espeak", v, accent="en-us") for v in ("m1", "m2", "f1", "f2", "m3", "f3")]
    noises = ["brown_noise", "pink_noise", "white_noise"]
    opts = SynthOptions(words=("yes",), out=Path("unused"), per_word=400, negatives=0, seed=3,
                        voice_variants=3, noise_prob=0.5)
    tasks = plan(opts, voices, noises)
    base = {t.path: t for t in tasks if not t.variant}
    variants = [t for t in tasks if t.variant]
    assert len(variants) == 1200
    assert 0.45 <= sum(1 for t in variants if t.noise) / len(variants) <= 0.55
    by_base = [(base[f"yes/{t.voice.voice_id}{t.path.split('/', 1)[1][len(t.speaker):]}"], t) for t in variants]
    assert any(t.noise and not b.noise for b, t in by_base)  # noise under a variant of a clean clip
    assert any(t.noise and b.noise and t.noise != b.noise for b, t in by_base)  # and of its own kind
    assert {t.noise for t in variants if t.noise} == set(noises)
    assert all(0.0 == t.snr_db for t in variants if not t.noise)
    assert all(5.0 <= t.snr_db <= 30.0 for t in variants if t.noise)


def test_every_noise_dir_file_is_kept_when_names_differ_only_by_suffix_or_case(tmp_path):
    """fan.wav, fan.flac and Fan.ogg all became user_fan: two of the three noises were silently
    dropped from the mixes and from _background_noise_. Hidden files and folders and __MACOSX/ were
    read too (a warning for each ._ companion, __MACOSX/'s copies mixed in as noises of their own)."""
    import soundfile as sf

    from kws.synth.dataset import SynthOptions, background_noises

    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    t = np.arange(16000) / 16000
    for name, hz in (("fan.wav", 200), ("fan.flac", 500), ("Fan.ogg", 900)):
        sf.write(noise_dir / name, 0.1 * np.sin(2 * np.pi * hz * t), 16000)
    # passed by, as by every kws tool: a Mac's ._ companion, __MACOSX/'s copies, a hidden folder
    (noise_dir / "._fan.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    for rel in ("__MACOSX/fan.wav", ".Trashes/hum.wav"):
        (noise_dir / rel).parent.mkdir()
        sf.write(noise_dir / rel, 0.1 * np.sin(2 * np.pi * 300 * t), 16000)
    opts = SynthOptions(words=("yes",), out=tmp_path / "out", noise_dir=noise_dir)
    user = {k: v for k, v in background_noises(opts).items() if k.startswith("user_")}
    assert sorted(user) == ["user_fan", "user_fan-flac", "user_fan-wav"]
    peak_hz = {k: int(round(np.argmax(np.abs(np.fft.rfft(v))) * 16000 / len(v))) for k, v in user.items()}
    assert peak_hz == {"user_fan": 900, "user_fan-flac": 500, "user_fan-wav": 200}


def test_words_said_alike_are_refused_before_anything_is_written(tmp_path):
    """--words yes,Yes (or hey-robot,hey_robot) made two labels of the same speech, which no model can
    tell apart (and one folder on a case-insensitive file system); it ran to the end."""
    res = _run("--words", "yes,Yes,hey-robot,hey_robot,no", "--out", tmp_path / "x", "-q")
    assert res.returncode == 1 and not (tmp_path / "x").exists()
    assert res.stderr.strip() == ("Error: words are said alike, so their clips would be the same speech under two "
                                  "labels: 'yes' and 'Yes'; 'hey-robot' and 'hey_robot'")


@needs_espeak
def test_a_rerun_tries_the_clips_an_engine_failed_on_again(tmp_path):
    """A clip the engine failed on (a festival timeout on a loaded machine) was recorded with its
    shard, and the rerun counted the shard as done: the clip stayed missing for good ('0 rendered,
    3 already there; 1 failed'), here leaving validation without a voice."""
    import json

    out = tmp_path / "retry"
    args = ("--words", "yes", "--per-word", 4, "--negatives", 0, "--engines", "espeak", "--jobs", 1, "-q",
            "--out", out)
    assert _run(*args).returncode == 0
    first = _digest(out)
    record_path = next((out / ".synth_state" / "shards").glob("*.json"))
    record = json.loads(record_path.read_text())
    record[0].update(status="error: festival failed: timed out", written=False)  # what a failed clip leaves
    record_path.write_text(json.dumps(record))
    (out / record[0]["path"]).unlink()
    res = _run(*args)
    assert res.returncode == 0, res.stderr
    assert "1 rendered, 3 already there" in res.stdout and "failed" not in res.stdout
    assert _digest(out) == first


@needs_espeak
def test_a_held_out_split_without_a_word_is_said_when_the_run_ends(tmp_path):
    """With few clips per word the validation or test voices may say only some words; kws-train and
    kws data-stats warned of it, kws-synth finished silently. Its last line now says it too (the
    same line as data-stats), so the user reruns with a larger --per-word before training."""
    from kws.evaluation.datastats import dataset_stats

    out = tmp_path / "few"
    res = _run("--words", "yes,no", "--per-word", 2, "--negatives", 0, "--engines", "espeak", "--noise-prob", 0,
               "--reverb-prob", 0, "--jobs", 1, "--out", out, "-q")
    assert res.returncode == 0, res.stderr
    assert "(yes 2, no 2)" in res.stdout and "warning" not in res.stdout
    held = {s: {p.split("/")[0] for p in (out / f"{s}_list.txt").read_text().split()} for s in ("validation", "testing")}
    assert all(len(words) == 1 for words in held.values())  # one held-out voice each, saying one word
    lost = {s: ({"yes", "no"} - words).pop() for s, words in held.items()}
    warning = res.stderr.strip().splitlines()[-1]
    assert warning.startswith(f"warning: validation holds no clip of {lost['validation']!r} (validation_list.txt "
                              "decides it), so the best epoch is picked without hearing it; testing holds no clip "
                              f"of {lost['testing']!r}")
    assert warning.endswith("rerun kws-synth with a larger --per-word, so that the held-out voices say every word")
    assert dataset_stats(out)["speakers"]["split_warning"] == warning


def test_a_one_word_set_whose_held_out_voices_said_only_negatives_is_said(tmp_path):
    """One keyword with few clips: the validation and test voices may say only _unknown_ negatives.
    Those splits then held no clip of the word (kws-train drew no _unknown_ into a split without a word,
    so it validated on nothing), yet kws-synth, kws-train and kws data-stats said nothing."""
    from kws.evaluation.datastats import dataset_stats
    from kws.synth.dataset import SynthOptions, word_gap_warning
    from kws.trainer.dataset import scan_dataset

    out = tmp_path / "one"
    for voice in ("a", "b", "c"):
        write_wav(out / "yes" / f"{voice}_nohash_0.wav", np.full(800, 0.1, np.float32), 16000)
    for voice in ("a", "d", "e"):
        write_wav(out / "_unknown_" / f"{voice}_nohash_no_0.wav", np.full(800, 0.1, np.float32), 16000)
    (out / "validation_list.txt").write_text("_unknown_/d_nohash_no_0.wav\n")
    (out / "testing_list.txt").write_text("_unknown_/e_nohash_no_0.wav\n")
    (out / "synth_meta.csv").write_text(",".join(META_FIELDS) + "\n")
    assert word_gap_warning(SynthOptions(words=("yes",), out=out)) == (
        "warning: validation holds no clip of 'yes' (validation_list.txt decides it), so the best epoch is picked "
        "without hearing it; testing holds no clip of 'yes' (testing_list.txt decides it), so test accuracy says "
        "nothing of it; rerun kws-synth with a larger --per-word, so that the held-out voices say every word")
    said = word_gap_warning(SynthOptions(words=("yes",), out=out))  # the same line from kws-train and data-stats
    assert scan_dataset(out, [], 10, 10, 10, 10, seed=0).empty_split_warning(10, 10) == said
    assert dataset_stats(out)["speakers"]["split_warning"] == said
    (out / "testing_list.txt").write_text("yes/c_nohash_0.wav\n")  # the test voice says the word: only validation
    assert word_gap_warning(SynthOptions(words=("yes",), out=out)).startswith(
        "warning: validation holds no clip of 'yes' (validation_list.txt decides it), so the best epoch is picked "
        "without hearing it; rerun kws-synth")


def test_a_second_stop_while_the_workers_end_still_removes_the_scratch_folder(tmp_path, monkeypatch):
    """Ctrl-C, then SIGTERM while kws-synth waited for its terminated workers (pool.join): the
    kws-synth-* scratch folder with the engines' temp files stayed in TMPDIR, and kws-synth's own
    signal handlers stayed installed. A third stop during the removal waits for it."""
    from kws.synth import dataset

    class FirstStopWhilePolled:
        def ready(self):
            signal_self(signal.SIGINT)  # seen at the next check: the pool is terminated
            return False

    class WorkersEndingPool:
        def __init__(self, processes, initializer, initargs, maxtasksperchild):
            self.scratch = Path(initargs[2])
            (self.scratch / "festival-tmp").mkdir()  # an engine's temp folder, as a worker left it
            (self.scratch / "festival-tmp" / "utt.wav").write_bytes(b"RIFF")

        def apply_async(self, func, args):
            return FirstStopWhilePolled()

        def terminate(self):
            pass

        def join(self):
            signal_self(signal.SIGTERM)  # the second stop, while the workers end

    class Context:
        Pool = WorkersEndingPool

    real_rmtree = shutil.rmtree

    def stopped_again_in_removal(path, *args, **kwargs):
        if Path(path).parent == tmp_path:
            signal_self(signal.SIGINT)
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(dataset.multiprocessing, "get_context", lambda method: Context)
    monkeypatch.setattr(dataset.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(shutil, "rmtree", stopped_again_in_removal)
    with pytest.raises(KeyboardInterrupt):
        list(dataset._run_shards([["a clip"]], [0], None, {}, jobs=1))
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
