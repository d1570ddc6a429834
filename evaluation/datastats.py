"""Dataset summary for ``kws data-stats``: per-label counts, durations and formats, and the
problems that quietly hurt training (wrong rates, clipping, silence, duplicates, tiny labels)."""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kws.edge.audio import AUDIO_SUFFIXES, read_audio
from kws.edge.errors import AudioError
from kws.edge.frontend import FrontendConfig
from kws.edge.manifest_schema import MAX_LABEL_CHARS, is_valid_label
from kws.edge.pcmwav import wav_shortfall
from kws.trainer.dataset import SILENT_DBFS  # peak below this -> silent: kws-train's rule

EXPECTED_RATE = 16000
FULL_SCALE = 0.999          # |sample| at or above this counts as clipped (int16 32767/32768 = 0.99997)
CLIP_FRACTION = 0.001       # more than 0.1% clipped samples -> clipping
FEW_FILES = 20              # a label with fewer files than this ...
FEW_FRACTION_OF_MEDIAN = 0.1  # ... or fewer than 10% of the median label's -> few files
BACKGROUND_DIR = "_background_noise_"
# a label whose files mostly lack the top mel bands of the model's frontend (kws-train's default, or the
# features of a --config/--set) at the expected rate (a rate under twice its upper_hz:
# FrontendConfig.missing_band's rule) while the other labels' files mostly have them: a model can learn
# "empty top bands" as that label
DEFAULT_FRONTEND = FrontendConfig()
DEFAULT_FRONTEND_SOURCE = "kws-train's default"  # where the low-band check's top band came from, as said
LOW_BAND_SHARE = 0.5          # at least half of the label's files lack the top bands ...
LOW_BAND_OTHERS_RATIO = 0.5   # ... and the other labels' share is at most half the label's
HASH_CHUNK = 1 << 20
SECONDS_PER_MINUTE = 60
MINUTES_PER_HOUR = 60


@dataclass
class LabelStats:
    """Per-label accumulators."""

    files: int = 0
    total_s: float = 0.0
    min_s: float = float("inf")
    max_s: float = 0.0
    rates: dict = field(default_factory=lambda: defaultdict(int))
    channels: dict = field(default_factory=lambda: defaultdict(int))
    formats: dict = field(default_factory=lambda: defaultdict(int))

    def to_dict(self) -> dict:
        return {"files": self.files, "total_s": round(self.total_s, 3),
                "min_s": round(self.min_s, 3) if self.files else 0.0, "max_s": round(self.max_s, 3),
                "sample_rates": {str(k): v for k, v in sorted(self.rates.items())},
                "channels": {str(k): v for k, v in sorted(self.channels.items())},
                "sample_formats": dict(sorted(self.formats.items()))}


def merged(stats: Sequence[LabelStats]) -> LabelStats:
    """One label's accumulators from several folders' (the folders kws-train trains as one label)."""
    out = LabelStats()
    for s in stats:
        out.files += s.files
        out.total_s += s.total_s
        out.min_s, out.max_s = min(out.min_s, s.min_s), max(out.max_s, s.max_s)
        for mine, theirs in ((out.rates, s.rates), (out.channels, s.channels), (out.formats, s.formats)):
            for key, n in theirs.items():
                mine[key] += n
    return out


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def passed_by(path: Path, root: Path) -> bool:
    """Whether kws-train passes the file by unread and unsaid: its name, or a folder's between
    ``root`` and it, starts with '.' (macOS's ._ companion of every file copied to a USB stick or
    zipped, .Trash) or is macOS's __MACOSX."""
    from kws.trainer.dataset import passed_by_name

    return any(passed_by_name(part) for part in path.relative_to(root).parts)


def peak_dbfs(samples: np.ndarray) -> float:
    """Peak level in dB relative to full scale of every sample (all channels of (frames, channels)
    samples; -inf for digital silence)."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def _entries(root: Path, unread: Sequence[Path]) -> list[Path]:
    """Every entry under ``root`` as kws-train reaches it, in one walk: a folder of ``root`` that is a
    link to a folder (a label, or a _background_noise_/ shared between datasets) is entered, as
    kws-train enters it; links to folders further down are listed, not entered, so a link loop
    cannot recur. The folders of ``unread`` (unread_folders) are left out."""
    entries = []
    for top in root.iterdir():
        if top in unread:
            continue
        entries.append(top)
        if top.is_dir():
            entries.extend(top.rglob("*"))
    return entries


def speaker_stats(root: Path, group_pattern: str, validation_percentage: float,
                  testing_percentage: float, words: Sequence[str] = ()) -> dict:
    """Speakers per split as kws-train would split the folder (same rule, same lists), and the
    warning kws-train prints when voices cannot be kept apart; kws-train's DataError (e.g. fewer
    than two labels) when it would refuse the folder.
    ``words``: the label folders to split as words (default: every one, as kws-train's); the other
    label folders holding audio are listed in ``unknown_folders`` (kws-train trains them as _unknown_)."""
    from kws.trainer import dataset as ds

    index = ds.scan_dataset(root, list(words), 0, 0, validation_percentage, testing_percentage, seed=0,
                            group_pattern=group_pattern)
    info = index.speakers()
    info["split_by"] = index.split_source()
    info["warning"] = index.speaker_warning()
    info["list_warning"] = index.list_warning()
    info["list_case_warning"] = index.list_case_warning()
    info["list_gap_warning"] = index.list_gap_warning(validation_percentage, testing_percentage)
    info["split_warning"] = index.empty_split_warning(validation_percentage, testing_percentage)
    info["unknown_folders"] = list(index.unknown_folders)
    return info


def dataset_stats(root: str | os.PathLike, expected_rate: int = EXPECTED_RATE, group_pattern: str | None = None,
                  validation_percentage: float = 10.0, testing_percentage: float = 10.0,
                  frontend: FrontendConfig = DEFAULT_FRONTEND, frontend_source: str = DEFAULT_FRONTEND_SOURCE,
                  wanted_words: Sequence[str] = ()) -> dict:
    """Walk ``root`` (one folder per label) and return the summary and a list of problems.

    Each problem is ``{"kind", "path" or "label", "detail"}``; kinds: unreadable, wrong_rate,
    clipping, silent, duplicate, truncated, few_files, low_band_label (most of a label's files at a rate
    that leaves the top mel bands empty, unlike the other labels'), empty_label, nested, label_name,
    outside_labels, unread_folder (a '_' folder of audio kws-train does not read), not_trainable (kws-train would
    refuse the folder: fewer than two usable labels). ``speakers`` says how many speakers (groups of
    ``group_pattern``, default speech_commands' ``_nohash_`` rule) each split would get (None for a
    folder kws-train refuses). ``frontend`` is the model's (its upper_hz the top band the low-band
    check tests against), ``frontend_source`` where it came from, as the problem says it.
    ``wanted_words`` (kws-train's data.wanted_words) are the words kws-train would train: the other
    label folders' files are _unknown_ (``unknown_folders``, from kws-train's own scan) and are no label
    of their own to check for few files or empty top bands; none: every label folder is a word.
    """
    from kws.trainer.config import DEFAULT_GROUP_PATTERN
    from kws.trainer.dataset import UNKNOWN_DIR, DataError, unread_folders

    root = Path(root)
    if not root.is_dir():
        raise AudioError(f"{root}: not a folder (give a dataset folder with one sub-folder per label)")
    labels: dict[str, LabelStats] = defaultdict(LabelStats)
    problems: list[dict] = []
    by_hash: dict[str, list[str]] = defaultdict(list)
    unread = unread_folders(root)  # '_' folders kws-train does not read: one problem each, not a label
    audio_paths = sorted(p for p in _entries(root, unread)
                         if p.suffix.lower() in AUDIO_SUFFIXES and not passed_by(p, root))
    wavs = [p for p in audio_paths if p.is_file()]
    for link in (p for p in audio_paths if p.is_symlink() and not p.exists()):  # kws-train skips these
        problems.append({"kind": "unreadable", "path": str(link.relative_to(root)),
                         "detail": f"a link to {os.readlink(link)}, which does not exist"})
    for path in wavs:
        rel = path.relative_to(root)
        label = rel.parts[0] if len(rel.parts) > 1 else "."
        try:
            samples, info = read_audio(path, channels=True)  # levels per channel: the mono mean hides clipping
        except AudioError as exc:
            problems.append({"kind": "unreadable", "path": str(rel), "detail": str(exc).split(": ", 1)[-1]})
            continue
        if info.cut_short:
            short = wav_shortfall(path)
            problems.append({"kind": "truncated", "path": str(rel),
                             "detail": (f"the header declares {short[0]:.3f} s, the file holds {short[1]:.3f} s"
                                        if short else f"{info.container} cut short {info.cut_short}")
                                       + " (cut off while copied or recorded?)"})
        stats = labels[label]
        dur = info.duration_s
        stats.files += 1
        stats.total_s += dur
        stats.min_s = min(stats.min_s, dur)
        stats.max_s = max(stats.max_s, dur)
        stats.rates[info.sample_rate] += 1
        stats.channels[info.channels] += 1
        stats.formats[info.sample_format] += 1
        by_hash[_file_hash(path)].append(str(rel))
        if info.sample_rate != expected_rate:
            problems.append({"kind": "wrong_rate", "path": str(rel),
                             "detail": f"{info.sample_rate} Hz (expected {expected_rate}; it will be resampled)"})
        clipped = float(np.mean(np.abs(samples) >= FULL_SCALE))
        if clipped > CLIP_FRACTION:
            problems.append({"kind": "clipping", "path": str(rel),
                             "detail": f"{100 * clipped:.2f}% of samples at full scale"})
        level = peak_dbfs(samples)
        if level < SILENT_DBFS:
            problems.append({"kind": "silent", "path": str(rel),
                             "detail": f"peak {level:.1f} dBFS (< {SILENT_DBFS:.0f})"})
    for paths in by_hash.values():
        if len(paths) > 1:
            problems.append({"kind": "duplicate", "path": paths[0],
                             "detail": "identical to " + ", ".join(paths[1:])})
    word_labels = {k: v for k, v in labels.items() if k not in (BACKGROUND_DIR, ".")}
    unusable = set()  # label folders kws-train would refuse or find empty
    # the problems a folder has only as a wanted word (its name, no audio), and which folders hold audio
    # directly (as kws-train reads them): said only of the folders kws-train trains as words (below)
    as_word: dict[int, str] = {}
    direct_audio: set[str] = set()
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        audio = [p for p in folder.rglob("*")
                 if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not passed_by(p, folder)]
        if any(p.parent == folder for p in audio):
            direct_audio.add(folder.name)
        if not audio:
            problems.append({"kind": "empty_label", "label": folder.name,
                             "detail": "no audio files (kws-train refuses it as a wanted word)"})
            as_word[id(problems[-1])] = folder.name
        elif folder.name not in labels:  # each of its files is listed as unreadable above
            problems.append({"kind": "empty_label", "label": folder.name,
                             "detail": f"none of its {len(audio)} audio files is readable "
                                       "(kws-train refuses it as a wanted word)"})
            as_word[id(problems[-1])] = folder.name
        elif not any(p.parent == folder for p in audio):
            unusable.add(folder.name)
            deeper = sorted({p.relative_to(folder).parts[0] for p in audio})
            problems.append({"kind": "nested", "label": folder.name,
                             "detail": f"its {len(audio)} audio files are in sub-folders ({', '.join(deeper[:4])}"
                                       f"{', ...' if len(deeper) > 4 else ''}), and kws-train reads the files directly "
                                       f"in a label folder: is the dataset {root / folder.name}?"})
        if not is_valid_label(folder.name):
            unusable.add(folder.name)
            shown = folder.name if len(folder.name) <= MAX_LABEL_CHARS else folder.name[:MAX_LABEL_CHARS] + "..."
            problems.append({"kind": "label_name", "label": shown.encode("unicode_escape").decode("ascii"),
                             "detail": f"a label is 1..{MAX_LABEL_CHARS} printable characters with no space at "
                                       "either end; rename the folder "
                                       "or leave it out with --words"})
            as_word[id(problems[-1])] = folder.name
    for folder in unread:
        n = sum(1 for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not passed_by(p, folder))
        problems.append({"kind": "unread_folder", "label": folder.name,
                         "detail": f"its {n} audio files are not read: of the folders named with a leading '_', "
                                   f"kws-train reads only {BACKGROUND_DIR}/ (noise) and {UNKNOWN_DIR}/ (other words); "
                                   f"to use them, rename it without its leading '_' (a word) or move them into "
                                   f"{UNKNOWN_DIR}/"})
    if "." in labels:
        problems.append({"kind": "outside_labels", "label": ".",
                         "detail": f"{labels['.'].files} audio files directly in {root}, not in a label folder "
                                   "(kws-train reads label sub-folders only)"})
    speakers, refused = None, None
    try:
        # word folders as kws-train sees them: _unknown_/ (and any other _name) is no word
        words = list(wanted_words) or sorted(k for k in word_labels if k not in unusable and not k.startswith("_"))
        if not words:  # scan_dataset would take every folder, the unreadable ones too
            raise DataError(f"{root}: no word folder holds a readable audio file")
        speakers = speaker_stats(root, DEFAULT_GROUP_PATTERN if group_pattern is None else group_pattern,
                                 validation_percentage, testing_percentage, words)
    except DataError as exc:
        refused = {"kind": "not_trainable", "label": ".",
                   "detail": "kws-train refuses the folder: " + str(exc).removeprefix(f"{root}: ")}
    # folders that are no wanted word train as _unknown_ (kws-train's scan says which), not as labels
    unknown_folders = speakers.pop("unknown_folders") if speakers is not None else []
    if not wanted_words:  # every label folder is a word; those left out above are flagged as unusable
        unknown_folders = []
    elif speakers is not None:
        # kws-train's scan took the wanted words: it refuses a wanted folder without audio directly in it
        # or with a bad name, so the others without audio, and those it folds into _unknown_, are no
        # word, and what they would lack as one is no problem of theirs
        words_trained = direct_audio - set(unknown_folders)
        problems = [p for p in problems if id(p) not in as_word or as_word[id(p)] in words_trained]
    if unknown_folders:
        word_labels = {k: v for k, v in word_labels.items() if k not in unknown_folders}
        word_labels[UNKNOWN_DIR] = merged([labels[k] for k in (UNKNOWN_DIR, *unknown_folders) if k in labels])
    if word_labels:
        median = float(np.median([s.files for s in word_labels.values()]))
        for name, s in sorted(word_labels.items()):
            if s.files < FEW_FILES or s.files < FEW_FRACTION_OF_MEDIAN * median:
                problems.append({"kind": "few_files", "label": name,
                                 "detail": f"{s.files} files (median label has {median:g})"})
    model_frontend = expected_frontend(expected_rate, frontend)
    if model_frontend is not None:
        if model_frontend.upper_hz < frontend.upper_hz:
            frontend_source += f", lowered to half of {expected_rate} Hz"
        problems.extend(low_band_labels(word_labels, model_frontend, frontend_source))
    if refused is not None:
        problems.append(refused)
    return {
        "root": str(root),
        "files": sum(s.files for s in labels.values()),
        "total_s": round(sum(s.total_s for s in labels.values()), 3),
        "labels": {k: labels[k].to_dict() for k in sorted(labels)},
        "speakers": speakers,
        "unknown_folders": unknown_folders,
        "problems": problems,
    }


def expected_frontend(expected_rate: int, frontend: FrontendConfig = DEFAULT_FRONTEND) -> FrontendConfig | None:
    """``frontend`` (default: kws-train's) for a model at ``expected_rate``, its upper_hz lowered to that rate's
    Nyquist frequency where it is above it (kws-train refuses it higher); None for a rate no frontend takes."""
    try:
        return replace(frontend, sample_rate=expected_rate, upper_hz=min(frontend.upper_hz, expected_rate / 2))
    except ValueError:
        return None


def low_band_labels(labels: dict[str, LabelStats], frontend: FrontendConfig = DEFAULT_FRONTEND,
                    frontend_source: str = DEFAULT_FRONTEND_SOURCE) -> list[dict]:
    """A ``low_band_label`` problem for each label most of whose files are at a rate leaving
    ``frontend``'s top mel bands empty (``missing_band``) where the other labels' files mostly are not:
    the model can then tell that label by the empty bands rather than by the word. The problem names
    the top band checked and ``frontend_source``, where that frontend came from."""
    low = {name: sum(n for rate, n in s.rates.items() if frontend.missing_band(rate) is not None)
           for name, s in labels.items()}
    total_files = sum(s.files for s in labels.values())
    total_low = sum(low.values())
    problems = []
    for name, s in sorted(labels.items()):
        others = total_files - s.files
        if not s.files or not others:
            continue
        share, others_share = low[name] / s.files, (total_low - low[name]) / others
        if share >= LOW_BAND_SHARE and others_share <= LOW_BAND_OTHERS_RATIO * share:
            rates = sorted(r for r in s.rates if frontend.missing_band(r) is not None)
            problems.append({"kind": "low_band_label", "label": name, "detail": (
                f"{low[name]} of its {s.files} files ({100 * share:.0f}%) are below {2 * frontend.upper_hz:g} Hz "
                f"({', '.join(map(str, rates))} Hz), against {100 * others_share:.0f}% of the other labels' files: "
                f"their mel bands above {rates[-1] / 2:g} Hz (up to features.upper_hz {frontend.upper_hz:g} Hz, "
                f"{frontend_source}) are empty, and a "
                f"model can learn that as the label; record it at {frontend.sample_rate} Hz or give it clips at "
                "the other labels' rate")})
    return problems


def duration_text(seconds: float) -> str:
    """A total duration to one decimal in the unit that reads best: seconds under a minute, minutes
    under an hour, else hours (so a 2 s dataset reads '2.0 s', not '0.0 min')."""
    if round(seconds, 1) < SECONDS_PER_MINUTE:
        return f"{seconds:.1f} s"
    minutes = seconds / SECONDS_PER_MINUTE
    if round(minutes, 1) < MINUTES_PER_HOUR:
        return f"{minutes:.1f} min"
    return f"{minutes / MINUTES_PER_HOUR:.1f} h"


def format_stats(stats: dict) -> str:
    """A human-readable table of ``dataset_stats`` output."""
    lines = [f"{stats['root']}: {stats['files']} files, {duration_text(stats['total_s'])}",
             f"{'label':<24}{'files':>7}{'total s':>10}{'min s':>8}{'max s':>8}  rates / channels / formats"]
    for name, s in stats["labels"].items():
        rates = ",".join(f"{r}" for r in s["sample_rates"])
        chans = ",".join(s["channels"])
        fmts = ",".join(s["sample_formats"])
        lines.append(f"{name:<24}{s['files']:>7}{s['total_s']:>10.1f}{s['min_s']:>8.2f}{s['max_s']:>8.2f}"
                     f"  {rates} Hz / {chans} ch / {fmts}")
    spk = stats.get("speakers")
    if spk:
        per = spk["per_split"]
        lines.append(f"speakers (group_pattern {spk['group_pattern']!r}, split by {spk['split_by']}): "
                     f"training {per['training']}, validation {per['validation']}, testing {per['testing']}"
                     + (f"; {spk['files_without_group']} of {spk['files']} files without a group"
                        if spk["files_without_group"] else ""))
        for key in ("list_warning", "list_case_warning", "list_gap_warning", "warning", "split_warning"):
            if spk.get(key):
                lines.append(spk[key])
    if stats.get("unknown_folders"):
        folded = stats["unknown_folders"]
        lines.append(f"_unknown_: kws-train trains the files of {', '.join(folded)} as _unknown_ "
                     f"({'it is' if len(folded) == 1 else 'they are'} not in data.wanted_words)")
    probs = stats["problems"]
    lines.append(f"problems: {len(probs) or 'none'}")
    for p in probs:
        lines.append(f"  {p['kind']:<11} {p.get('path', p.get('label'))}: {p['detail']}")
    return "\n".join(lines)
