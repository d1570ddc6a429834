"""kws data-stats flags problems; kws inspect writes its figure and prints a prediction."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from audio_fixtures import SAMPLE_RATE, word_audio
from kws.edge.audio import write_wav
from kws.evaluation.datastats import FEW_FILES, dataset_stats, duration_text
from kws.evaluation.inspect_cli import data_stats_cmd, inspect_cmd
from kws.trainer.dataset import split_of_key


def test_data_stats_flags_problems(tmp_path):
    rng = np.random.default_rng(0)
    for label, n in (("yes", 25), ("no", 25), ("rare", 2)):
        for i in range(n):
            write_wav(tmp_path / label / f"{i}.wav", word_audio("up", rng), SAMPLE_RATE)
    clipped = word_audio("up", rng) * 40
    write_wav(tmp_path / "yes" / "clipped.wav", clipped, SAMPLE_RATE)
    write_wav(tmp_path / "yes" / "silent.wav", np.full(SAMPLE_RATE, 1e-4, np.float32), SAMPLE_RATE)
    shutil.copy(tmp_path / "no" / "3.wav", tmp_path / "no" / "copy.wav")
    write_wav(tmp_path / "no" / "rate.wav", word_audio("up", rng, 8000), 8000)
    (tmp_path / "no" / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    (tmp_path / "no" / "gone.wav").symlink_to(tmp_path / "elsewhere.wav")  # a link to nothing
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    kinds = {(p["kind"], p.get("path", p.get("label"))) for p in stats["problems"]}
    assert ("clipping", "yes/clipped.wav") in kinds
    assert ("silent", "yes/silent.wav") in kinds
    assert ("wrong_rate", "no/rate.wav") in kinds
    assert ("unreadable", "no/broken.wav") in kinds
    gone = [p for p in stats["problems"] if p.get("path") == "no/gone.wav"]
    assert gone == [{"kind": "unreadable", "path": "no/gone.wav",
                     "detail": f"a link to {tmp_path / 'elsewhere.wav'}, which does not exist"}]
    assert ("few_files", "rare") in kinds
    dup = [p for p in stats["problems"] if p["kind"] == "duplicate"]
    assert len(dup) == 1 and {dup[0]["path"], dup[0]["detail"].split()[-1]} == {"no/3.wav", "no/copy.wav"}
    assert len(kinds) == 7
    yes = stats["labels"]["yes"]
    assert yes["files"] == 27 and yes["sample_rates"] == {"16000": 27} and yes["sample_formats"] == {"int16": 27}
    assert stats["labels"]["no"]["sample_rates"] == {"8000": 1, "16000": 26}
    assert stats["labels"]["no"]["min_s"] == pytest.approx(1.0)
    text = CliRunner().invoke(data_stats_cmd, [str(tmp_path)]).output
    assert "problems: 7" in text and "clipping    yes/clipped.wav" in text


def test_levels_are_those_of_every_channel_not_of_their_mean(tmp_path):
    """A stereo clip whose left channel clips and whose right one is silent: its mono mean peaks at
    -6 dBFS, so kws inspect said 'peak -6.0 dBFS' and kws data-stats flagged no clipping."""
    left = np.clip(word_audio("up", np.random.default_rng(0)) * 40, -1.0, 1.0)
    clip = tmp_path / "up" / "stereo.wav"
    write_wav(clip, np.stack([left, np.zeros_like(left)], axis=1), SAMPLE_RATE)
    res = CliRunner().invoke(inspect_cmd, [str(clip)])
    assert res.exit_code == 0, res.output
    assert ", 2 ch, int16, peak " in res.output
    assert float(res.output.split(" peak ")[1].split()[0]) == pytest.approx(0.0, abs=0.01)
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    problems = {p["kind"]: p for p in json.loads(res.output)["problems"] if "path" in p}
    assert set(problems) == {"clipping"} and problems["clipping"]["path"] == "up/stereo.wav"
    share = np.mean(np.abs(left) >= 0.999) / 2  # of the file's samples, both channels
    assert problems["clipping"]["detail"] == f"{100 * share:.2f}% of samples at full scale"


def test_data_stats_passes_by_the_hidden_files_kws_train_never_reads(tmp_path):
    """A dataset copied from a Mac has a ._ companion beside every clip (no audio, and kws-train skips
    names starting with '.'): data-stats listed each as unreadable, and counted a .Trash folder's
    clips as a label, a duplicate and too few files."""
    rng = np.random.default_rng(2)
    for label in ("yes", "no"):
        for i in range(FEW_FILES):
            write_wav(tmp_path / label / f"s{i}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
            (tmp_path / label / f"._s{i}_nohash_0.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    (tmp_path / ".Trash").mkdir()
    shutil.copy(tmp_path / "yes" / "s0_nohash_0.wav", tmp_path / ".Trash" / "old.wav")
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    assert stats["problems"] == [] and stats["files"] == 2 * FEW_FILES and sorted(stats["labels"]) == ["no", "yes"]


def test_data_stats_counts_no_folder_kws_train_does_not_read_as_a_label(tmp_path):
    """kws-train reads no folder named with a leading '_' but _background_noise_/ and _unknown_/, and
    passes __MACOSX/ by: data-stats listed a _silence_/ of recordings as a label (and a label with too
    few files), so a user read it as data. It is now one unread_folder problem, __MACOSX is passed by
    unsaid, and _unknown_ stays a row of the table."""
    rng = np.random.default_rng(3)
    for label in ("yes", "no", "_unknown_"):
        for i in range(FEW_FILES):
            write_wav(tmp_path / label / f"s{i}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
            (tmp_path / "__MACOSX" / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / "__MACOSX" / label / f"._s{i}_nohash_0.wav").write_bytes(b"\x00\x05\x16\x07Mac OS X")
    for i in range(3):
        write_wav(tmp_path / "_silence_" / f"room{i}.wav", word_audio("up", rng) * 0.01, SAMPLE_RATE)
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.output)
    assert sorted(stats["labels"]) == ["_unknown_", "no", "yes"] and stats["files"] == 3 * FEW_FILES
    assert stats["problems"] == [
        {"kind": "unread_folder", "label": "_silence_",
         "detail": "its 3 audio files are not read: of the folders named with a leading '_', kws-train reads only "
                   "_background_noise_/ (noise) and _unknown_/ (other words); to use them, rename it without its "
                   "leading '_' (a word) or move them into _unknown_/"}]


def test_data_stats_flags_folders_kws_train_would_refuse_or_ignore(tmp_path):
    """An empty label folder, a label no manifest could hold and files outside any label folder are
    problems, and the speakers per split are still counted for the usable labels."""
    rng = np.random.default_rng(1)
    for label in ("yes", "no", "x" * 70):
        for i in range(4):
            write_wav(tmp_path / label / f"spk{i}_nohash_{i}.wav", word_audio("up", rng), SAMPLE_RATE)
    (tmp_path / "up").mkdir()
    write_wav(tmp_path / "stray.wav", word_audio("up", rng), SAMPLE_RATE)
    write_wav(tmp_path / "demo" / "go" / "spk9_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    cut = (tmp_path / "yes" / "spk0_nohash_0.wav").read_bytes()
    (tmp_path / "yes" / "spk0_nohash_0.wav").write_bytes(cut[:44 + 1920])  # 60 ms of the 1 s declared
    stats = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"]).output)
    kinds = {p["kind"]: p for p in stats["problems"]}
    assert kinds["nested"]["label"] == "demo" and f"is the dataset {tmp_path / 'demo'}?" in kinds["nested"]["detail"]
    assert kinds["truncated"]["path"] == "yes/spk0_nohash_0.wav"
    assert kinds["truncated"]["detail"].startswith("the header declares 1.000 s, the file holds 0.060 s")
    assert kinds["empty_label"]["label"] == "up"
    assert kinds["label_name"]["label"] == "x" * 64 + "..."
    assert kinds["outside_labels"]["detail"].startswith("1 audio files directly in")
    assert stats["speakers"] is not None and sum(stats["speakers"]["per_split"].values()) == 4


def test_data_stats_gives_the_total_duration_in_a_unit_that_shows_it(tmp_path):
    """The summary gave minutes to one decimal, so a dataset of two 1 s clips read '0.0 min'."""
    for label in ("yes", "no"):
        write_wav(tmp_path / label / "a.wav", word_audio("up", np.random.default_rng(6)), SAMPLE_RATE)
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == f"{tmp_path}: 2 files, 2.0 s"
    assert [duration_text(s) for s in (0.0, 59.9, 59.96, 90.0, 3599.0, 5400.0, 36000.0)] == [
        "0.0 s", "59.9 s", "1.0 min", "1.5 min", "1.0 h", "1.5 h", "10.0 h"]


def test_data_stats_flags_a_label_recorded_mostly_at_a_rate_without_the_top_bands(tmp_path):
    """One word recorded at 8 kHz among 16 kHz labels: each file was a wrong_rate line, but nothing said
    that the word alone has empty mel bands above 4 kHz, which a model learns as the word."""
    rng = np.random.default_rng(3)

    def clips(label: str, rates: tuple[int, ...]) -> None:
        for i, rate in enumerate(rates):
            write_wav(tmp_path / label / f"s{i}_nohash_{rate}.wav", rng.uniform(-0.3, 0.3, rate // 10), rate)

    clips("yes", (16000, 16000, 16000))
    clips("no", (8000, 8000, 16000))
    clips("_unknown_", (16000, 16000, 16000, 11025))
    low = [p for p in dataset_stats(tmp_path)["problems"] if p["kind"] == "low_band_label"]
    assert low == [{"kind": "low_band_label", "label": "no", "detail": (
        "2 of its 3 files (67%) are below 15200 Hz (8000 Hz), against 14% of the other labels' files: their mel "
        "bands above 4000 Hz (up to features.upper_hz 7600 Hz, kws-train's default) are empty, and a model can "
        "learn that as the label; record it at "
        "16000 Hz or give it clips at the other labels' rate")}]
    text = CliRunner().invoke(data_stats_cmd, [str(tmp_path)]).output
    assert "  low_band_label no: 2 of its 3 files (67%)" in text
    # for a model at 8 kHz (--rate 8000) the 16 kHz files are resampled to it: every label has every band
    assert not [p for p in dataset_stats(tmp_path, 8000)["problems"] if p["kind"] == "low_band_label"]
    clips("yes", (8000, 8000, 8000))  # now low rates are as common among the other labels: no label stands out
    assert not [p for p in dataset_stats(tmp_path)["problems"] if p["kind"] == "low_band_label"]


def test_data_stats_checks_the_top_band_of_the_config_kws_train_is_given(tmp_path):
    """The low-band check assumed kws-train's default upper_hz (7600 Hz): a user training on 8 kHz phone audio
    with --set features.upper_hz=3800 was told that the 8 kHz label's top bands are empty, which they are not."""
    rng = np.random.default_rng(4)
    data = tmp_path / "data"
    for label, rates in (("yes", (16000, 16000, 16000)), ("no", (8000, 8000, 16000))):
        for i, rate in enumerate(rates):
            write_wav(data / label / f"s{i}_nohash_.wav", rng.uniform(-0.3, 0.3, rate // 10), rate)

    def low_band(*args: str) -> list[dict]:
        res = CliRunner().invoke(data_stats_cmd, [str(data), "--json", *args])
        assert res.exit_code == 0, res.output
        return [p for p in json.loads(res.output)["problems"] if p["kind"] == "low_band_label"]

    assert [p["label"] for p in low_band()] == ["no"]
    assert low_band("--set", "features.upper_hz=3800") == []  # 8 kHz holds every band up to 3800 Hz
    config = tmp_path / "phone.yaml"
    config.write_text("features:\n  upper_hz: 3800\n")
    assert low_band("--config", str(config)) == []
    # the warning names the top band it checked against and where that came from
    config.write_text("features:\n  upper_hz: 7000\n")
    (problem,) = low_band("--config", str(config), "--set", "features.lower_hz=30")
    assert "are below 14000 Hz (8000 Hz)" in problem["detail"]
    assert f"(up to features.upper_hz 7000 Hz, from {config} + --set)" in problem["detail"]
    # a config kws-train refuses is refused here with kws-train's one line
    res = CliRunner().invoke(data_stats_cmd, [str(data), "--set", "features.upper_hz=9000"])
    assert res.exit_code == 1
    assert res.output.strip() == ("Error: config + --set: features.upper_hz must be at most sample_rate/2 "
                                  "(8000 Hz), got 9000")


def test_inspect_writes_png_and_predicts(converted_run, tmp_path):
    dist = converted_run
    rng = np.random.default_rng(5)
    write_wav(tmp_path / "c.wav", word_audio("beep", rng), SAMPLE_RATE)
    png = tmp_path / "fig.png"
    res = CliRunner().invoke(inspect_cmd, [str(tmp_path / "c.wav"), "-m", str(dist), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    assert "1.000 s, 16000 Hz, 1 ch, int16" in res.output
    assert "prediction: beep" in res.output
    data = png.read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 20000
    res = CliRunner().invoke(inspect_cmd, [str(tmp_path / "missing.wav")])
    assert res.exit_code == 1 and "no such file" in res.output
    # the figure's format is its file name's: SVG and PDF too; any other name is a usage error
    res = CliRunner().invoke(inspect_cmd, [str(tmp_path / "c.wav"), "--plot", str(tmp_path / "fig.svg")])
    assert res.exit_code == 0 and b"<svg" in (tmp_path / "fig.svg").read_bytes()[:1000]
    res = CliRunner().invoke(inspect_cmd, [str(tmp_path / "c.wav"), "--plot", str(tmp_path / "fig.PDF")])
    assert res.exit_code == 0 and (tmp_path / "fig.PDF").read_bytes()[:5] == b"%PDF-"
    res = CliRunner().invoke(inspect_cmd, [str(tmp_path / "c.wav"), "--plot", str(tmp_path / "fig.txt")])
    assert res.exit_code == 2 and "must end in .png, .svg, .pdf" in res.output
    assert not (tmp_path / "fig.txt").exists()


@pytest.mark.parametrize("samples", [1, 10, 399])
def test_inspect_plots_a_clip_shorter_than_one_spectrogram_window(samples, tmp_path):
    """Under 25 ms (400 samples at 16 kHz) the spectrogram panel was scipy's ValueError traceback."""
    write_wav(tmp_path / "short.wav", np.full(samples, 0.1, np.float32), SAMPLE_RATE)
    res = CliRunner().invoke(inspect_cmd, [str(tmp_path / "short.wav"), "--plot", str(tmp_path / "short.png")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "short.png").read_bytes()[:4] == b"\x89PNG"


def test_data_stats_counts_speakers_per_split_and_warns_without_ids(tmp_path):
    rng = np.random.default_rng(1)
    for label in ("yes", "no"):
        for s in range(10):
            for t in range(2):
                write_wav(tmp_path / label / f"spk{s}_{t}.wav", word_audio("up", rng), SAMPLE_RATE)
    plain = CliRunner().invoke(data_stats_cmd, [str(tmp_path)])
    assert plain.exit_code == 0, plain.output
    assert "40 of 40 files without a group" in plain.output
    assert "warning: no file name yields a speaker group" in plain.output
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json", "--group-pattern", "^([^_]+)_",
                                              "--validation-percentage", "20", "--testing-percentage", "20"])
    spk = json.loads(res.output)["speakers"]
    assert sum(spk["per_split"].values()) == 10 and spk["files_without_group"] == 0
    assert spk["groups_in_several_splits"] == 0 and spk["warning"] is None
    bad = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--group-pattern", "spk"])
    assert bad.exit_code == 2 and "needs a (group)" in bad.output


def test_data_stats_splits_by_the_data_values_of_its_config_unless_an_option_is_given(tmp_path):
    """--config gave data-stats its frontend, but its speaker split still used kws-train's built-in
    group_pattern and 10/10 percentages, not the config's data.* that kws-train would split by."""
    rng = np.random.default_rng(4)
    for label in ("yes", "no"):
        for s in range(10):
            write_wav(tmp_path / label / f"spk{s}_0.wav", word_audio("up", rng), SAMPLE_RATE)
    config = tmp_path / "mine.yaml"
    config.write_text("data:\n  group_pattern: '^([^_]+)_'\n  validation_percentage: 40\n"
                      "  testing_percentage: 40\n")

    def per_split(validation, testing):
        splits = [split_of_key(f"spk{s}", validation, testing) for s in range(10)]
        return {name: splits.count(name) for name in ("training", "validation", "testing")}

    spk = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json", "--config", str(config)]).output)[
        "speakers"]
    assert (spk["group_pattern"], spk["files_without_group"]) == ("^([^_]+)_", 0)
    assert spk["per_split"] == per_split(40, 40) != per_split(10, 10)
    # an option given wins over the config's value, the others still come from it
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json", "--config", str(config),
                                              "--testing-percentage", "5"])
    assert json.loads(res.output)["speakers"]["per_split"] == per_split(40, 5)
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--config", str(config), "--testing-percentage", "60"])
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == (
        "Error: Invalid value for --validation-percentage: data.validation_percentage 40 + --testing-percentage 60 "
        "must be < 100 (kws-train's rule: the rest trains)")


def test_data_stats_counts_the_folders_a_configs_wanted_words_leave_out_as_unknown(tmp_path):
    """--config's data.wanted_words were not used: a folder kws-train trains as _unknown_ was checked
    and flagged as a label of its own, and nothing said it would not be a word."""
    rng = np.random.default_rng(6)
    for label, n in (("yes", FEW_FILES), ("no", FEW_FILES), ("left", 3), ("_unknown_", 2)):
        for i in range(n):
            write_wav(tmp_path / label / f"spk{i}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    config = tmp_path / "words.yaml"
    config.write_text("data:\n  wanted_words: [yes, no]\n")
    plain = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"]).output)
    assert plain["unknown_folders"] == [] and {p["label"] for p in plain["problems"]} == {"left", "_unknown_"}
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json", "--config", str(config)])
    stats = json.loads(res.output)
    assert stats["unknown_folders"] == ["left"] and stats["labels"]["left"]["files"] == 3
    assert stats["problems"] == [{"kind": "few_files", "label": "_unknown_", "detail": "5 files (median label has 20)"}]
    text = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--config", str(config)]).output
    assert "_unknown_: kws-train trains the files of left as _unknown_ (it is not in data.wanted_words)" in text
    # a wanted word without a folder is refused as kws-train refuses it
    config.write_text("data:\n  wanted_words: [yes, stop]\n")
    stats = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json", "--config", str(config)]).output)
    assert [p["detail"] for p in stats["problems"] if p["kind"] == "not_trainable"] == [
        f"kws-train refuses the folder: {tmp_path / 'stop'}: wanted word 'stop' has no folder in {tmp_path} "
        "(folders: left, no, yes)"]


def test_data_stats_says_what_a_word_would_lack_only_of_the_wanted_words(tmp_path):
    """With data.wanted_words, a folder kws-train folds into _unknown_ (or passes by, empty) was still
    told to rename itself 'or leave it out with --words', or that 'kws-train refuses it as a wanted
    word': it is no wanted word. Those problems are now given for wanted word folders only."""
    rng = np.random.default_rng(7)
    for label, n in (("yes", FEW_FILES), ("no", FEW_FILES), (" left", FEW_FILES)):
        for i in range(n):
            write_wav(tmp_path / label / f"spk{i}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    (tmp_path / "empty").mkdir()
    config = tmp_path / "words.yaml"
    config.write_text("data:\n  wanted_words: [yes, no]\n")
    plain = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"]).output)
    assert {(p["kind"], p["label"]) for p in plain["problems"]} == {("label_name", " left"), ("empty_label", "empty")}
    stats = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json", "--config", str(config)]).output)
    assert stats["unknown_folders"] == [" left"]
    assert [p for p in stats["problems"] if p["kind"] in ("label_name", "empty_label")] == []


def test_data_stats_warns_when_the_split_leaves_validation_or_test_empty(tmp_path):
    """As kws-train would split it: one speaker group for every file leaves both empty, and says so."""
    rng = np.random.default_rng(2)
    for label in ("yes", "no"):
        for s in range(6):
            write_wav(tmp_path / label / f"spk{s}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--group-pattern", "^()"])
    assert res.exit_code == 0, res.output
    assert "training 1, validation 0, testing 0" in res.output
    assert "warning: no file falls in validation or testing: the files' 1 speaker group(s)" in res.output
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json", "--validation-percentage", "40",
                                              "--testing-percentage", "40"])
    assert json.loads(res.output)["speakers"]["split_warning"] is None


def test_data_stats_says_how_a_missing_list_file_is_filled(tmp_path):
    """validation_list.txt alone printed 'testing 0' and no word; the hash now draws the test
    speakers from the files the list leaves, and a line says so."""
    rng = np.random.default_rng(3)
    for label in ("yes", "no"):
        for s in range(30):
            write_wav(tmp_path / label / f"s{s}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    (tmp_path / "validation_list.txt").write_text("yes/s0_nohash_0.wav\nno/s0_nohash_0.wav\n")
    hashed_to_test = [s for s in range(30) if split_of_key(f"s{s}", 10, 10) == "testing"]
    assert len(hashed_to_test) == 5 and 0 not in hashed_to_test
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert ("split by validation_list.txt for validation, speaker-group hash for testing): training 24, "
            "validation 1, testing 5") in res.output
    assert (f"warning: {tmp_path / 'testing_list.txt'} is missing (validation_list.txt decides validation): testing "
            "is drawn by the speaker-group hash (data.testing_percentage 10%) from the files validation_list.txt "
            "does not name") in res.output.splitlines()
    (tmp_path / "testing_list.txt").write_text("yes/s0_nohash_0.wav\n")
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"])
    problems = json.loads(res.output)["problems"]
    assert [p["kind"] for p in problems if "named by both" in p["detail"]] == ["not_trainable"]


def test_data_stats_refuses_percentages_that_leave_nothing_to_train(tmp_path):
    """kws-train refuses validation + testing >= 100; data-stats used to split by them anyway and
    report 'training 0' as if that were the folder's fault."""
    rng = np.random.default_rng(3)
    for label in ("yes", "no"):
        write_wav(tmp_path / label / "spk0_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--validation-percentage", "60",
                                              "--testing-percentage", "50"])
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == (
        "Error: Invalid value for --validation-percentage: --validation-percentage 60 + --testing-percentage 50 "
        "must be < 100 (kws-train's rule: the rest trains)")
    assert CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--validation-percentage", "60",
                                               "--testing-percentage", "39.5"]).exit_code == 0


def test_data_stats_flags_a_label_folder_whose_files_are_all_unreadable(tmp_path):
    """kws-train refuses such a label ("no readable training clips for wanted word"); data-stats
    listed the unreadable files but left the label out of its table without saying it is unusable."""
    rng = np.random.default_rng(4)
    for label in ("yes", "no"):
        for i in range(3):
            write_wav(tmp_path / label / f"spk{i}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    for i in range(2):
        (tmp_path / "down" / f"spk{i}_nohash_0.wav").parent.mkdir(exist_ok=True)
        (tmp_path / "down" / f"spk{i}_nohash_0.wav").write_bytes(b"RIFF....WAVEjunk")
    stats = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"]).output)
    assert {"kind": "empty_label", "label": "down",
            "detail": "none of its 2 audio files is readable (kws-train refuses it as a wanted word)"} in stats["problems"]
    assert sorted(p["path"] for p in stats["problems"] if p["kind"] == "unreadable") == [
        "down/spk0_nohash_0.wav", "down/spk1_nohash_0.wav"]


def test_data_stats_says_when_kws_train_would_refuse_the_whole_folder(tmp_path):
    """An empty folder, or one with a single label and no _unknown_, printed 'problems: none' (or
    only few_files) although kws-train refuses it; now a not_trainable problem gives kws-train's reason."""
    res = CliRunner().invoke(data_stats_cmd, [str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-2:] == [
        "problems: 1", "  not_trainable .: kws-train refuses the folder: no word folder holds a readable audio file"]
    rng = np.random.default_rng(5)
    for i in range(3):
        write_wav(tmp_path / "up" / f"spk{i}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    stats = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"]).output)
    refused = [p for p in stats["problems"] if p["kind"] == "not_trainable"]
    assert len(refused) == 1 and refused[0]["detail"].startswith(
        "kws-train refuses the folder: need at least two usable labels, found 1 (wanted: up;")
    assert stats["speakers"] is None
    for i in range(3):
        write_wav(tmp_path / "_unknown_" / f"oth{i}_nohash_0.wav", word_audio("down", rng), SAMPLE_RATE)
    stats = json.loads(CliRunner().invoke(data_stats_cmd, [str(tmp_path), "--json"]).output)
    assert "not_trainable" not in {p["kind"] for p in stats["problems"]}  # up and _unknown_: two labels
    assert sum(stats["speakers"]["per_split"].values()) == 3  # the speakers of the word (before: None)


def test_data_stats_reads_a_label_folder_that_is_a_link_as_kws_train_does(tmp_path):
    """A label folder, or a _background_noise_/ shared between datasets, that is a link to a folder:
    kws-train reads its files, but data-stats counted none of them and called the label 'none of its
    audio files is readable'. A link loop inside a label folder is listed, not entered."""
    rng = np.random.default_rng(6)
    root, shared = tmp_path / "d", tmp_path / "shared"
    for label in ("yes", "no"):
        for i in range(FEW_FILES):
            write_wav(root / label / f"s{i}_nohash_0.wav", word_audio("down", rng), SAMPLE_RATE)
    for i in range(FEW_FILES):
        write_wav(shared / "up" / f"t{i}_nohash_0.wav", word_audio("up", rng), SAMPLE_RATE)
    write_wav(shared / "noise" / "room.wav", rng.normal(0, 0.1, 3 * SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    (root / "up").symlink_to(shared / "up", target_is_directory=True)
    (root / "_background_noise_").symlink_to(shared / "noise", target_is_directory=True)
    (root / "yes" / "again").symlink_to(root, target_is_directory=True)  # a loop: not walked
    stats = json.loads(CliRunner().invoke(data_stats_cmd, [str(root), "--json"]).output)
    assert stats["problems"] == []
    assert {k: v["files"] for k, v in stats["labels"].items()} == {
        "_background_noise_": 1, "no": FEW_FILES, "up": FEW_FILES, "yes": FEW_FILES}
    assert stats["labels"]["_background_noise_"]["total_s"] == 3.0
