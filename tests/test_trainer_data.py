"""Dataset rules: labels, _unknown_ folding, split stability, lists, odd WAV formats, bad files."""
import errno
import hashlib
import io
import os
import re
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from kws.edge.audio import load_audio, read_wav, write_wav
from kws.edge.errors import os_error_line
from kws.trainer import dataset as ds
from kws.trainer.fetch import FetchError, fetch_dataset, safe_extract

SR = 16000


def _tone(n=SR, freq=440.0, amp=0.5, sr=SR):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


def _layout(root: Path, words=("yes", "no", "cat", "dog"), per=20):
    for w in words:
        for i in range(per):
            write_wav(root / w / f"{w}{i}_nohash_0.wav", _tone(freq=300 + 50 * i), SR)
    write_wav(root / "_background_noise_" / "n.wav", np.zeros(SR * 2, np.float32), SR)
    return root


def test_which_set_matches_the_speech_commands_rule():
    name = "0a7c2a8d_nohash_0.wav"
    h = int(hashlib.sha1(b"0a7c2a8d").hexdigest(), 16)
    pct = (h % (2 ** 27)) * (100.0 / (2 ** 27 - 1))
    expected = "validation" if pct < 10 else "testing" if pct < 20 else "training"
    assert ds.which_set(name, 10, 10) == expected
    # every take of one speaker lands in the same split, whatever follows _nohash_
    sets = {ds.which_set(f"speakerA_nohash_{i}.wav", 10, 10) for i in range(20)}
    assert len(sets) == 1


def test_split_is_stable_as_data_grows(tmp_path):
    root = _layout(tmp_path / "d")
    first = ds.scan_dataset(root, ["yes", "no"], 0, 0, 20, 20, seed=1)
    for i in range(20, 60):
        write_wav(root / "yes" / f"yes{i}_nohash_0.wav", _tone(), SR)
    second = ds.scan_dataset(root, ["yes", "no"], 0, 0, 20, 20, seed=1)
    before = {i.path: s for s, items in first.splits.items() for i in items}
    after = {i.path: s for s, items in second.splits.items() for i in items}
    assert all(after[p] == s for p, s in before.items())
    assert len(after) == len(before) + 40


def test_labels_unknown_and_silence(tmp_path):
    root = _layout(tmp_path / "d")
    index = ds.scan_dataset(root, ["yes", "no"], 10, 50, 10, 10, seed=0)
    assert index.labels == ["_silence_", "_unknown_", "yes", "no"]
    pool = {p for ps in index.unknown_pool.values() for p in ps}
    assert {Path(p).parent.name for p in pool} == {"cat", "dog"}
    train = index.splits["training"]
    n_wanted = sum(i.label in ("yes", "no") for i in train)
    assert sum(i.label == "_silence_" for i in train) == int(np.ceil(n_wanted * 0.10))
    assert sum(i.label == "_unknown_" for i in train) == int(np.ceil(n_wanted * 0.50))
    assert len(index.background_files) == 1


def test_no_words_means_every_folder(tmp_path):
    root = _layout(tmp_path / "d")
    index = ds.scan_dataset(root, [], 10, 10, 10, 10, seed=0)
    assert index.labels == ["_silence_", "_unknown_", "cat", "dog", "no", "yes"]


APPLEDOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X"  # the head of a ._ companion file


def test_macos_leftovers_pass_unsaid_and_an_unread_underscore_folder_is_said(tmp_path, capsys):
    """A dataset unzipped from a Mac has __MACOSX/ (a ._ companion of each file) and may have a
    .Trashes/ of clips: neither is data, and kws-train passes them by as before. A folder such as
    _silence_/ of recorded silence was passed by without a word, so a user who meant it as data never
    learned it was not read; it is now named in one warning line (an empty one, or one of notes, is not)."""
    from kws.trainer.config import load_config, with_data
    from kws.trainer.run import RunDir
    from kws.trainer.train import prepare_data

    root = _layout(tmp_path / "d")
    for w in ("yes", "cat"):
        (root / "__MACOSX" / w).mkdir(parents=True)
        (root / "__MACOSX" / w / f"._{w}0_nohash_0.wav").write_bytes(APPLEDOUBLE)
        (root / w / f"._{w}0_nohash_0.wav").write_bytes(APPLEDOUBLE)
    write_wav(root / ".Trashes" / "old_nohash_0.wav", _tone(), SR)
    write_wav(root / "_silence_" / "room_nohash_0.wav", _tone(amp=0.001), SR)
    (root / "_notes_").mkdir()
    (root / "_notes_" / "readme.txt").write_text("how we recorded\n")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 100, 10, 10, seed=0)
    files = {p for items in index.splits.values() for i in items if (p := i.path)}
    files |= {p for ps in index.unknown_pool.values() for p in ps}
    assert {Path(p).parent.name for p in files} == {"yes", "no", "cat", "dog"} and len(files) == 80
    assert index.skipped == []  # the ._ companions are passed by, not listed as unreadable
    assert index.unread == ("_silence_",)
    warning = index.unread_warning()
    assert warning == (f"warning: {root / '_silence_'}: not read: of the folders named with a leading '_' only "
                       "_background_noise_/ (noise) and _unknown_/ (other words) hold data; to use a folder's audio, "
                       "rename it without its leading '_' (a word) or move its files into _unknown_/")
    cfg = with_data(load_config(None, []), str(root), ["yes", "no"])
    prepare_data(cfg, RunDir(tmp_path / "run"), resume=False, say=lambda msg: None, quiet=True)
    err = capsys.readouterr().err
    assert warning in err.splitlines() and "MACOSX" not in err and "Trashes" not in err and "_notes_" not in err


def test_lists_are_honoured(tmp_path):
    root = _layout(tmp_path / "d", words=("yes", "no"))
    (root / "validation_list.txt").write_text("yes/yes1_nohash_0.wav\nno/no2_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/yes3_nohash_0.wav\n")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    assert index.used_lists
    names = {s: sorted(Path(i.path).name for i in items if i.path) for s, items in index.splits.items()}
    assert names["validation"] == ["no2_nohash_0.wav", "yes1_nohash_0.wav"]
    assert names["testing"] == ["yes3_nohash_0.wav"]
    assert len(names["training"]) == 37
    assert index.list_warning() is None


def test_lists_saved_with_a_byte_order_mark_keep_their_first_clip_out_of_training(tmp_path):
    root = _layout(tmp_path / "d", words=("yes", "no"))
    (root / "validation_list.txt").write_bytes("yes/yes1_nohash_0.wav\r\n".encode("utf-8-sig"))
    (root / "testing_list.txt").write_bytes("no/no2_nohash_0.wav\n".encode("utf-8-sig"))
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    names = {s: sorted(Path(i.path).name for i in items if i.path) for s, items in index.splits.items()}
    assert names["validation"] == ["yes1_nohash_0.wav"] and names["testing"] == ["no2_nohash_0.wav"]
    assert index.list_warning() is None
    (root / "testing_list.txt").write_bytes(b"no/\xff\xfe.wav\n")
    with pytest.raises(ds.DataError, match=r"testing_list.txt: not a text list \(byte 3 is not UTF-8\)"):
        ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)


def test_list_entries_that_name_no_file_are_said(tmp_path):
    """Entries for files that are not there (or written with another prefix) were dropped without a
    word, so a list that matched nothing left validation and test without their clips."""
    root = _layout(tmp_path / "d", words=("yes", "no"))
    (root / "validation_list.txt").write_text("yes/yes1_nohash_0.wav\nyes/ghost_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("/abs/no/no2_nohash_0.wav\n")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    warning = index.list_warning()
    assert warning.startswith("warning: 2 of the 3 entries of validation_list.txt/testing_list.txt name no audio")
    assert "/abs/no/no2_nohash_0.wav" in warning and "yes/ghost_nohash_0.wav" in warning
    (root / "validation_list.txt").write_text("d/yes/yes1_nohash_0.wav\n")  # relative to the wrong folder
    (root / "testing_list.txt").write_text("./no/no2_nohash_0.wav\n")  # ./ is fine
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    assert index.list_warning().startswith("warning: 1 of the 2 entries")
    assert [Path(i.path).name for i in index.splits["testing"] if i.path] == ["no2_nohash_0.wav"]
    (root / "testing_list.txt").unlink()
    assert "(every one:" in ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0).list_warning()


def _names(index: ds.DataIndex) -> dict[str, list[str]]:
    return {s: sorted(str(Path(i.path).relative_to(index.root)) for i in items if i.path)
            for s, items in index.splits.items()}


def _lists_as_speech_commands_made_them(root: Path, validation_percentage: float, testing_percentage: float):
    """validation_list.txt / testing_list.txt of every file in a label folder, by speech_commands' hash."""
    rels = sorted(f"{p.parent.name}/{p.name}" for p in root.glob("*/*.wav") if p.parent.name != ds.BACKGROUND_DIR)
    for split, name in (("validation", ds.VALIDATION_LIST), ("testing", ds.TESTING_LIST)):
        listed = [r for r in rels if ds.which_set(r, validation_percentage, testing_percentage) == split]
        (root / name).write_text("".join(r + "\n" for r in listed))


def test_one_list_file_decides_its_split_and_the_hash_draws_the_other(tmp_path, capsys):
    """With validation_list.txt alone the test split was empty, no line said so, and kws-train then
    measured no test accuracy; now the hash draws it from the files the list leaves, as it would have."""
    from kws.evaluation.datastats import speaker_stats
    from kws.trainer.config import load_config, with_data
    from kws.trainer.run import RunDir
    from kws.trainer.train import prepare_data

    root = _layout(tmp_path / "d", words=("yes", "no"), per=40)
    _lists_as_speech_commands_made_them(root, 10, 10)
    both = _names(ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0))
    assert len(both["validation"]) >= 2 and len(both["testing"]) >= 2  # else the test below shows nothing
    for gone, kept, other in ((ds.TESTING_LIST, "validation", "testing"), (ds.VALIDATION_LIST, "testing", "validation")):
        text = (root / gone).read_text()
        (root / gone).unlink()
        index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
        assert _names(index) == both  # the lists speech_commands made by the hash: the same split
        assert index.list_splits == (kept,) and index.split_source() == \
            f"{ds.LIST_OF[kept]} for {kept}, speaker-group hash for {other}"
        assert index.list_gap_warning(10, 10) == (
            f"warning: {root / gone} is missing ({ds.LIST_OF[kept]} decides {kept}): {other} is drawn by the "
            f"speaker-group hash (data.{other}_percentage 10%) from the files {ds.LIST_OF[kept]} does not name")
        assert index.empty_split_warning(10, 10) is None
        (root / gone).write_text(text)
    # the present list decides: what it names is its split, what the hash puts there trains
    (root / ds.TESTING_LIST).unlink()
    (root / ds.VALIDATION_LIST).write_text("yes/yes0_nohash_0.wav\nno/no0_nohash_0.wav\n")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    names = _names(index)
    assert names["validation"] == ["no/no0_nohash_0.wav", "yes/yes0_nohash_0.wav"]
    assert names["testing"] == [r for r in both["testing"] if r not in names["validation"]]
    assert set(both["validation"]) - set(names["validation"]) <= set(names["training"])
    assert ds.DataIndex.from_json(index.to_json()).list_splits == ("validation",)  # --resume knows it
    # a test split asked to be empty is said to be
    zero = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 0, seed=0)
    assert not zero.splits["testing"]
    assert zero.list_gap_warning(10, 0).endswith(
        "testing holds no file (data.testing_percentage is 0), so no test accuracy is measured")
    assert speaker_stats(root, r"^(.*?)_nohash_", 10, 10)["list_gap_warning"] == index.list_gap_warning(10, 10)
    cfg = with_data(load_config(None), str(root), ["yes", "no"])
    prepare_data(cfg, RunDir(tmp_path / "run"), resume=False, say=lambda msg: None, quiet=True)
    assert index.list_gap_warning(10, 10) in capsys.readouterr().err.splitlines()


def test_an_empty_list_file_leaves_its_split_empty_and_says_so(tmp_path):
    """kws-synth --testing-percent 0 writes an empty testing_list.txt: no test split, as asked; but
    nothing said so. Two empty lists name nothing and the hash splits, as before."""
    root = _layout(tmp_path / "d", words=("yes", "no"), per=40)
    hashed = _names(ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0))
    (root / ds.VALIDATION_LIST).write_text("\r\n \n")
    (root / ds.TESTING_LIST).write_text("")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    assert _names(index) == hashed and not index.used_lists and index.list_gap_warning(10, 10) is None
    (root / ds.VALIDATION_LIST).write_text("yes/yes1_nohash_0.wav\n")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    assert _names(index)["validation"] == ["yes/yes1_nohash_0.wav"] and not _names(index)["testing"]
    assert index.list_gap_warning(10, 10) == (
        f"warning: {root / ds.TESTING_LIST} is empty, so testing holds no file and no test accuracy is measured; "
        "delete the file to draw testing by the speaker-group hash instead")


def test_list_entries_as_other_systems_write_them_name_their_files(tmp_path):
    """Windows PowerShell writes UTF-16 with backslashes; macOS and Windows lists may differ in case
    (or Unicode form) from the names on disk. Each entry names its file, and a case match is said."""
    import unicodedata

    root = _layout(tmp_path / "d", words=("yes", "no"), per=4)
    (root / ds.VALIDATION_LIST).write_bytes("yes\\yes1_nohash_0.wav\r\n.\\no//no1_nohash_0.wav\r\n".encode("utf-16"))
    (root / ds.TESTING_LIST).write_text("YES/Yes2_nohash_0.wav\nyes/../no/no2_nohash_0.wav\n")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    names = _names(index)
    assert names["validation"] == ["no/no1_nohash_0.wav", "yes/yes1_nohash_0.wav"]
    assert names["testing"] == ["no/no2_nohash_0.wav", "yes/yes2_nohash_0.wav"]
    assert index.list_warning() is None
    assert index.list_case_warning() == (
        f"warning: 1 of the 4 entries of validation_list.txt/testing_list.txt match a file of {root} only when case "
        "(or Unicode form) is ignored, e.g. YES/Yes2_nohash_0.wav -> yes/yes2_nohash_0.wav; they are used as "
        "matched, but a case-sensitive tool would miss them: correct the lists")
    # macOS keeps names decomposed (e + combining accent); a list typed by hand holds the composed form
    decomposed = unicodedata.normalize("NFD", "caf\u00e9_nohash_0.wav")
    write_wav(root / "no" / decomposed, _tone(), SR)
    (root / ds.TESTING_LIST).write_text("no/caf\u00e9_nohash_0.wav\n", encoding="utf-8")
    assert _names(ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0))["testing"] == [f"no/{decomposed}"]
    # two files equal but for case: an entry matching neither exactly names no one file
    write_wav(root / "yes" / "YES3_nohash_0.wav", _tone(), SR)
    assert len(list((root / "yes").glob("*3_nohash_0.wav"))) == 2  # a case-sensitive file system
    (root / ds.TESTING_LIST).write_text("yes/Yes3_nohash_0.wav\n")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    assert not _names(index)["testing"] and "e.g. yes/Yes3_nohash_0.wav; they are ignored" in index.list_warning()
    (root / ds.TESTING_LIST).write_bytes(b"\xff\xfey\x00e")  # UTF-16 cut off mid-character
    with pytest.raises(ds.DataError, match=r"testing_list.txt: not a text list \(byte 4 is not UTF-16\)"):
        ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)


def test_a_file_named_by_both_lists_is_refused(tmp_path):
    """It went to validation without a word, and the test split silently lost it."""
    root = _layout(tmp_path / "d", words=("yes", "no"), per=4)
    (root / ds.VALIDATION_LIST).write_text("yes/yes1_nohash_0.wav\nno/no1_nohash_0.wav\nyes/ghost.wav\n")
    (root / ds.TESTING_LIST).write_text("yes/yes2_nohash_0.wav\n./yes/yes1_nohash_0.wav\nyes/ghost.wav\n")
    with pytest.raises(ds.DataError) as err:
        ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    assert str(err.value) == (f"{root}: 1 file(s) are named by both validation_list.txt and testing_list.txt (e.g. "
                              "yes/yes1_nohash_0.wav); a clip belongs to one split: take each out of one of the lists")
    (root / ds.TESTING_LIST).write_text("yes/yes2_nohash_0.wav\nNO/NO1_nohash_0.wav\n")  # the same file by case
    with pytest.raises(ds.DataError, match=r"1 file\(s\) are named by both .* \(e.g. no/no1_nohash_0.wav\)"):
        ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    (root / ds.TESTING_LIST).write_text("yes/yes2_nohash_0.wav\nyes/ghost.wav\n")  # no file: only a miss
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    assert index.list_warning().startswith("warning: 1 of the 4 entries")


def test_a_file_name_with_a_line_break_is_refused(tmp_path):
    """speech_commands' rule (re.sub(r'_nohash_.*$', '', name): '.' stops at a newline) made 'a\\nb' the
    speaker of a\\nb_nohash_0.wav; kws-train's search found none and split the file on its own, and no
    list file can name it. Such a name is refused, the file kept; background noise is never split."""
    from kws.evaluation.datastats import dataset_stats

    root = _layout(tmp_path / "d", words=("yes", "no", "cat"), per=4)
    for folder in ("yes", "cat"):  # a wanted word, and a folder folded into _unknown_
        odd = root / folder / "a\nb_nohash_0.wav"
        write_wav(odd, _tone(), SR)
        with pytest.raises(ds.DataError) as err:
            ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
        assert str(err.value) == (f"{root}/{folder}/a\\nb_nohash_0.wav: a line break in the file's name, which "
                                  "validation_list.txt/testing_list.txt cannot name and speech_commands' split rule "
                                  "reads differently; rename it")
        assert odd.is_file()
        problems = dataset_stats(root)["problems"]
        assert [p["kind"] for p in problems if "line break" in p["detail"]] == ["not_trainable"]
        odd.rename(root / ds.BACKGROUND_DIR / "a\rb.wav")
    background = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0).background_files
    assert sorted(Path(p).name for p in background) == ["a\rb.wav", "n.wav"]


@pytest.mark.parametrize("words, message", [
    (["yes", "maybe"], "wanted word 'maybe' has no folder"),
    (["yes", ""], "empty word"),
    (["yes"], "need at least two usable labels"),
])
def test_bad_datasets_are_one_line_errors(tmp_path, words, message):
    root = _layout(tmp_path / "d", words=("yes",))
    with pytest.raises(ds.DataError) as err:
        ds.scan_dataset(root, words, 10, 10, 10, 10, seed=0)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_folder_without_label_folders_says_so(tmp_path):
    """`kws-train --data data/yes` (one word's clips instead of the dataset) and an empty folder said
    'need at least two usable labels, found 0 (wanted: ; ...)'; now the error says what the folder
    holds and what --data takes."""
    clips = _layout(tmp_path / "d", words=("yes",), per=3) / "yes"
    with pytest.raises(ds.DataError) as err:
        ds.scan_dataset(clips, [], 10, 10, 10, 10, seed=0)
    assert str(err.value) == (f"{clips}: 3 audio files directly in it but no label folder; --data takes a folder "
                              "with one sub-folder of audio files per label (e.g. yes/*.wav and no/*.wav inside "
                              "it); give the folder above it, or move the files into label folders")
    empty = tmp_path / "empty"
    (empty / ds.BACKGROUND_DIR).mkdir(parents=True)  # a '_' folder is no label folder
    for words in ([], ["yes", "no"]):
        with pytest.raises(ds.DataError) as err:
            ds.scan_dataset(empty, words, 10, 10, 10, 10, seed=0)
        assert str(err.value) == (f"{empty}: no label folder; --data takes a folder with one sub-folder of audio "
                                  "files per label (e.g. yes/*.wav and no/*.wav inside it)")


def test_a_wanted_word_finds_its_folder_written_in_another_unicode_form(tmp_path):
    """macOS keeps a folder 'café' as e + a combining accent (NFD); --words café typed in a terminal
    is one character (NFC): the two print alike, and kws-train said the word had no folder while
    listing 'café' among the folders. The folder is now found, its clips keep the word as typed, and
    two words naming one folder are refused rather than trained as two classes of the same clips."""
    import unicodedata

    typed, stored = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    root = _layout(tmp_path / "d", words=("yes", stored, "dog"), per=5)
    index = ds.scan_dataset(root, ["yes", typed], 0, 0, 0, 0, seed=0)
    assert index.labels == ["_silence_", "_unknown_", "yes", typed]
    assert sorted(Path(i.path).parent.name for i in index.splits["training"] if i.label == typed) == [stored] * 5
    assert {Path(p).parent.name for p in index.unknown_pool["training"]} == {"dog"}  # not the word's folder
    for words in (["yes", typed, stored], ["yes", "yes "]):  # "yes " as a config file may hold it
        with pytest.raises(ds.DataError, match=r"--words names this folder twice .*; give each word once$"):
            ds.scan_dataset(root, words, 0, 0, 0, 0, seed=0)


def test_a_label_no_manifest_could_hold_is_refused_before_training(tmp_path):
    """A 70-character folder name trained and converted, then no tool could load the model (labels
    are 1..64 printable characters in a manifest): now the folder is named at once."""
    long_name = "a" * 70
    root = _layout(tmp_path / "d", words=("yes", "no", long_name))
    with pytest.raises(ds.DataError) as err:
        ds.scan_dataset(root, [], 10, 10, 10, 10, seed=0)
    assert str(err.value).startswith(f"{root / long_name}: a label must be 1..64 printable characters")
    assert "--words" in str(err.value)
    index = ds.scan_dataset(root, ["yes", "no"], 10, 10, 10, 10, seed=0)  # left out: an _unknown_ word
    assert index.labels == ["_silence_", "_unknown_", "yes", "no"]


def test_a_label_folder_with_a_newline_in_its_name_is_named_on_one_line(tmp_path):
    """The refusal printed the folder name as it is, so a newline in it split the error over two lines."""
    root = _layout(tmp_path / "d", words=("yes", "no", "bad\nname\tx"))
    with pytest.raises(ds.DataError) as err:
        ds.scan_dataset(root, [], 10, 10, 10, 10, seed=0)
    assert str(err.value).startswith(f"{root}/bad\\nname\\tx: a label must be 1..64 printable characters")
    assert "\n" not in str(err.value)


def test_a_label_folder_with_a_space_at_either_end_is_refused_before_training(tmp_path):
    """'no ' trained, then labels.txt read back as 'no' and --resume refused every checkpoint."""
    root = _layout(tmp_path / "d", words=("yes", "no "))
    with pytest.raises(ds.DataError) as err:
        ds.scan_dataset(root, [], 10, 10, 10, 10, seed=0)
    assert str(err.value).startswith(f"{root / 'no '}: a label must be 1..64 printable characters with no space")


def test_a_file_name_that_is_not_utf8_is_split_like_any_other(tmp_path):
    """Names copied from old archives hold bytes that are not UTF-8 (Python keeps them as surrogates):
    hashing the name for its split was a UnicodeEncodeError for the whole dataset."""
    import os

    root = _layout(tmp_path / "d", words=("yes", "no"))
    odd = os.path.join(os.fsencode(root / "yes"), b"sp\xffk_nohash_9.wav")
    with open(odd, "wb") as f:
        f.write((root / "yes" / "yes1_nohash_0.wav").read_bytes())
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    placed = [s for s, items in index.splits.items() for i in items if i.path and "sp\udcffk" in i.path]
    assert len(placed) == 1
    assert placed[0] == ds.split_of_key("sp\udcffk", 10, 10)


def test_a_relative_data_folder_is_saved_absolute_so_resume_finds_it_from_anywhere(tmp_path, monkeypatch):
    """split.json kept 'root': 'mid' as typed: --resume from another folder said the data was gone, or
    trained on another folder's clips of the same names without a word."""
    import json

    from kws.trainer.config import load_config, with_data

    root = _layout(tmp_path / "d", words=("yes", "no"))
    monkeypatch.chdir(tmp_path)
    cfg = with_data(load_config(None), "d", ["yes", "no"], ["d/_background_noise_"])
    assert cfg.data.path == str(root) and cfg.data.negatives == (str(root / "_background_noise_"),)
    index = ds.scan_dataset(Path("d"), ["yes", "no"], 10, 10, 10, 10, seed=0)
    ds.save_index(index, tmp_path / "split.json")
    assert json.loads((tmp_path / "split.json").read_text())["root"] == str(root)
    monkeypatch.chdir(root / "yes")
    again = ds.load_index(tmp_path / "split.json")
    assert all(Path(i.path).is_file() for items in again.splits.values() for i in items if i.path)


def test_a_kws_synth_dataset_stopped_before_it_finished_is_refused_with_the_way_on(tmp_path):
    """An interrupted kws-synth folder has clips but no split lists yet: it trained on a hash split
    and kws data-stats said 'problems: none'."""
    from kws.evaluation.datastats import dataset_stats

    root = _layout(tmp_path / "d", words=("yes", "no"))
    (root / ds.SYNTH_STATE_DIR).mkdir()
    with pytest.raises(ds.DataError, match="stopped before it finished .* run the same kws-synth command again"):
        ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0)
    problems = dataset_stats(root)["problems"]
    assert [p["kind"] for p in problems if "kws-synth" in p["detail"]] == ["not_trainable"]
    (root / ds.SYNTH_META_CSV).write_text("path,label\n")  # written last, once it has finished
    assert ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0).labels[-2:] == ["yes", "no"]


def test_missing_folder_and_empty_word(tmp_path):
    with pytest.raises(ds.DataError, match="no such data folder"):
        ds.scan_dataset(tmp_path / "nope", [], 10, 10, 10, 10, seed=0)
    root = _layout(tmp_path / "d", words=("yes", "no"))
    (root / "empty").mkdir()
    with pytest.raises(ds.DataError, match="wanted word 'empty' has no audio files"):
        ds.scan_dataset(root, ["yes", "empty"], 10, 10, 10, 10, seed=0)


def test_every_wav_format_is_converted(tmp_path):
    base = _tone(n=44100, freq=440, amp=0.5, sr=44100)
    cases = {
        "u8.wav": (np.round(base * 127 + 128).astype(np.uint8), 44100),
        "i16.wav": (np.round(base * 32767).astype(np.int16), 44100),
        "i32.wav": (np.round(base * 2147483647).astype(np.int32), 44100),
        "f32.wav": (base, 44100),
        "stereo.wav": (np.stack([base, base], axis=1), 44100),
        "8k.wav": (_tone(n=8000, freq=440, amp=0.5, sr=8000), 8000),
    }
    for name, (data, rate) in cases.items():
        wavfile.write(tmp_path / name, rate, data)
    # 24-bit PCM, written by hand (scipy writes no 24-bit)
    pcm24 = np.round(base * 8388607).astype(np.int32)
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in pcm24)
    import wave
    with wave.open(str(tmp_path / "i24.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(3), w.setframerate(44100), w.writeframes(raw)
    reference = _tone(n=SR, freq=440, amp=0.5)
    for name in list(cases) + ["i24.wav"]:
        audio, info = load_audio(tmp_path / name, SR)
        assert abs(len(audio) - SR) <= 1, name
        mid = slice(1000, 15000)  # away from the resampler's edges
        assert np.max(np.abs(audio[mid] - reference[mid])) < 0.02, name
    assert read_wav(tmp_path / "i24.wav")[1].sample_format == "int24"
    assert read_wav(tmp_path / "stereo.wav")[1].channels == 2


def test_the_summary_names_only_the_rates_it_converted():
    from collections import Counter

    report = ds.LoadReport(total=175, rates=Counter({16000: 174, 44100: 1}))
    assert "resampled to 16000 Hz from 44100 Hz x1" in report.summary(16000)
    assert "16000 Hz x174" not in report.summary(16000)


def test_a_run_that_fails_on_unreadable_clips_points_to_no_list_it_removed(tmp_path, capsys):
    """Every 'yes' clip unreadable: the one-line error names them, and the run folder (with the list
    a warning would have pointed to) is gone."""
    from kws.trainer.config import load_config, with_data
    from kws.trainer.train import train

    root = _layout(tmp_path / "d", words=("yes", "no"), per=6)
    for f in (root / "yes").iterdir():
        f.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = tmp_path / "run"
    with pytest.raises(ds.DataError) as err:
        train(with_data(load_config(None, ["train.epochs=1"]), str(root), ["yes", "no"], []), out=out, quiet=True)
    message = str(err.value)
    assert "no readable training clips for wanted word 'yes'" in message and "skipped 6 unreadable" in message
    assert not out.exists() and "full list" not in capsys.readouterr().err


def test_unreadable_files_are_listed_and_skipped(tmp_path):
    root = _layout(tmp_path / "d", words=("yes", "no"))
    (root / "yes" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    (root / "yes" / "notes.txt").write_text("hello")
    (root / "yes" / "gone.wav").symlink_to(tmp_path / "elsewhere" / "gone.wav")  # a link to nothing
    (root / "yes" / "copied.wav").write_bytes(b"")  # a copy that failed: libsndfile said 'Format not recognised'
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 0, 0, seed=0)
    assert [(Path(p).name, why) for p, why in index.skipped] == [
        ("gone.wav", f"a link to {tmp_path / 'elsewhere' / 'gone.wav'}, which does not exist"),
        ("notes.txt", "not an audio file (.flac, .mp3, .oga, .ogg, .opus, .wav, .wave)")]
    paths = [i.path for i in index.splits["training"]]
    clips, report = ds.load_clips(paths, SR, SR)
    why = {Path(p).name: why for p, why in report.skipped}
    assert sorted(why) == ["broken.wav", "copied.wav"]
    assert why["copied.wav"] == "not a readable audio file (an empty file: 0 bytes)"
    assert len(clips) == len(paths) - 2
    assert "skipped 2 unreadable" in report.summary(SR)


def test_wavs_cut_short_of_their_header_are_named_in_the_load_summary(tmp_path):
    """A WAV copied or recorded only in part still loads (libsndfile reads what is there), but the
    summary says so and names one, where it used to train on the stub without a word."""
    root = _layout(tmp_path / "d", words=("yes", "no"))
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 0, 0, seed=0)
    paths = sorted(i.path for i in index.splits["training"])
    whole = Path(paths[0]).read_bytes()
    Path(paths[0]).write_bytes(whole[:44 + 3200])  # 100 ms of what the header declares
    clips, report = ds.load_clips(paths, SR, SR)
    assert len(clips) == len(paths) and report.truncated == [paths[0]]
    assert f"1 audio file cut short (copied or recorded only in part), used as it is (first: {paths[0]}; " \
        in report.summary(SR)
    Path(paths[0]).write_bytes(whole)
    assert ds.load_clips(paths, SR, SR)[1].truncated == []


def test_silent_clips_and_a_background_folder_of_silence_are_said(tmp_path):
    """A silent 'yes' (a recording that failed) trained as 'yes', and a _background_noise_/ of silent
    files trained as no background at all would, with no word from kws-train (only kws data-stats,
    if run, flagged them); a background file shorter than a clip is looped, said too."""
    root = _layout(tmp_path / "d", words=("yes", "no"), per=3)  # its one background file is silent
    write_wav(root / "yes" / "failed.wav", np.full(SR, 1e-4, np.float32), SR)  # -80 dBFS
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 0, 0, seed=0)
    clips, report = ds.load_clips([i.path for i in index.splits["training"]], SR, SR)
    assert report.summary(SR) == (f"read 7 audio files; 1 silent (peak below -50 dBFS) yet trained as their "
                                  f"folder's label (first: {root / 'yes' / 'failed.wav'}; kws data-stats lists them)")
    backgrounds, _ = ds.load_background(index.background_files, SR)
    assert ds.silent_background_warning(root, backgrounds) == (
        f"warning: {root / '_background_noise_'}: its 1 readable file(s) are all silent (peak below -50 dBFS), so "
        "_silence_ clips are silence and no audible noise is mixed in; put recordings of the rooms the model will "
        "hear in it (kws data-stats lists the silent files)")
    backgrounds.append(_tone(n=SR // 10))  # 0.1 s of sound: one file is heard, looped
    assert ds.silent_background_warning(root, backgrounds) is None
    assert ds.background_note(backgrounds, SR) == "2 background files (1 silent, 1 shorter than a clip, looped)"
    assert ds.background_note(backgrounds[1:], SR // 20) == "1 background files"


def test_loudest_window_keeps_the_word_of_a_long_clip():
    audio = np.zeros(SR * 3, np.float32)
    audio[SR + 4000:SR + 8000] = 0.5
    clip = ds.loudest_window(audio, SR)
    assert len(clip) == SR and np.sum(np.abs(clip) > 0.4) == 4000


# --- archives and URLs -------------------------------------------------------------------

def _tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _wav_bytes():
    buf = io.BytesIO()
    wavfile.write(buf, SR, (_tone() * 30000).astype(np.int16))
    return buf.getvalue()


def test_unsafe_archives_are_refused(tmp_path):
    escape = tarfile.TarInfo("../evil.wav")
    escape.size = 3
    (tmp_path / "a.tar.gz").write_bytes(_tar_bytes([(escape, b"abc")]))
    with pytest.raises(FetchError, match="escape"):
        safe_extract(tmp_path / "a.tar.gz", tmp_path / "out1", 10 ** 9)
    link = tarfile.TarInfo("data/link")
    link.type, link.linkname = tarfile.SYMTYPE, "../../etc/passwd"
    (tmp_path / "b.tar.gz").write_bytes(_tar_bytes([(link, None)]))
    with pytest.raises(FetchError, match="points outside"):
        safe_extract(tmp_path / "b.tar.gz", tmp_path / "out2", 10 ** 9)
    big = tarfile.TarInfo("data/yes/big.wav")
    big.size = 5000
    (tmp_path / "c.tar.gz").write_bytes(_tar_bytes([(big, b"x" * 5000)]))
    with pytest.raises(FetchError, match="over the limit"):
        safe_extract(tmp_path / "c.tar.gz", tmp_path / "out3", 1000)
    assert not (tmp_path / "evil.wav").exists()


@pytest.fixture()
def http_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_dataset_url_is_downloaded_cached_and_unpacked(http_root, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "cache"))
    root, base = http_root
    wav = _wav_bytes()
    members = []
    for w in ("yes", "no"):
        info = tarfile.TarInfo(f"mywords/{w}/a_nohash_0.wav")
        info.size = len(wav)
        members.append((info, wav))
    (root / "words.tar.gz").write_bytes(_tar_bytes(members))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mywords/yes/a_nohash_0.wav", wav)
        zf.writestr("mywords/no/b_nohash_0.wav", wav)
        zf.writestr("__MACOSX/mywords/yes/._a_nohash_0.wav", APPLEDOUBLE)  # a Mac's zip: not a second folder
        zf.writestr(".DS_Store", b"\x00")
    (root / "words.zip").write_bytes(buf.getvalue())

    data = fetch_dataset(f"{base}/words.tar.gz", max_mb=10, quiet=True)
    assert sorted(p.name for p in data.iterdir()) == ["no", "yes"]
    (root / "words.tar.gz").unlink()  # the second call must come from the cache
    assert fetch_dataset(f"{base}/words.tar.gz", max_mb=10, quiet=True) == data
    zdata = fetch_dataset(f"{base}/words.zip", max_mb=10, quiet=True)
    assert zdata.name == "mywords" and (zdata / "yes" / "a_nohash_0.wav").read_bytes() == wav
    with pytest.raises(FetchError, match="download failed"):
        fetch_dataset(f"{base}/missing.tar.gz", max_mb=10, quiet=True)


def _speaker_layout(root: Path, speakers=12, takes=3, words=("yes", "no", "cat")):
    for w in words:
        for s in range(speakers):
            for t in range(takes):
                write_wav(root / w / f"spk{s:02d}_{t}.wav", _tone(freq=200 + 40 * s), SR)
    return root


def test_group_pattern_keeps_each_speaker_on_one_side(tmp_path):
    root = _speaker_layout(tmp_path / "d")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 100, 20, 20, seed=0, group_pattern=r"^([^_]+)_")
    side = {}
    for split, items in index.splits.items():
        for item in items:
            if item.path:
                assert item.group == Path(item.path).name.split("_")[0]
                assert side.setdefault(item.group, split) == split, f"{item.group} on two sides"
    info = index.speakers()
    assert sum(info["per_split"].values()) == 12 and min(info["per_split"].values()) >= 1
    assert info["files_without_group"] == 0 and info["groups_in_several_splits"] == 0
    assert index.speaker_warning() is None
    # the split.json round trip keeps the groups
    again = ds.DataIndex.from_json(index.to_json())
    assert again.splits == index.splits and again.to_json()["speakers"] == info


def test_no_speaker_id_in_the_file_names_is_said_in_one_line(tmp_path):
    root = _speaker_layout(tmp_path / "d")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 20, 20, seed=0)  # default: _nohash_ rule
    warning = index.speaker_warning()
    assert warning and "\n" not in warning
    assert "no file name yields a speaker group" in warning and "data.group_pattern" in warning
    assert "overstate accuracy on new voices" in warning
    assert index.speakers()["files_without_group"] == index.speakers()["files"] == 72


def test_nohash_split_is_unchanged_by_the_group_rule(tmp_path):
    root = _layout(tmp_path / "d", per=30)
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 20, 20, seed=0)
    for split, items in index.splits.items():
        for item in items:
            assert ds.which_set(item.path, 20, 20) == split
            assert item.group == Path(item.path).name.split("_nohash_")[0]


def test_list_files_that_mix_speakers_are_flagged(tmp_path):
    root = _speaker_layout(tmp_path / "d", speakers=4, takes=2)
    (root / "testing_list.txt").write_text("yes/spk00_0.wav\n")  # spk00_1 stays in training
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0, group_pattern=r"^([^_]+)_")
    assert index.speakers()["groups_in_several_splits"] == 1
    assert "1 speaker group(s) are in more than one split (e.g. spk00)" in index.speaker_warning()


def test_a_split_the_hash_leaves_empty_is_said_in_one_line(tmp_path, capsys):
    """A group_pattern that makes one group of every file (or too few speakers) leaves validation
    and test empty; before, kws-train then picked its best epoch on training accuracy, printed the
    training figures as "val", and no line said why."""
    from kws.trainer.config import load_config, with_data
    from kws.trainer.run import RunDir
    from kws.trainer.train import prepare_data

    root = _speaker_layout(tmp_path / "d", speakers=6, takes=1)
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0, group_pattern=r"^()")
    assert index.speakers()["per_split"] == {"training": 1, "validation": 0, "testing": 0}
    warning = index.empty_split_warning(10, 10)
    assert warning == ("warning: no file falls in validation or testing: the files' 1 speaker group(s) "
                       "(data.group_pattern '^()') all hash to other splits, so the best epoch is picked by training "
                       "accuracy and no test accuracy is measured; record more speakers, or check that "
                       "data.group_pattern's first group is the speaker id")
    assert index.empty_split_warning(0, 0) is None  # asked for no validation or test: nothing to say
    assert "no file falls in testing: the files' 1 speaker" in index.empty_split_warning(0, 10)
    assert ds.scan_dataset(root, ["yes", "no"], 0, 0, 40, 40, seed=0, group_pattern=r"^([^_]+)_"
                           ).empty_split_warning(40, 40) is None  # six speakers, 80% asked: both get some
    (root / "testing_list.txt").write_text("yes/spk00_0.wav\n")  # a list decides its split: not second-guessed
    assert "no file falls in validation: the files' 1 speaker group(s)" in ds.scan_dataset(
        root, ["yes", "no"], 0, 0, 10, 10, seed=0, group_pattern=r"^()").empty_split_warning(10, 10)
    (root / "validation_list.txt").write_text("no/spk00_0.wav\n")
    # lists that leave a wanted word out of their split: the split line said "validation 1" and nothing
    # said that the best epoch was picked without hearing 'yes' (kws-synth --per-word 10 wrote such lists)
    listed = ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0, group_pattern=r"^()")
    gaps = ("warning: validation holds no clip of 'yes' (validation_list.txt decides it), so the best epoch is "
            "picked without hearing it; testing holds no clip of 'no' (testing_list.txt decides it), so test "
            "accuracy says nothing of it; ")
    assert listed.empty_split_warning(10, 10) == gaps + "give each word clips from more speakers"
    (root / ds.SYNTH_META_CSV).write_text("path,label\n")
    assert listed.empty_split_warning(10, 10) == gaps + ("rerun kws-synth with a larger --per-word, so that the "
                                                         "held-out voices say every word")
    (root / "validation_list.txt").write_text("no/spk00_0.wav\nyes/spk01_0.wav\n")
    (root / "testing_list.txt").write_text("yes/spk00_0.wav\nno/spk01_0.wav\n")
    assert ds.scan_dataset(root, ["yes", "no"], 0, 0, 10, 10, seed=0, group_pattern=r"^()").empty_split_warning(10, 10) is None
    (root / ds.SYNTH_META_CSV).unlink()
    (root / "testing_list.txt").unlink()
    (root / "validation_list.txt").unlink()
    cfg = with_data(load_config(None, ["data.group_pattern=^()"]), str(root), ["yes", "no"])
    prepare_data(cfg, RunDir(tmp_path / "run"), resume=False, say=lambda msg: None, quiet=True)
    assert warning in capsys.readouterr().err.splitlines()


def test_data_that_is_a_file_is_not_called_missing(tmp_path):
    """--data words.tar.gz (a local archive) said 'no such data folder' though the file is there."""
    from click.testing import CliRunner

    from kws.trainer.cli import main

    archive = tmp_path / "words.tar.gz"
    archive.write_bytes(_words_archive(["yes", "no"]))
    with pytest.raises(ds.DataError) as err:
        ds.scan_dataset(archive, [], 0, 0, 10, 10, seed=0)
    assert str(err.value) == (f"{archive}: not a folder; --data (data.path) takes a folder with one sub-folder of "
                              "audio per label, or an http(s) URL of a .tar.gz/.zip (unpack a local archive first)")
    res = CliRunner().invoke(main, ["--data", str(archive), "--out", str(tmp_path / "run"), "-q"])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [f"Error: {err.value}"]
    assert not (tmp_path / "run").exists()
    with pytest.raises(ds.DataError, match="no such data folder"):
        ds.scan_dataset(tmp_path / "missing", [], 0, 0, 10, 10, seed=0)


def _words_archive(words) -> bytes:
    wav = _wav_bytes()
    members = []
    for w in words:
        info = tarfile.TarInfo(f"mywords/{w}/a_nohash_0.wav")
        info.size = len(wav)
        members.append((info, wav))
    return _tar_bytes(members)


def test_cached_download_is_revalidated_and_refresh_forces_it(http_root, tmp_path, monkeypatch, capsys):
    """A changed archive at the same URL is used, not the stale cache; an unchanged one is reused and
    said so; --refresh downloads again."""
    import os
    import time

    from kws.trainer.fetch import DownloadOptions

    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "cache"))
    root, base = http_root
    archive = root / "words.tar.gz"
    archive.write_bytes(_words_archive(["yes", "no"]))
    old = time.time() - 1000
    os.utime(archive, (old, old))
    first = fetch_dataset(f"{base}/words.tar.gz", max_mb=10, quiet=False)
    assert sorted(p.name for p in first.iterdir()) == ["no", "yes"]

    assert fetch_dataset(f"{base}/words.tar.gz", max_mb=10, quiet=False) == first
    assert "using the cached copy" in capsys.readouterr().err

    archive.write_bytes(_words_archive(["yes", "no", "maybe"]))  # changed on the server, same URL
    second = fetch_dataset(f"{base}/words.tar.gz", max_mb=10, quiet=False)
    assert sorted(p.name for p in second.iterdir()) == ["maybe", "no", "yes"]
    assert "changed since it was cached" in capsys.readouterr().err

    fetch_dataset(f"{base}/words.tar.gz", max_mb=10, quiet=False, options=DownloadOptions(refresh=True))
    assert "using the cached copy" not in capsys.readouterr().err


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullFile:
    """A file whose every write fails as on a full disk (write() names no file)."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        _no_space()

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _fill_disk_at(step: str, monkeypatch) -> None:
    """Make the download's ``step`` (write, fsync or the rename into the cache) fail with ENOSPC."""
    if step == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FullFile(real_fdopen(fd, *a, **k)))
    elif step == "fsync":
        monkeypatch.setattr(os, "fsync", _no_space)
    else:
        real_replace = os.replace
        monkeypatch.setattr(os, "replace", lambda src, dst: _no_space() if ".download-" in str(src)
                            else real_replace(src, dst))


def _served_words(http_root, tmp_path, monkeypatch) -> tuple[Path, bytes, str]:
    """(the KWS_CACHE_DIR set for the test, the archive's bytes, its URL): a yes/no archive on the
    local server."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("KWS_CACHE_DIR", str(cache))
    root, base = http_root
    body = _words_archive(["yes", "no"])
    (root / "words.tar.gz").write_bytes(body)
    return cache, body, f"{base}/words.tar.gz"


@pytest.mark.parametrize("step", ["write", "fsync", "replace"])
def test_a_full_disk_while_downloading_names_the_cache_not_the_url(http_root, tmp_path, monkeypatch, step):
    """kws-train --data URL on a full disk: one line naming the cache being written (then the URL), not
    'download failed' as if the network had; no partial download is left in the cache."""
    cache, body, url = _served_words(http_root, tmp_path, monkeypatch)
    _fill_disk_at(step, monkeypatch)
    with pytest.raises(OSError) as err:
        fetch_dataset(url, max_mb=10, quiet=True)
    assert not isinstance(err.value, FetchError)
    named = cache / "downloads" / (hashlib.sha256(body).hexdigest() + ".tar.gz") if step == "replace" \
        else cache / "downloads"
    assert os_error_line(err.value) == f"{named}: No space left on device (downloading {url})"
    assert list((cache / "downloads").iterdir()) == []
    assert not (cache / "datasets").exists()


def test_a_full_disk_is_said_even_where_a_cached_copy_exists(http_root, tmp_path, monkeypatch):
    """A changed archive that cannot be saved is an error, not a quiet fall-back to the stale copy
    (that is for a server that cannot be reached); the cached copy and its index stay as they were."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("KWS_CACHE_DIR", str(cache))
    root, base = http_root
    archive = root / "words.tar.gz"
    archive.write_bytes(_words_archive(["yes", "no"]))
    old = archive.stat().st_mtime - 1000
    os.utime(archive, (old, old))
    first = fetch_dataset(f"{base}/words.tar.gz", max_mb=10, quiet=True)
    downloads = {p.name: p.read_bytes() for p in (cache / "downloads").iterdir()}
    archive.write_bytes(_words_archive(["yes", "no", "maybe"]))  # changed on the server
    _fill_disk_at("write", monkeypatch)
    with pytest.raises(OSError, match="No space left on device"):
        fetch_dataset(f"{base}/words.tar.gz", max_mb=10, quiet=True)
    assert {p.name: p.read_bytes() for p in (cache / "downloads").iterdir()} == downloads
    assert sorted(p.name for p in first.iterdir()) == ["no", "yes"]


def test_a_full_disk_while_unpacking_names_the_dataset_folder(http_root, tmp_path, monkeypatch):
    """The archive downloaded, but its clips do not fit: the line names the dataset's folder in the
    cache (not the temporary one, removed with everything unpacked so far)."""
    import tarfile as tarfile_module

    cache, body, url = _served_words(http_root, tmp_path, monkeypatch)
    monkeypatch.setattr(tarfile_module.TarFile, "makefile", _no_space)
    with pytest.raises(OSError) as err:
        fetch_dataset(url, max_mb=10, quiet=True)
    target = cache / "datasets" / hashlib.sha256(body).hexdigest()
    assert os_error_line(err.value) == f"{target}: No space left on device (unpacking {url})"
    assert list((cache / "datasets").iterdir()) == []


@pytest.mark.parametrize("failing", ["temporary folder", "datasets folder"])
def test_a_cache_that_cannot_take_the_unpacking_folder_names_the_dataset_folder(http_root, tmp_path, monkeypatch,
                                                                               failing):
    """The archive downloaded, but the folder it is unpacked into could not be made (a full disk, a
    datasets folder linked to a drive that is not mounted): the bare OSError named the temporary
    .unpack-* folder, or the datasets folder, and said nothing of the URL; now it is the line a full
    disk while unpacking gives."""
    import tempfile

    cache, body, url = _served_words(http_root, tmp_path, monkeypatch)
    if failing == "temporary folder":
        def mkdtemp(dir, prefix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(dir, prefix + "k2x9q"))
        monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
        reason = os.strerror(errno.ENOSPC)
    else:
        cache.mkdir()
        (cache / "datasets").symlink_to(tmp_path / "unmounted")  # a link to a drive that is not there
        reason = os.strerror(errno.EEXIST)
    with pytest.raises(OSError) as err:
        fetch_dataset(url, max_mb=10, quiet=True)
    target = cache / "datasets" / hashlib.sha256(body).hexdigest()
    assert os_error_line(err.value) == f"{target}: {reason} (unpacking {url})"


def test_archive_entry_count_is_capped_and_refused_archives_leave_the_cache(http_root, tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "cache"))
    root, base = http_root
    empties = []
    for i in range(3000):  # 3000 empty files: a few KB compressed, under a 1 MB cap by size alone
        info = tarfile.TarInfo(f"bomb/{i}.wav")
        info.size = 0
        empties.append((info, b""))
    (root / "bomb.tar.gz").write_bytes(_tar_bytes(empties))
    with pytest.raises(FetchError, match="over the limit"):
        fetch_dataset(f"{base}/bomb.tar.gz", max_mb=1, quiet=True)
    (root / "text.tar.gz").write_text("not an archive at all\n")  # one line naming the URL, not the cache file
    with pytest.raises(FetchError) as err:
        fetch_dataset(f"{base}/text.tar.gz", max_mb=1, quiet=True)
    message = str(err.value)
    assert message.startswith(f"{base}/text.tar.gz: not a .tar.gz or .zip archive") and "\n" not in message
    assert message.endswith("(removed from the cache)")
    cache = tmp_path / "cache"
    assert [p.name for p in (cache / "downloads").iterdir() if p.name != "index.json"] == []
    assert not any((cache / "datasets").iterdir())
    with pytest.raises(FetchError, match="more than 100 entries"):
        safe_extract(root / "bomb.tar.gz", tmp_path / "out", 10 ** 9, max_entries=100)


def test_a_resumed_run_redraws_unknown_words_from_the_same_clips(tmp_path):
    """Each epoch redraws training _unknown_ clips from a seeded sample of the pool; a resumed run
    must draw from the very same clips. split.json kept only the clips that were read, so with a
    pool larger than the sample (speech_commands: thousands of other words) --resume sampled
    again from that cut pool and trained on other _unknown_ clips than the run it continued."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from audio_fixtures import make_dataset
    from kws.trainer.config import load_config, with_data
    from kws.trainer.run import RunDir
    from kws.trainer.train import prepare_data

    root = make_dataset(tmp_path / "words", per_word=20, unknown=60)
    cfg = with_data(load_config(None, ["data.unknown_percentage=5"]), str(root), ["up", "down", "beep"])
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    index, _, _, first = prepare_data(cfg, run, False, lambda msg: None, True)
    assert len(first) < len(ds.scan_dataset(root, ["up", "down", "beep"], 10, 5, 10, 10, 0).unknown_pool["training"])
    ds.save_index(index, run.split)
    _, _, _, resumed = prepare_data(cfg, run, True, lambda msg: None, True)
    assert resumed == first


def test_speakers_heard_in_training_include_the_unknown_clips_redrawn_each_epoch(tmp_path):
    """metrics.json's unseen_speakers (kws-train) and kws-predict --report's count a speaker as
    heard when training redrew its _unknown_ words each epoch: with lists that put a speaker's
    'cat' in training and its 'yes' and 'no' in testing, that speaker was called never heard."""
    from kws.trainer.metrics import group_report

    root = _speaker_layout(tmp_path / "d", speakers=4, takes=1)
    (root / "testing_list.txt").write_text("yes/spk01_0.wav\nno/spk01_0.wav\n")
    index = ds.scan_dataset(root, ["yes", "no"], 0, 0, 0, 0, seed=0, group_pattern=r"^([^_]+)_")
    index.train_unknown = [str(root / "cat" / "spk01_0.wav")]  # what prepare_data drew for the epochs
    tested = [i.group for i in index.splits["testing"]]
    assert tested == ["spk01", "spk01"]
    assert "spk01" not in {i.group for i in index.splits["training"]}
    assert index.training_speakers() == {"spk00", "spk01", "spk02", "spk03"}
    assert group_report([2, 3], [2, 3], tested, index.training_speakers())["unseen_speakers"] == 0
    # kws-predict groups by its own --group-pattern
    assert index.training_speakers(re.compile(r"^(spk0[01])_")) == {"spk00", "spk01"}
