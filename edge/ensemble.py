"""An ensemble: two or more converted models on the same audio, their per-hop scores averaged.

Each member runs its own recognizer (its streaming form, its window model or the embedding pipeline, at
its own hop) on every chunk. The first member sets the ensemble's hop: at each of its hops the ensemble
takes every other member's latest scores at or before that time (``hold_latest_mean``), averages them
label by label (columns in the first member's label order) and hands the mean to the ensemble's own
smoother and thresholds (``HopDecisions._decide``), which ``kws-eval --calibrate`` chooses for the
ensemble as for any model. A hop before every member has scored once gives no result. The members' own
smoothing and thresholds are not used. Like ``Recognizer``, the result does not depend on chunk sizes:
all members have consumed the same audio when the first member's hops of a chunk are merged.

Made by ``kws ensemble`` (kws.evaluation.ensemble_cli); ``Recognizer.from_manifest`` opens one.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import KwsError, ManifestError
from .manifest import ENSEMBLE_MERGES, Manifest, load_manifest
from .recognizer import (Detection, HopDecisions, HopTimer, stream_time_ms, threshold_override,
                         to_float_audio)
from .smoothing import PosteriorSmoother, check_decides

ENSEMBLE_FORM = "ensemble"


def label_columns(labels: Sequence[str], member_labels: Sequence[str]) -> np.ndarray:
    """Indices that put a member's score columns in ``labels``' order (ValueError unless the two
    hold the same labels)."""
    if sorted(labels) != sorted(member_labels):
        raise ValueError(f"labels differ: {', '.join(labels)} vs {', '.join(member_labels)}")
    return np.array([list(member_labels).index(label) for label in labels], np.intp)


def hold_latest_mean(base_times: np.ndarray, base_scores: np.ndarray,
                     others: Sequence[tuple[np.ndarray, np.ndarray]],
                     held: Sequence[np.ndarray | None]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """The mean of the first member's scores and every other member's latest scores at the first
    member's hop times.

    ``others[k]`` is member k+1's (times, scores) since the last call, its columns already in the
    first member's order; ``held[k]`` its latest row before them (None if it has not scored yet).
    Returns (times, mean scores) of the hops where every member has scored, and the rows to hold
    for the next call. Pure: the bench calls it once on whole streams, the recognizer per chunk."""
    keep = np.ones(len(base_times), bool)
    total = np.asarray(base_scores, np.float64).copy()
    new_held: list[np.ndarray | None] = []
    for (times, scores), row in zip(others, held):
        latest = np.searchsorted(times, base_times, side="right") - 1  # -1: none yet in this call
        rows = scores[np.maximum(latest, 0)] if len(times) else np.zeros_like(total)
        before = latest < 0
        if row is None:
            keep &= ~before
        elif before.any():
            rows = rows.copy() if len(times) else np.broadcast_to(row, total.shape).copy()
            rows[before] = row
        total += rows
        new_held.append(scores[-1] if len(times) else row)
    mean = (total[keep] / (len(others) + 1)).astype(np.float32)
    return base_times[keep], mean, new_held


class EnsembleRecognizer(HopDecisions):
    """Continuous keyword recognition with an ensemble (see the module docstring); the same interface
    as ``Recognizer``: ``process``, ``reset``, ``pop_scores``, ``timer``, ``describe_form`` ..."""

    def __init__(self, members: Sequence, manifest: Manifest, thresholds=None, smoothing=None,
                 keep_scores: bool = False, path: Path | None = None):
        if len(members) < 2:
            raise KwsError("an ensemble needs at least two members")
        self.manifest = manifest
        self.path = path  # the ensemble's folder, where known
        self.members = list(members)
        first = self.members[0]
        rates = {m.sample_rate for m in self.members}
        if len(rates) != 1:
            raise ManifestError(f"ensemble members run at different sample rates ({', '.join(map(str, rates))} Hz)")
        self._columns = []
        for member in self.members[1:]:
            try:
                self._columns.append(label_columns(first.labels, member.labels))
            except ValueError as exc:
                raise ManifestError(f"ensemble members: {exc}") from None
        config = replace(smoothing or manifest.smoothing, hop_ms=first.hop_ms)
        check_decides(config)
        self.smoothing = config
        self.smoother = PosteriorSmoother(first.labels, config,
                                          manifest.thresholds if thresholds is None else thresholds,
                                          manifest.ignore_labels)
        self.timer = HopTimer()
        self._init_scores(keep_scores)
        self.form_note = ""
        self.reset()

    @classmethod
    def from_manifest(cls, path: str | os.PathLike, model: str | None = None, hop_ms: float | None = None,
                      threshold: float | None = None, num_threads: int = 1, runtime: str | None = None,
                      keep_scores: bool = False, streaming: bool = True) -> "EnsembleRecognizer":
        """The ensemble whose manifest is ``path`` (a manifest.json or its folder). ``model`` ("int8",
        "float") runs that model of every member instead of the one the ensemble names; ``hop_ms``
        sets the first member's hop; ``threshold`` replaces every label's threshold."""
        from .recognizer import Recognizer

        manifest_path = Path(path)
        if manifest_path.is_dir():
            manifest_path = manifest_path / "manifest.json"
        manifest = load_manifest(manifest_path)
        if manifest.ensemble is None:
            raise ManifestError(f"{manifest_path}: not an ensemble (family {manifest.family!r})")
        if manifest.ensemble.merge not in ENSEMBLE_MERGES:
            raise ManifestError(f"{manifest_path}: ensemble.merge {manifest.ensemble.merge!r} is not one this kws "
                                f"runs ({', '.join(ENSEMBLE_MERGES)}); upgrade kws")
        members = []
        for i, entry in enumerate(manifest.ensemble.members):
            folder = manifest_path.parent / entry.path
            member_manifest = folder / "manifest.json"
            if not member_manifest.is_file():
                raise ManifestError(f"{manifest_path}: member {entry.path} has no manifest.json "
                                    f"(in {manifest_path.parent})")
            if load_manifest(member_manifest).ensemble is not None:
                raise ManifestError(f"{member_manifest}: an ensemble cannot be a member of another")
            members.append(Recognizer.from_manifest(member_manifest, model=model or entry.model,
                                                    hop_ms=hop_ms if i == 0 else None, num_threads=num_threads,
                                                    runtime=runtime, keep_scores=True, streaming=streaming))
        smoothing, thresholds = threshold_override(manifest.smoothing, threshold)
        return cls(members, manifest, thresholds=thresholds, smoothing=smoothing, keep_scores=keep_scores,
                   path=manifest_path.parent)

    # --- properties (as Recognizer's) -----------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.members[0].sample_rate

    @property
    def hop_ms(self) -> float:
        return self.smoothing.hop_ms

    @property
    def hop_samples(self) -> int:
        return self.members[0].hop_samples

    @property
    def window_samples(self) -> int:
        """The longest member's window: every member hears the end of a recording through."""
        return max(m.window_samples for m in self.members)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.members[0].labels)

    @property
    def form(self) -> str:
        return ENSEMBLE_FORM

    @property
    def runtime(self):
        """The first member's runtime (``.name``, ``.version``)."""
        return self.members[0].runtime

    @property
    def audio(self):
        """The last clip of audio (the first member's ring), e.g. to save a detection."""
        return self.members[0].audio

    def describe_form(self) -> str:
        return (f"ensemble of {len(self.members)}, scores averaged at the first's hops: "
                + "; ".join(f"{m.hop_ms:g} ms {m.describe_form()}" for m in self.members))

    @property
    def samples_seen(self) -> int:
        return self.members[0].samples_seen

    @property
    def time_s(self) -> float:
        return self.members[0].time_s

    # --- processing -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new stream in every member and in the ensemble's smoother."""
        for member in self.members:
            member.reset()
        self.smoother.reset()
        self._unscored_s = 0.0
        self._held: list[np.ndarray | None] = [None] * (len(self.members) - 1)
        self._clear_scores()

    def process(self, chunk: np.ndarray) -> list[Detection]:
        """Consume samples (any length, int16 or float at ``sample_rate``); return new detections.
        Every member consumes the chunk, then the first member's new hops are merged and decided;
        the chunk's time is shared evenly among those hops."""
        start = time.perf_counter()
        audio = to_float_audio(chunk)
        for member in self.members:
            member.process(audio)
        base_times, base_scores = self.members[0].pop_scores()
        others = []
        for member, columns in zip(self.members[1:], self._columns):
            times, scores = member.pop_scores()
            others.append((times, scores[:, columns]))
        times, merged, self._held = hold_latest_mean(base_times, base_scores, others, self._held)
        detections = []
        for t, row in zip(times, merged):
            det = self._decide(row, stream_time_ms(t, self.sample_rate))
            if det is not None:
                detections.append(det)
        elapsed = self._unscored_s + time.perf_counter() - start
        if len(times):
            for _ in range(len(times)):
                self.timer.add(elapsed / len(times))
            elapsed = 0.0
        self._unscored_s = elapsed  # a chunk without a hop: its time goes to the next hop's
        return detections
