"""Folders of WAVs -> labelled, split, in-memory clips (speech_commands conventions).

One folder per label; ``_background_noise_/`` holds noise for mixing; wanted words keep their
label, every other folder (and ``_unknown_/``) becomes ``_unknown_``; ``_silence_`` clips are
made from background. Hidden names ('.') and macOS's ``__MACOSX/`` are passed by unsaid; any other
folder whose name begins with '_' is not read, and said (``unread_folders``). Each file belongs to
a group (its speaker or session: the first group of ``data.group_pattern`` on the file name, by
default the text before ``_nohash_``); the split hashes the group, so one speaker's files stay on
one side and the split is stable as the data grows.
``validation_list.txt`` / ``testing_list.txt`` win when present; with only one of them, the other
split is still drawn by the hash from the files the list does not name.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import posixpath
import re
import unicodedata
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from kws.edge.audio import AUDIO_SUFFIXES as READABLE_SUFFIXES
from kws.edge.audio import WavInfo, read_wav, resample
from kws.edge.errors import AudioError, KwsError
from kws.edge.manifest import SILENCE_LABEL, UNKNOWN_LABEL
from kws.edge.manifest_schema import MAX_LABEL_CHARS, is_valid_label

from .config import DEFAULT_GROUP_PATTERN

BACKGROUND_DIR = "_background_noise_"
UNKNOWN_DIR = UNKNOWN_LABEL
READ_SPECIAL_DIRS = (BACKGROUND_DIR, UNKNOWN_DIR)  # the '_' folders whose audio is data
MACOS_ARCHIVE_DIR = "__MACOSX"  # what macOS's zip adds: a ._ companion (no audio) of every file
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1  # speech_commands' modulus for the split hash
SPLITS = ("training", "validation", "testing")
LIST_OF = {"validation": VALIDATION_LIST, "testing": TESTING_LIST}  # the list file deciding each split
OTHER_SPLIT = {"validation": "testing", "testing": "validation"}
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
LOST_WITHOUT = {"validation": "the best epoch is picked by training accuracy", "testing": "no test accuracy is measured"}
# what a split holding no clip of a wanted word loses (of that word alone)
WORD_LOST_WITHOUT = {"validation": "the best epoch is picked without hearing {it}",
                     "testing": "test accuracy says nothing of {it}"}
DEFAULT_PATTERN = re.compile(DEFAULT_GROUP_PATTERN)
AUDIO_SUFFIXES = set(READABLE_SUFFIXES)  # WAV, FLAC, OGG, MP3 (kws.edge.audio reads them all)
SILENT_DBFS = -50.0  # a clip or noise file whose peak is below this is silent (kws data-stats' rule too)
SILENT_PEAK = 10 ** (SILENT_DBFS / 20)  # the same as a sample magnitude (full scale 1.0)
NOT_READ_NOTE = "hidden files and folders and __MACOSX/ are not read"  # said where a folder had no audio


# a kws-synth dataset records its progress in SYNTH_STATE_DIR and writes SYNTH_META_CSV (with the
# validation and test lists) last: the folder without it is an interrupted synthesis
SYNTH_STATE_DIR = ".synth_state"
SYNTH_META_CSV = "synth_meta.csv"
UNFINISHED_SYNTH = ("{root}: a kws-synth dataset that was stopped before it finished (no " + SYNTH_META_CSV + " and no "
                    "split lists yet): run the same kws-synth command again to finish it")


def unfinished_synth(root: Path) -> bool:
    """Whether ``root`` is a kws-synth dataset whose synthesis has not finished."""
    return (root / SYNTH_STATE_DIR).is_dir() and not (root / SYNTH_META_CSV).is_file()


class DataError(KwsError):
    """The dataset folder cannot be used as given."""


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """The split of a file: SHA-1 of its name without the ``_nohash_`` part, as speech_commands does."""
    return split_of_key(_split_key(filename, DEFAULT_PATTERN), validation_percentage, testing_percentage)


def _split_key(filename: str, pattern: re.Pattern | None) -> str:
    """What the split hashes: the file's group, or its own name when it has none."""
    group = group_of(filename, pattern)
    return group if group is not None else os.path.basename(filename)


def group_of(filename: str, pattern: re.Pattern | None) -> str | None:
    """The speaker/session id of a file: the first group of ``pattern`` searched in its file name,
    or None when it does not match (the file is then a group of its own)."""
    if pattern is None:
        return None
    match = pattern.search(os.path.basename(filename))
    return match.group(1) if match and match.group(1) is not None else None


def split_of_key(key: str, validation_percentage: float, testing_percentage: float) -> str:
    """The split of a hashing key (a group id, or a file name without group): speech_commands' rule."""
    digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()
    percentage = (int(digest, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


@dataclass(frozen=True)
class Item:
    """One example: a file (or None for silence), its label and its speaker/session group."""

    path: str | None
    label: str
    group: str | None = None


@dataclass
class DataIndex:
    """What a dataset folder holds, split and labelled."""

    root: Path
    labels: list[str]
    splits: dict[str, list[Item]]
    unknown_pool: dict[str, list[str]]
    background_files: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    used_lists: bool = False
    group_pattern: str = ""
    # entries of validation_list/testing_list that name no audio file of the folder (ignored)
    list_misses: list[str] = field(default_factory=list)
    list_entries: int = 0
    # the splits a list file decided (the others were drawn by the hash)
    list_splits: tuple[str, ...] = ()
    # the splits whose list file is there but names nothing (so they hold no file)
    empty_lists: tuple[str, ...] = ()
    # (entry, file) pairs matched only when case and Unicode form are ignored
    list_loose: list[tuple[str, str]] = field(default_factory=list)
    # the training _unknown_ clips each epoch redraws from (a seeded sample of the pool, chosen once
    # per run): saved, so a resumed run draws from the very same clips (None: not chosen yet)
    train_unknown: list[str] | None = None
    # the '_' folders of the root that are not read (unread_folders), for the warning
    unread: tuple[str, ...] = ()
    # the label folders of the root that hold audio but are no wanted word: their files are _unknown_
    unknown_folders: tuple[str, ...] = ()

    def counts(self) -> dict[str, dict[str, int]]:
        return {s: dict(Counter(i.label for i in items)) for s, items in self.splits.items()}

    def training_speakers(self, pattern: re.Pattern | None = None) -> set[str]:
        """The speakers (groups) training heard: of the training split's files and of the _unknown_
        clips each epoch redraws from (``train_unknown``; the training pool where a run saved none),
        by ``pattern`` (default: the index's own group_pattern)."""
        if pattern is None:
            pattern = re.compile(self.group_pattern) if self.group_pattern else None
        pool = self.unknown_pool.get("training", []) if self.train_unknown is None else self.train_unknown
        paths = [i.path for i in self.splits.get("training", []) if i.path] + list(pool)
        return {g for g in (group_of(p, pattern) for p in paths) if g is not None}

    def speakers(self) -> dict:
        """Speakers (groups) per split, files without a group, and groups found on more than one
        side (which let validation/test hear voices that training heard)."""
        per_split = {s: sorted({i.group for i in items if i.path and i.group is not None})
                     for s, items in self.splits.items()}
        files = [i for items in self.splits.values() for i in items if i.path]
        ungrouped = sum(1 for i in files if i.group is None)
        seen: dict[str, set[str]] = {}
        for s, groups in per_split.items():
            for g in groups:
                seen.setdefault(g, set()).add(s)
        shared = sorted(g for g, where in seen.items() if len(where) > 1)
        return {"group_pattern": self.group_pattern,
                "per_split": {s: len(g) for s, g in per_split.items()},
                "files": len(files), "files_without_group": ungrouped,
                "groups_in_several_splits": len(shared), "examples_in_several_splits": shared[:5]}

    def unread_warning(self) -> str | None:
        """One line naming the '_' folders of the data folder that were not read, else None."""
        return unread_warning(self.root, self.unread)

    def list_warning(self) -> str | None:
        """One line when list-file entries name no audio file here, else None."""
        if not self.list_misses:
            return None
        n = len(self.list_misses)
        decided = " and ".join(self.list_splits)
        every = (f" (every one: {decided} {'hold' if len(self.list_splits) > 1 else 'holds'} no listed clip)"
                 if n == self.list_entries else "")
        return (f"warning: {n} of the {self.list_entries} entries of {VALIDATION_LIST}/{TESTING_LIST} name no audio "
                f"file in {self.root}{every}, e.g. {', '.join(self.list_misses[:3])}; they are ignored (entries are "
                "paths relative to the data folder, like yes/0a7c2a8d_nohash_0.wav)")

    def list_case_warning(self) -> str | None:
        """One line when list-file entries matched a file only with case (or Unicode form) ignored."""
        if not self.list_loose:
            return None
        shown = ", ".join(f"{printable(entry)} -> {printable(found)}" for entry, found in self.list_loose[:3])
        return (f"warning: {len(self.list_loose)} of the {self.list_entries} entries of {VALIDATION_LIST}/"
                f"{TESTING_LIST} match a file of {self.root} only when case (or Unicode form) is ignored, e.g. "
                f"{shown}; they are used as matched, but a case-sensitive tool would miss them: correct the lists")

    def split_source(self) -> str:
        """How the split was made, for the 'split by ...' lines."""
        if not self.used_lists:
            return "speaker-group hash"
        if len(self.list_splits) == 1:
            listed = self.list_splits[0]
            return f"{LIST_OF[listed]} for {listed}, speaker-group hash for {OTHER_SPLIT[listed]}"
        return f"{VALIDATION_LIST}/{TESTING_LIST}"

    def list_gap_warning(self, validation_percentage: float, testing_percentage: float) -> str | None:
        """One line when one list file decides its split and the other is missing (its split is then
        drawn by the hash) or empty (its split then holds no file), else None. The percentages are
        those the split was made with."""
        if not self.used_lists:
            return None
        if len(self.list_splits) == 1:
            listed = self.list_splits[0]
            gap = OTHER_SPLIT[listed]
            pct = {"validation": validation_percentage, "testing": testing_percentage}[gap]
            option = f"data.{gap}_percentage"
            then = (f"{gap} is drawn by the speaker-group hash ({option} {pct:g}%) from the files "
                    f"{LIST_OF[listed]} does not name" if pct > 0 else
                    f"{gap} holds no file ({option} is 0), so {LOST_WITHOUT[gap]}")
            return f"warning: {self.root / LIST_OF[gap]} is missing ({LIST_OF[listed]} decides {listed}): {then}"
        if not self.empty_lists:
            return None
        gap = self.empty_lists[0]  # never both: the lists are used only when one names a file
        return (f"warning: {self.root / LIST_OF[gap]} is empty, so {gap} holds no file and {LOST_WITHOUT[gap]}; "
                f"delete the file to draw {gap} by the speaker-group hash instead")

    def speaker_warning(self) -> str | None:
        """One line when the split cannot keep voices apart, else None."""
        info = self.speakers()
        option = "set data.group_pattern to a regex whose first group is the speaker id " \
                 "(e.g. '^([^_]+)_' for <speaker>_<take>.wav)"
        if info["files"] and info["files_without_group"] == info["files"]:
            return (f"warning: no file name yields a speaker group (data.group_pattern {self.group_pattern!r}), "
                    "so validation and test share voices with training and overstate accuracy on new voices; "
                    + option)
        if info["files_without_group"]:
            return (f"warning: {info['files_without_group']} of {info['files']} files yield no speaker group "
                    f"(data.group_pattern {self.group_pattern!r}); each is split on its own and may share a "
                    "voice with training; " + option)
        if info["groups_in_several_splits"]:
            return (f"warning: {info['groups_in_several_splits']} speaker group(s) are in more than one split "
                    f"(e.g. {', '.join(info['examples_in_several_splits'])}): the list files mix voices, so "
                    "validation/test accuracy overstates accuracy on new voices")
        return None

    def empty_split_warning(self, validation_percentage: float, testing_percentage: float) -> str | None:
        """One line when the speaker-group hash left validation or testing without a file although
        its percentage asks for some (too few speakers, or a group_pattern that makes one group of
        every file), else the ``word_gap_warning`` line, else None; the percentages are those the
        split was made with. A split a list file left empty is list_gap_warning's to say."""
        asked = {"validation": validation_percentage, "testing": testing_percentage}
        hashed = [s for s in SPLITS if s not in self.list_splits]
        empty = [s for s in asked if s in hashed and asked[s] > 0 and not any(i.path for i in self.splits[s])]
        if not empty:
            return self.word_gap_warning()
        keys = {i.group if i.group is not None else i.path for s in hashed for i in self.splits[s] if i.path}
        return (f"warning: no file falls in {' or '.join(empty)}: the files' {len(keys)} speaker group(s) "
                f"(data.group_pattern {self.group_pattern!r}) all hash to other splits, so "
                + " and ".join(LOST_WITHOUT[s] for s in empty)
                + "; record more speakers, or check that data.group_pattern's first group is the speaker id")

    def word_gap_warning(self) -> str | None:
        """One line when validation or testing holds files but none of a wanted word, whatever decided
        the split (a list file, as kws-synth writes, or the hash), else None: the split line's count
        alone does not show it, and that split then says nothing of the word. Other words' files
        (the _unknown_ pool) count as held although none is drawn into a split without a wanted word:
        held-out voices that said only negatives leave the split without the word all the same."""
        wanted = [l for l in self.labels if l not in (SILENCE_LABEL, UNKNOWN_LABEL)]
        gaps = []
        for split in LIST_OF:
            held = {i.label for i in self.splits[split] if i.path}
            if self.unknown_pool.get(split):
                held.add(UNKNOWN_LABEL)
            missing = [w for w in wanted if w not in held]
            if held and missing:
                it = "it" if len(missing) == 1 else "them"
                how = (f"{LIST_OF[split]} decides it" if split in self.list_splits
                       else f"the speaker-group hash put every speaker of {it} in other splits")
                gaps.append(f"{split} holds no clip of {', '.join(map(repr, missing))} ({how}), so "
                            + WORD_LOST_WITHOUT[split].format(it=it))
        if not gaps:
            return None
        fix = ("rerun kws-synth with a larger --per-word, so that the held-out voices say every word"
               if (Path(self.root) / SYNTH_META_CSV).is_file() else "give each word clips from more speakers")
        return "warning: " + "; ".join(gaps) + "; " + fix

    def to_json(self) -> dict:
        """The split as file lists relative to the root, so a resumed run uses exactly it."""
        def rel(p: str | None) -> str | None:
            return None if p is None else os.path.relpath(p, self.root)
        return {
            "root": str(Path(self.root).absolute()),  # a relative root would follow --resume's folder
            "labels": self.labels,
            "splits": {s: [[rel(i.path), i.label, i.group] for i in items] for s, items in self.splits.items()},
            "unknown_pool": {s: [rel(p) for p in ps] for s, ps in self.unknown_pool.items()},
            "background_files": [rel(p) for p in self.background_files],
            "used_lists": self.used_lists,
            "list_splits": list(self.list_splits),
            "group_pattern": self.group_pattern,
            "speakers": self.speakers(),
            **({} if self.train_unknown is None else {"train_unknown": [rel(p) for p in self.train_unknown]}),
        }

    @classmethod
    def from_json(cls, data: dict, root: Path | None = None) -> "DataIndex":
        root = Path(root or data["root"])
        def absp(p: str | None) -> str | None:
            return None if p is None else str(root / p)
        return cls(
            root=root,
            labels=list(data["labels"]),
            splits={s: [Item(absp(e[0]), e[1], e[2] if len(e) > 2 else None) for e in items]
                    for s, items in data["splits"].items()},
            unknown_pool={s: [absp(p) for p in ps] for s, ps in data["unknown_pool"].items()},
            background_files=[absp(p) for p in data["background_files"]],
            used_lists=bool(data.get("used_lists", False)),
            # a split saved before list_splits was kept: the lists decided both or neither
            list_splits=tuple(data.get("list_splits", ("validation", "testing") if data.get("used_lists") else ())),
            group_pattern=str(data.get("group_pattern", "")),
            train_unknown=None if data.get("train_unknown") is None else [absp(p) for p in data["train_unknown"]],
        )


def passed_by_name(name: str) -> bool:
    """Whether every kws tool passes a file or folder of a dataset by, unread and unsaid: a hidden
    name (macOS's ._ companion of each copied file, .Trash) or macOS's ``__MACOSX/``."""
    return name.startswith(".") or name == MACOS_ARCHIVE_DIR


def audio_files(folder: Path, suffixes: Iterable[str] = AUDIO_SUFFIXES) -> list[Path]:
    """The audio files anywhere under ``folder`` (``suffixes``, by default AUDIO_SUFFIXES), sorted, less
    those ``passed_by_name`` below it (a hidden file or folder, ``__MACOSX/``): the one rule of every
    kws tool that walks a folder. ``folder`` itself may have any name: a folder named on the command
    line is read."""
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in wanted and p.is_file()
                  and not any(passed_by_name(part) for part in p.relative_to(folder).parts))


def unread_folders(root: Path) -> list[Path]:
    """The folders of a dataset folder that no kws tool reads although they hold audio a user may
    have meant as data: names beginning with '_' (speech_commands' mark of a special folder) other
    than _background_noise_ and _unknown_ (a ``_silence_/`` of recordings, say), sorted."""
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("_")
                  and p.name not in READ_SPECIAL_DIRS and not passed_by_name(p.name) and _holds_audio(p))


def _holds_audio(folder: Path) -> bool:
    """Whether an audio file lies anywhere under ``folder`` (hidden names and __MACOSX passed by)."""
    return any(f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()
               and not any(passed_by_name(part) for part in f.relative_to(folder).parts)
               for f in folder.rglob("*"))


def unread_warning(root: Path, folders: Sequence[Path | str]) -> str | None:
    """One line naming the unread '_' folders of ``root`` (``unread_folders``), else None."""
    if not folders:
        return None
    shown = ", ".join(printable(str(root / Path(f).name)) for f in folders[:3])
    shown += f" (and {len(folders) - 3} more)" if len(folders) > 3 else ""
    return (f"warning: {shown}: not read: of the folders named with a leading '_' only {BACKGROUND_DIR}/ (noise) "
            f"and {UNKNOWN_DIR}/ (other words) hold data; to use a folder's audio, rename it without its leading "
            f"'_' (a word) or move its files into {UNKNOWN_DIR}/")


def printable(text: str) -> str:
    """``text`` with each unprintable character (a newline, a tab, a control code) escaped, so a
    message naming it stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _read_list(path: Path) -> set[str] | None:
    """The entries of a list file as folder-relative POSIX paths (None when there is no such file):
    CRLF or CR line ends, a byte-order mark (UTF-8, or UTF-16 as Windows PowerShell writes), ``./``,
    ``..`` and backslashes (Windows' separator) all read as the path they spell."""
    if not path.is_file():
        return None
    raw = path.read_bytes()
    try:  # a byte-order mark would otherwise hide the first listed clip, which then trains
        text = raw.decode("utf-16") if raw[:2] in UTF16_BOMS else raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        encoding = "UTF-16" if raw[:2] in UTF16_BOMS else "UTF-8"
        raise DataError(f"{path}: not a text list (byte {exc.start} is not {encoding})") from None
    return {posixpath.normpath(line.strip().replace("\\", "/")) for line in text.splitlines() if line.strip()}


def _loose(rel: str) -> str:
    """A path as a case-insensitive file system (macOS, Windows) compares it: case and Unicode form ignored."""
    return unicodedata.normalize("NFC", rel).casefold()


@dataclass
class _ListMatch:
    """The files each list file names, and the entries that name none."""

    files: dict[str, set[str]]  # split -> folder-relative paths of the files its list names
    misses: list[str]
    loose: list[tuple[str, str]]  # (entry, file) matched with case and Unicode form ignored


def _match_lists(lists: dict[str, set[str]], present: Sequence[str]) -> _ListMatch:
    """Each list entry matched to a file of ``present`` (folder-relative paths): the same path, else
    the one file equal to it with case and Unicode form ignored (what a list made on macOS or
    Windows names), else a miss."""
    exact = set(present)
    by_loose: dict[str, list[str]] = {}
    for rel in present:
        by_loose.setdefault(_loose(rel), []).append(rel)
    files: dict[str, set[str]] = {s: set() for s in lists}
    misses, loose = set(), set()
    for split, entries in lists.items():
        for entry in entries:
            if entry in exact:
                files[split].add(entry)
                continue
            found = by_loose.get(_loose(entry), [])
            if len(found) == 1:
                files[split].add(found[0])
                loose.add((entry, found[0]))
            else:
                misses.add(entry)
    return _ListMatch(files, sorted(misses), sorted(loose))


def _refuse_line_breaks(relative_paths: Iterable[str], root: Path) -> None:
    """DataError naming the first file whose path in the folder holds a line break: no list file can
    name it, and speech_commands' rule (``re.sub(r'_nohash_.*$', '', name)``, where ``.`` stops at
    a newline) groups such a name unlike ``data.group_pattern``'s search."""
    broken = [rel for rel in relative_paths if rel.splitlines() != [rel]]
    if broken:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise DataError(f"{printable(str(root / broken[0]))}{more}: a line break in the file's name, which "
                        f"{VALIDATION_LIST}/{TESTING_LIST} cannot name and speech_commands' split rule reads "
                        "differently; rename it")


def _wav_files(folder: Path, skipped: list[tuple[str, str]]) -> list[str]:
    """WAV files directly in a folder, sorted; other files, and links to nothing (a dataset copied
    without the files its links point to), are recorded as skipped."""
    out = []
    for entry in sorted(folder.iterdir()):
        if passed_by_name(entry.name):
            continue
        if entry.is_file() and entry.suffix.lower() in AUDIO_SUFFIXES:
            out.append(str(entry))
        elif entry.is_file():
            skipped.append((str(entry), f"not an audio file ({', '.join(sorted(AUDIO_SUFFIXES))})"))
        elif entry.is_symlink() and not entry.exists():
            skipped.append((str(entry), f"a link to {os.readlink(entry)}, which does not exist"))
    return out


def _word_folders(root: Path, wanted: Sequence[str], names: set[str]) -> dict[str, str]:
    """The label folder of each wanted word: the folder of its name, else the one folder whose name
    is the word in another Unicode form (macOS keeps 'café' as e + a combining accent, the NFD form,
    and a terminal types it as one character, NFC: the two print alike but differ); DataError for a
    word with no folder, or for two words naming one folder."""
    by_form: dict[str, list[str]] = {}
    for name in names:
        by_form.setdefault(unicodedata.normalize("NFC", name), []).append(name)
    folder_of: dict[str, str] = {}
    for w in wanted:
        found = [w] if w in names else by_form.get(unicodedata.normalize("NFC", w), [])
        if len(found) != 1:
            raise DataError(f"{printable(str(root / w))}: wanted word '{printable(w)}' has no folder in {root} "
                            f"(folders: {', '.join(printable(n) for n in sorted(names)) or 'none'})")
        twice = [other for other, folder in folder_of.items() if folder == found[0]]
        if twice:
            raise DataError(f"{printable(str(root / found[0]))}: --words names this folder twice "
                            f"('{printable(twice[0])}' and '{printable(w)}'); give each word once")
        folder_of[w] = found[0]
    return folder_of


def _no_label_folders(root: Path) -> str:
    """The one-line error for a --data folder without label sub-folders: most often a folder of clips
    (one word's folder given instead of the dataset), else an empty one."""
    loose = len(_wav_files(root, []))
    found = (f"{loose} audio file{'' if loose == 1 else 's'} directly in it but no label folder" if loose
             else "no label folder")
    fix = "; give the folder above it, or move the files into label folders" if loose else ""
    return (f"{root}: {found}; --data takes a folder with one sub-folder of audio files per label "
            "(e.g. yes/*.wav and no/*.wav inside it)" + fix)


def scan_dataset(root: str | os.PathLike, wanted_words: Sequence[str], silence_percentage: float,
                 unknown_percentage: float, validation_percentage: float, testing_percentage: float,
                 seed: int, group_pattern: str = DEFAULT_GROUP_PATTERN) -> DataIndex:
    """Label and split a dataset folder; raises DataError on a missing folder or too few labels.

    Files whose name matches ``group_pattern`` are split by their group (speaker), so a speaker
    is on one side only; the others by their own name."""
    root = Path(root)
    if root.exists() and not root.is_dir():  # a local archive is the usual one: only URLs are unpacked
        raise DataError(f"{root}: not a folder; --data (data.path) takes a folder with one sub-folder of audio "
                        "per label, or an http(s) URL of a .tar.gz/.zip (unpack a local archive first)")
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    if unfinished_synth(root):
        raise DataError(UNFINISHED_SYNTH.format(root=root))
    skipped: list[tuple[str, str]] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not passed_by_name(p.name))
    label_folders = [p for p in folders if not p.name.startswith("_")]
    if not label_folders:  # every run needs a word folder; say what the folder is instead
        raise DataError(_no_label_folders(root))
    names = {p.name for p in label_folders}
    wanted = [w.strip() for w in wanted_words]
    if any(not w for w in wanted):
        raise DataError(f"--words has an empty word: {','.join(wanted_words)!r}")
    for w in wanted:
        if w.startswith("_"):
            raise DataError(f"{w}: names starting with '_' are reserved (_silence_, _unknown_)")
    folder_of = _word_folders(root, wanted, names)
    implicit = not wanted
    if implicit:
        wanted = sorted(names)
        folder_of = {w: w for w in wanted}
    for w in wanted:  # what the manifest (and so every runtime) will accept as a label
        if not is_valid_label(w):
            raise DataError(f"{printable(str(root / w))}: a label must be 1..{MAX_LABEL_CHARS} printable characters "
                            "with no space at either end, so a model trained on it could not be loaded or resumed; "
                            "rename the folder"
                            + (" or leave it out with --words" if implicit else ""))
    files_by_folder = {p.name: _wav_files(p, skipped) for p in label_folders}
    files_by_label = {w: files_by_folder[folder_of[w]] for w in wanted}
    for w in wanted:
        if not files_by_label[w]:
            raise DataError(f"{root / folder_of[w]}: wanted word '{w}' has no audio files")
    word_folders = set(folder_of.values())
    unknown_files = [f for name, fs in files_by_folder.items() if name not in word_folders for f in fs]
    if (root / UNKNOWN_DIR).is_dir():
        unknown_files += _wav_files(root / UNKNOWN_DIR, skipped)
    background = _wav_files(root / BACKGROUND_DIR, skipped) if (root / BACKGROUND_DIR).is_dir() else []
    usable = len(wanted) + (1 if unknown_files else 0)
    if usable < 2:
        raise DataError(f"{root}: need at least two usable labels, found {usable} "
                        f"(wanted: {', '.join(wanted)}; no other word folders or {UNKNOWN_DIR}/ for _unknown_)")

    def relative(path: str) -> str:
        return os.path.relpath(path, root).replace(os.sep, "/")

    split_files = [*(f for w in wanted for f in files_by_label[w]), *unknown_files]
    _refuse_line_breaks([relative(f) for f in split_files], root)

    # once a list names a file, each list file there decides its split (an empty one leaves it empty,
    # as kws-synth's --testing-percent 0 writes it) and a missing one leaves its split to the hash
    read = {s: _read_list(root / LIST_OF[s]) for s in LIST_OF}
    lists = {s: entries for s, entries in read.items() if entries is not None} if any(read.values()) else {}
    match = _match_lists(lists, [relative(f) for f in split_files])
    in_both = sorted(set.intersection(*match.files.values())) if len(lists) == 2 else []
    if in_both:
        raise DataError(f"{root}: {len(in_both)} file(s) are named by both {VALIDATION_LIST} and {TESTING_LIST} "
                        f"(e.g. {', '.join(printable(f) for f in in_both[:3])}); a clip belongs to one split: "
                        "take each out of one of the lists")
    listed = {rel: split for split, rels in match.files.items() for rel in rels}
    pattern = re.compile(group_pattern) if group_pattern else None

    def split_of(path: str) -> str:
        rel = relative(path)
        if rel in listed:
            return listed[rel]
        hashed = split_of_key(_split_key(path, pattern), validation_percentage, testing_percentage)
        return "training" if hashed in lists else hashed

    splits: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for w in wanted:
        for f in files_by_label[w]:
            splits[split_of(f)].append(Item(f, w, group_of(f, pattern)))
    unknown_pool: dict[str, list[str]] = {s: [] for s in SPLITS}
    for f in unknown_files:
        unknown_pool[split_of(f)].append(f)

    rng = np.random.default_rng(seed)
    for s in SPLITS:
        n_wanted = len(splits[s])
        n_silence = int(math.ceil(n_wanted * silence_percentage / 100))
        splits[s].extend(Item(None, SILENCE_LABEL) for _ in range(n_silence))
        n_unknown = min(len(unknown_pool[s]), int(math.ceil(n_wanted * unknown_percentage / 100)))
        if n_unknown:
            chosen = rng.choice(len(unknown_pool[s]), size=n_unknown, replace=False)
            splits[s].extend(Item(unknown_pool[s][i], UNKNOWN_LABEL, group_of(unknown_pool[s][i], pattern))
                             for i in sorted(chosen))
    labels = [SILENCE_LABEL, UNKNOWN_LABEL] + list(wanted)
    return DataIndex(root=root, labels=labels, splits=splits, unknown_pool=unknown_pool,
                     background_files=background, skipped=skipped, used_lists=bool(lists),
                     group_pattern=group_pattern, list_misses=match.misses,
                     list_entries=len(set().union(*lists.values())),
                     list_splits=tuple(s for s in SPLITS if s in lists), list_loose=match.loose,
                     empty_lists=tuple(s for s in SPLITS if s in lists and not lists[s]),
                     unread=tuple(p.name for p in unread_folders(root)),
                     unknown_folders=tuple(name for name, fs in sorted(files_by_folder.items())
                                           if fs and name not in word_folders))


def loudest_window(samples: np.ndarray, length: int) -> np.ndarray:
    """The ``length``-sample window with the most energy (clips longer than the model's clip)."""
    if len(samples) <= length:
        return np.pad(samples, (0, length - len(samples)))
    energy = np.concatenate([[0.0], np.cumsum(samples.astype(np.float64) ** 2)])
    sums = energy[length:] - energy[:-length]
    start = int(np.argmax(sums))
    return samples[start:start + length]


@dataclass
class LoadReport:
    """What loading converted and skipped, for the one summary line."""

    total: int = 0
    rates: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    longer: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)  # files cut short of what they declare (AudioInfo.cut_short)
    silent: list[str] = field(default_factory=list)  # files whose peak is below SILENT_DBFS (is_silent)

    def add(self, info: WavInfo, clip_samples: int, sample_rate: int) -> None:
        self.total += 1
        self.rates[info.sample_rate] += 1
        self.formats[info.sample_format] += 1
        self.channels[info.channels] += 1
        if info.num_samples * sample_rate / info.sample_rate > clip_samples * 1.01:
            self.longer += 1

    def summary(self, sample_rate: int) -> str:
        def fmt(counter: Counter, unit: str = "") -> str:
            return ", ".join(f"{k}{unit} x{v}" for k, v in sorted(counter.items(), key=lambda kv: -kv[1]))
        parts = [f"read {self.total} audio files"]
        if set(self.rates) - {sample_rate}:
            others = Counter({rate: n for rate, n in self.rates.items() if rate != sample_rate})
            parts.append(f"resampled to {sample_rate} Hz from {fmt(others, ' Hz')}")
        if set(self.formats) - {"int16"}:
            parts.append(f"sample formats {fmt(self.formats)}")
        if set(self.channels) - {1}:
            parts.append(f"mixed to mono from {fmt(self.channels, ' ch')}")
        if self.longer:
            parts.append(f"{self.longer} longer than the clip (loudest window kept)")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} unreadable")
        if self.truncated:
            n = len(self.truncated)
            parts.append((f"{n} audio files cut short (copied or recorded only in part), used as they are" if n > 1
                          else "1 audio file cut short (copied or recorded only in part), used as it is")
                         + f" (first: {sorted(self.truncated)[0]}; kws data-stats lists them)")
        if self.silent:
            parts.append(f"{len(self.silent)} silent (peak below {SILENT_DBFS:g} dBFS) yet trained as their "
                         f"folder's label (first: {sorted(self.silent)[0]}; kws data-stats lists them)")
        return "; ".join(parts)


def load_clips(paths: Sequence[str], sample_rate: int, clip_samples: int, workers: int = 4,
               progress: Callable[[int], None] | None = None) -> tuple[dict[str, np.ndarray], LoadReport]:
    """Read files as int16 clips of exactly ``clip_samples`` at ``sample_rate``; bad files are
    recorded in the report, never raised."""
    report = LoadReport()
    clips: dict[str, np.ndarray] = {}

    def one(path: str) -> tuple[str, np.ndarray | None, WavInfo | None, str, bool, bool]:
        """(path, clip, info, why unreadable, cut short: AudioInfo.cut_short, silent: is_silent)."""
        try:
            samples, info = read_wav(path)
        except AudioError as exc:
            return path, None, None, str(exc).split(": ", 1)[-1], False, False
        silent = is_silent(samples)
        samples = resample(samples, info.sample_rate, sample_rate)
        clip = loudest_window(samples, clip_samples)
        pcm = np.clip(np.round(clip * 32768.0), -32768, 32767).astype(np.int16)
        return path, pcm, info, "", bool(info.cut_short), silent

    unique = list(dict.fromkeys(paths))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for path, pcm, info, why, short, silent in pool.map(one, unique, chunksize=64):
            if pcm is None:
                report.skipped.append((path, why))
            else:
                clips[path] = pcm
                report.add(info, clip_samples, sample_rate)
                if short:
                    report.truncated.append(path)
                if silent:
                    report.silent.append(path)
            if progress:
                progress(1)
    return clips, report


def load_background(paths: Iterable[str], sample_rate: int) -> tuple[list[np.ndarray], list[tuple[str, str]]]:
    """Background noise files as float32 at the model rate (any length)."""
    out, skipped = [], []
    for p in paths:
        try:
            samples, info = read_wav(p)
        except AudioError as exc:
            skipped.append((p, str(exc).split(": ", 1)[-1]))
            continue
        out.append(resample(samples, info.sample_rate, sample_rate))
    return out, skipped


def is_silent(samples: np.ndarray) -> bool:
    """Whether audio (float, full scale 1.0) peaks below SILENT_DBFS: nothing a model could hear."""
    return not samples.size or float(np.max(np.abs(samples))) < SILENT_PEAK


def background_note(backgrounds: Sequence[np.ndarray], clip_samples: int) -> str:
    """'3 background files', and how many of them are silent or shorter than a clip (each such file
    is looped to fill a clip's noise, so a very short one sounds as a buzz, not as noise)."""
    silent = sum(1 for b in backgrounds if is_silent(b))
    short = sum(1 for b in backgrounds if len(b) < clip_samples)
    notes = ([f"{silent} silent"] if silent else []) + ([f"{short} shorter than a clip, looped"] if short else [])
    return f"{len(backgrounds)} background files" + (f" ({', '.join(notes)})" if notes else "")


def silent_background_warning(root: Path, backgrounds: Sequence[np.ndarray]) -> str | None:
    """One line when background files were read and every one of them is silent (is_silent), which
    trains as no background at all would, else None."""
    if not backgrounds or not all(is_silent(b) for b in backgrounds):
        return None
    return (f"warning: {root / BACKGROUND_DIR}: its {len(backgrounds)} readable file(s) are all silent (peak below "
            f"{SILENT_DBFS:g} dBFS), so _silence_ clips are silence and no audible noise is mixed in; "
            "put recordings of the rooms the model will hear in it (kws data-stats lists the silent files)")


def drop_unreadable(index: DataIndex, clips: dict[str, np.ndarray]) -> None:
    """Remove items whose file failed to load (they are listed in the load report)."""
    for s in SPLITS:
        index.splits[s] = [i for i in index.splits[s] if i.path is None or i.path in clips]
        index.unknown_pool[s] = [p for p in index.unknown_pool[s] if p in clips]


def save_index(index: DataIndex, path: str | os.PathLike) -> None:
    from kws.edge.manifest import atomic_write_text

    atomic_write_text(path, json.dumps(index.to_json()))


def load_index(path: str | os.PathLike, root: Path | None = None) -> DataIndex:
    """The split a run saved (split.json); a damaged one is a DataError naming it."""
    from .run import read_json_object

    try:
        return DataIndex.from_json(read_json_object(Path(path), "split"), root=root)
    except KwsError as exc:
        raise DataError(str(exc)) from None
    except (KeyError, TypeError, IndexError, AttributeError) as exc:  # valid JSON, not a split
        raise DataError(f"{path}: damaged split: not as kws-train writes it ({type(exc).__name__}: {exc})") from None
