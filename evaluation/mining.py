"""Hard-negative mining (``kws-mine``): run a trained model in streaming mode over long keyword-free
recordings, keep the windows whose keyword score comes near or above the detection threshold, and
continue training with them as ``_unknown_``, for a few rounds.

Each round measures false accepts per hour on the negatives before and after its training, with
the edge smoother and kws-eval's counting (``scoring.negatives_false_accepts``). Everything a round
decides is written to ``mining.json`` in the run folder before it trains, so an interrupted
``kws-mine`` rerun continues where it stopped (training itself resumes from its last checkpoint).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from kws.edge.audio import stream_audio
from kws.edge.errors import AudioError, KwsError
from kws.edge.frontend import Frontend, FrontendConfig
from kws.edge.manifest import Manifest, atomic_write_bytes, atomic_write_text
from kws.edge.manifest_schema import SMOOTHING_RANGES
from kws.edge.recognizer import hop_samples_of
from kws.edge.smoothing import check_decides
from kws.edge.stopping import removed_after

from .scoring import ScoredAudio, negatives_false_accepts
from .streaming_metrics import fa_rate_text

SCORE_BATCH = 512  # windows per model call while scoring a recording
MIN_SEPARATION_S = 0.5  # two kept windows of one file start at least this far apart
DEFAULT_ROUNDS = 3
DEFAULT_EPOCHS_PER_ROUND = 3
DEFAULT_WINDOWS_PER_ROUND = 500
DEFAULT_MARGIN = 0.2  # keep windows scoring at least threshold - margin
MS_PER_S = 1000.0
FLOAT_SCORER = ".mining_float.tflite"  # the run's model as float TFLite, while scoring
TF_LOGGER = "tensorflow"  # the Python logger TensorFlow's warnings go through
RETRACING_WARNING = "triggered tf.function retracing"  # in the text of the one TF warning kws-mine drops
# settings mining.json records (and a rerun goes on with), and the values kws-mine's options take
RECORDED_RANGES = {"threshold": (0.0, 1.0), "hop_ms": (1.0, SMOOTHING_RANGES["hop_ms"][1]),
                   "margin": (0.0, 1.0)}
# mining.json's key for --rounds (its "rounds" lists the rounds themselves)
ROUNDS_IN_ALL = "rounds_in_all"
# mining.json's whole-number settings a rerun goes on with, and their defaults
RECORDED_COUNTS = {ROUNDS_IN_ALL: DEFAULT_ROUNDS, "windows_per_round": DEFAULT_WINDOWS_PER_ROUND,
                   "epochs_per_round": DEFAULT_EPOCHS_PER_ROUND}
# the kws-mine option of each recorded setting, as the line naming those a rerun reuses spells them
OPTION_OF = {ROUNDS_IN_ALL: "--rounds", "threshold": "--threshold", "hop_ms": "--hop-ms", "margin": "--margin",
             "windows_per_round": "--windows", "epochs_per_round": "--epochs"}


@dataclass(frozen=True)
class MiningOptions:
    """How many rounds, how many windows and epochs each, and which scores count as hard."""

    rounds: int | None = None  # rounds in all, earlier ones counted; None: an earlier kws-mine's, else DEFAULT_ROUNDS
    epochs_per_round: int | None = None  # None: an earlier kws-mine's on this run, else DEFAULT_EPOCHS_PER_ROUND
    windows_per_round: int | None = None  # None: an earlier kws-mine's on this run, else DEFAULT_WINDOWS_PER_ROUND
    margin: float | None = None  # None: an earlier kws-mine's on this run, else DEFAULT_MARGIN
    threshold: float | None = None  # None: an earlier kws-mine's on this run, else smoothing.detection_threshold
    hop_ms: float | None = None  # None: an earlier kws-mine's on this run, else smoothing.hop_ms (what kws-listen runs)
    negatives: tuple[str, ...] = field(default_factory=tuple)  # (): the run's data.negatives


def window_spectra(path: str, frontend: FrontendConfig, hop_ms: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(end samples, power spectra) of the recording's clip-long windows that end on a hop boundary,
    in batches as its blocks are read (bounded memory): the windows the streaming recognizer scores,
    the first once a whole clip has arrived, and on through one clip of silence after the end, as
    ``Recognizer.finish`` hears a file out. A window's spectra, (frames, fft_size // 2 + 1), are
    ``Frontend.power_spectrum`` of its clip's frames: each frame of the recording is transformed once
    and a window takes the frames from its start on (frames start every stride from the recording's
    first sample, a hop is a whole number of strides, and a frame's FFT is its own, whatever the
    batch). A yielded batch is a read-only view. The generator's return value is the file's length
    in samples."""
    fe = Frontend(frontend)
    clip, stride, n_frames = frontend.clip_samples, frontend.stride_samples, frontend.num_frames
    hop = hop_samples_of(frontend, hop_ms)
    step = hop // stride  # frames from one window's start to the next one's
    audio = np.zeros(0, np.float32)  # the samples from the first frame not transformed yet on
    spectra = np.zeros((0, frontend.fft_size // 2 + 1), np.float32)  # the last frames transformed
    transformed, heard, next_end, length = 0, 0, clip, 0

    def blocks() -> Iterator[np.ndarray]:
        nonlocal length
        for block in stream_audio(path, frontend.sample_rate):
            length += len(block)
            yield block
        if length:  # an empty file stays empty (its reader says so)
            yield np.zeros(clip, np.float32)

    for chunk in blocks():
        heard += len(chunk)
        audio = np.concatenate([audio, chunk])
        n = fe.num_frames_for(len(audio))
        if n:
            spectra = np.concatenate([spectra, fe.power_spectrum(fe.frame(audio))])
            audio, transformed = audio[n * stride:], transformed + n
        # spectra[0] is the recording's frame transformed - len(spectra); the next window begins at
        # frame (next_end - clip) // stride (past the frames transformed where a hop is longer than a clip)
        start = (next_end - clip) // stride - (transformed - len(spectra))
        count = (heard - next_end) // hop + 1 if heard >= next_end else 0
        if count:  # every frame of these windows ends within their clips, so within the samples heard
            windows = sliding_window_view(spectra[start:], n_frames, axis=0)[::step][:count]
            yield next_end + hop * np.arange(count), windows.transpose(0, 2, 1)
            next_end += hop * count
            start += step * count
        spectra = spectra[min(start, len(spectra)):]
    return length


def window_scores(predict: Callable[[np.ndarray], np.ndarray], n_labels: int, paths: Sequence[str],
                  frontend: FrontendConfig, hop_ms: float) -> list[ScoredAudio]:
    """Per-hop scores of a classifier (``predict``: a batch of up to SCORE_BATCH feature arrays ->
    probabilities) over each recording (see ``window_spectra``), windows of all files batched
    together. A batch's features are computed from its windows' spectra in one call, as
    ``Frontend.features`` of a batch of their clips gives them: the matrix products of the mel
    filters and the DCT round differently with the number of frames they are given at once."""
    fe = Frontend(frontend)
    sr = frontend.sample_rate
    batch = np.zeros((SCORE_BATCH, frontend.num_frames, frontend.fft_size // 2 + 1), np.float32)
    owners = np.zeros(SCORE_BATCH, np.int64)  # the file index of each pending window
    pending = 0
    ends: list[list[np.ndarray]] = [[] for _ in paths]
    scores: list[list[np.ndarray]] = [[] for _ in paths]
    totals = [0] * len(paths)

    def flush() -> None:
        nonlocal pending
        if not pending:
            return
        out = np.asarray(predict(fe.power_to_features(batch[:pending])), np.float32)
        for k in np.unique(owners[:pending]):
            scores[k].append(out[owners[:pending] == k])
        pending = 0

    for k, path in enumerate(paths):
        gen = window_spectra(path, frontend, hop_ms)
        while True:
            try:
                window_ends, windows = next(gen)
            except StopIteration as stop:
                totals[k] = stop.value
                break
            ends[k].append(window_ends)
            done = 0
            while done < len(windows):
                take = min(SCORE_BATCH - pending, len(windows) - done)
                batch[pending:pending + take] = windows[done:done + take]
                owners[pending:pending + take] = k
                pending, done = pending + take, done + take
                if pending == SCORE_BATCH:
                    flush()
    flush()
    return [ScoredAudio(times=(np.concatenate(ends[k]) if ends[k] else np.zeros(0, np.int64)).astype(np.float64) / sr,
                        scores=np.concatenate(scores[k]) if scores[k] else np.zeros((0, n_labels), np.float32),
                        duration_s=totals[k] / sr, source=str(path)) for k, path in enumerate(paths)]


def keras_scores(model, paths: Sequence[str], frontend: FrontendConfig, hop_ms: float) -> list[ScoredAudio]:
    """``window_scores`` of a Keras model (every batch padded to SCORE_BATCH windows, so Keras traces its
    predict step once)."""
    def predict(feats: np.ndarray) -> np.ndarray:
        padded = np.zeros((SCORE_BATCH, *feats.shape[1:]), np.float32)
        padded[:len(feats)] = feats
        return np.asarray(model.predict_on_batch(padded))[:len(feats)]

    return window_scores(predict, int(model.output_shape[-1]), paths, frontend, hop_ms)


def float_tflite_scores(model, paths: Sequence[str], frontend: FrontendConfig, hop_ms: float,
                        folder: Path) -> list[ScoredAudio]:
    """``window_scores`` of the model converted to float TFLite (the same weights; kws-convert's
    float conversion, outputs within 1e-6 of Keras), several times faster than Keras on a CPU for
    one window at a time. The .tflite is written to ``folder`` while scoring."""
    from kws.converters.tflite import convert_float
    from kws.edge.runtime import TFLiteModel

    path = folder / FLOAT_SCORER
    atomic_write_bytes(path, convert_float(model))
    with removed_after(lambda: path.unlink(missing_ok=True)):  # a second Ctrl-C cannot leave it in the run
        tfl = TFLiteModel(path)
        return window_scores(tfl.predict_batch, tfl.num_labels, paths, frontend, hop_ms)


def pick_hard_windows(parts: Sequence[ScoredAudio], keyword_columns: Sequence[int], floor: float, n: int,
                      clip_s: float, taken: Sequence[tuple[str, float]] = ()) -> list[dict]:
    """Up to ``n`` windows whose highest keyword score is at least ``floor``, highest first, at
    least MIN_SEPARATION_S apart within a file and from windows already ``taken``."""
    candidates = []
    for part in parts:
        if not len(part.times):
            continue
        top = part.scores[:, list(keyword_columns)].max(axis=1)
        for i in np.flatnonzero(top >= floor):
            candidates.append((float(top[i]), part.source, max(0.0, float(part.times[i]) - clip_s)))
    candidates.sort(key=lambda c: -c[0])
    chosen: dict[str, list[float]] = {}
    for path, start in taken:
        chosen.setdefault(path, []).append(start)
    out = []
    for score, path, start in candidates:
        if len(out) >= n:
            break
        if any(abs(start - s) < MIN_SEPARATION_S for s in chosen.get(path, ())):
            continue
        chosen.setdefault(path, []).append(start)
        out.append({"file": path, "start_s": round(start, 4), "score": round(score, 4)})
    return out


def measured_alike(rounds: Sequence[dict]) -> list[dict]:
    """The finished rounds whose false accepts compare with the last finished one's: the trailing run
    of them counted at its threshold and hop on as many hours of negatives (a count at another
    threshold, hop or on other recordings says nothing about what the training changed)."""
    def how(r: dict) -> tuple:
        return r.get("threshold"), r.get("hop_ms"), r["fa_before"]["hours"]

    alike: list[dict] = []
    for r in reversed([r for r in rounds if r.get("fa_after") is not None]):
        if alike and how(r) != how(alike[0]):
            break
        alike.insert(0, r)
    return alike


def run_manifest(cfg, labels: Sequence[str]) -> Manifest:
    """A manifest (no model files) carrying the run's labels, frontend and smoothing, for the smoother."""
    return Manifest(labels=tuple(labels), frontend=cfg.features, smoothing=cfg.smoothing)


class Miner:
    """The mining rounds of one run folder, resumable through ``mining.json``."""

    def __init__(self, run_path: str | Path, opts: MiningOptions, quiet: bool = False,
                 say: Callable[[str], None] | None = None):
        from kws.trainer.config import load_config
        from kws.trainer.negatives import MINED_FILE, index_negatives
        from kws.trainer.run import RunDir, run_to_give

        self.run = RunDir(Path(run_path))
        if not self.run.config.is_file() or not self.run.model.is_file():
            # kws-mine -m models/r2/dist means models/r2; a kws-convert --out elsewhere, its source run
            raise KwsError(f"{self.run.path}: not a finished training run (no {self.run.config.name} / "
                           f"{self.run.model.name}); "
                           + (run_to_give(self.run.path, "kws-mine -m") or "train it with kws-train first"))
        self.cfg = load_config(self.run.config)
        from kws.trainer.models import EMBEDDING_ARCHITECTURE

        if self.cfg.model.architecture == EMBEDDING_ARCHITECTURE:
            raise KwsError(f"{self.run.path}: kws-mine does not mine for the embedding family yet; train it "
                           "with --negatives (every window of the negatives is embedded once) and raise "
                           "data.negatives_percentage instead")
        from kws.converters.source import read_run_labels

        self.labels = list(read_run_labels(self.run))
        self.path = self.run.path / MINED_FILE
        self.record = self._read_record()
        # absolute, so mining.json's negatives and window files work from any folder later
        given = tuple(str(Path(d).expanduser().absolute()) for d in opts.negatives)
        sources = given or tuple(self.record.get("negatives", ())) or tuple(self.cfg.data.negatives)
        if not sources:
            raise KwsError("no negatives to mine: give --negatives DIR (or train with data.negatives)")
        self.negatives = index_negatives(sources)
        # an earlier kws-mine's settings: a rerun without --threshold / --hop-ms / --margin goes on with them
        self._earlier = {"threshold": self._recorded(self.record, "threshold", self.cfg.smoothing.detection_threshold),
                         "hop_ms": self._recorded(self.record, "hop_ms", self.cfg.smoothing.hop_ms)}
        self.threshold = float(opts.threshold) if opts.threshold is not None else self._earlier["threshold"]
        if opts.threshold is None:
            self._check_threshold(self.threshold)
        self.hop_ms = float(opts.hop_ms) if opts.hop_ms is not None else self._earlier["hop_ms"]
        self._check_hop(self.hop_ms)
        # only choosing a round's windows uses it: a round begun earlier keeps the windows it chose
        self.margin = (float(opts.margin) if opts.margin is not None
                       else self._recorded(self.record, "margin", DEFAULT_MARGIN))
        # as the margin: a round begun earlier keeps its windows and the epochs it was to train
        self.rounds = opts.rounds if opts.rounds is not None else self._recorded_count(ROUNDS_IN_ALL)
        self.windows_per_round = (opts.windows_per_round if opts.windows_per_round is not None
                                  else self._recorded_count("windows_per_round"))
        self.epochs_per_round = (opts.epochs_per_round if opts.epochs_per_round is not None
                                 else self._recorded_count("epochs_per_round"))
        self.opts = opts
        self.quiet = quiet
        self.say = say or (lambda msg: None if quiet else print(msg, file=sys.stderr, flush=True))
        self._last_scoring: tuple[tuple, tuple[list[ScoredAudio], dict]] | None = None  # score's key and result
        self._say_reused(opts)
        self._warn_if_round_left_unfinished()
        self.manifest = run_manifest(self.cfg, self.labels)
        self.keywords = [l for l in self.labels if l not in self.manifest.ignore_labels]
        # every recording mined in any round (kws-eval warns when it calibrates on one of them), also
        # where a rerun names other --negatives than the rounds before
        known = list(self.record.get("negatives", ()))
        self.record["negatives"] = known + [s for s in sources if s not in known]
        self.record.setdefault("rounds", [])
        self.record.setdefault("windows", [])
        self.record.update({ROUNDS_IN_ALL: self.rounds, "threshold": self.threshold, "hop_ms": self.hop_ms,
                            "margin": self.margin,
                            "windows_per_round": self.windows_per_round, "epochs_per_round": self.epochs_per_round,
                            "negatives_hours": round(self.negatives.seconds / 3600, 4)})

    def _read_record(self) -> dict:
        """mining.json of an earlier kws-mine on this run ({} if none); one line naming it if unreadable."""
        if not self.path.is_file():
            return {}
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError as exc:  # not JSON, or not UTF-8
            record, why = None, str(exc)
        else:
            why = "not a JSON object"
        if not isinstance(record, dict):
            raise KwsError(f"{self.path}: not a kws-mine record ({why}); move it away to mine this run afresh")
        return record

    def _recorded(self, where: dict, key: str, default: float, what: str = "") -> float:
        """``where[key]`` as mining.json holds it (``default`` where it does not say); KwsError naming
        the file where it is not a number in RECORDED_RANGES."""
        value = where.get(key)
        if value is None:
            return float(default)
        low, high = RECORDED_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise KwsError(f"{self.path}: {what}{key} {value!r} is not a number in {low:g}..{high:g}; move the "
                           "file away to mine this run afresh")
        return float(value)

    def _recorded_count(self, key: str) -> int:
        """``key`` of RECORDED_COUNTS as mining.json holds it (its default where it does not say);
        KwsError naming the file where it is not a whole number >= 1."""
        value = self.record.get(key)
        if value is None:
            return RECORDED_COUNTS[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KwsError(f"{self.path}: {key} {value!r} is not a whole number >= 1; move the file away to mine "
                           "this run afresh")
        return value

    def _say_reused(self, opts: MiningOptions) -> None:
        """One line naming the settings this rerun took from mining.json (none of its options gave them)."""
        # mining.json's key -> (the value this run goes on with, the option's value: None where not given)
        now = {ROUNDS_IN_ALL: (self.rounds, opts.rounds), "threshold": (self.threshold, opts.threshold),
               "hop_ms": (self.hop_ms, opts.hop_ms), "margin": (self.margin, opts.margin),
               "windows_per_round": (self.windows_per_round, opts.windows_per_round),
               "epochs_per_round": (self.epochs_per_round, opts.epochs_per_round)}
        reused = [f"{OPTION_OF[key]} {value:g}" for key, (value, given) in now.items()
                  if given is None and self.record.get(key) is not None]
        if reused:
            self.say(f"kws-mine: going on with {self.path.name}'s {' '.join(reused)} (an option given wins)")

    def _warn_if_round_left_unfinished(self) -> None:
        """One line (quiet or not) where mining.json's last round was begun (its windows chosen) but not
        finished and this run's --rounds stops before it: the round would stay untrained unsaid."""
        rounds = self.record.get("rounds")
        if not isinstance(rounds, list) or len(rounds) <= self.rounds or not isinstance(rounds[-1], dict) \
                or rounds[-1].get("fa_after") is not None:
            return
        number = len(rounds)
        earlier = self.record.get(ROUNDS_IN_ALL)  # None in a mining.json of a kws-mine before it was recorded
        if isinstance(earlier, bool) or not isinstance(earlier, int) or earlier < number:
            earlier = None
        began = f"round {number} of an earlier --rounds {earlier}" if earlier else f"round {number}"
        print(f"kws-mine: warning: {began} is unfinished, and --rounds {self.rounds} stops before it; give --rounds "
              f"{earlier or number} to finish it", file=sys.stderr, flush=True)

    def _check_threshold(self, threshold: float) -> None:
        """KwsError naming where the default ``threshold`` came from (mining.json of an earlier kws-mine,
        else the run's config.yaml) where it is 0 or 1: a run trained before kws-train refused those still
        loads, and the false accepts counted and the windows kept there would say nothing of the model."""
        from kws.trainer.config import THRESHOLD_KEY, USELESS_THRESHOLDS

        if threshold not in USELESS_THRESHOLDS:
            return
        where, key = ((self.path, "threshold") if self.record.get("threshold") is not None
                      else (self.run.config, THRESHOLD_KEY))
        raise KwsError(f"{where}: {key} {threshold:g} is no threshold to mine at: {USELESS_THRESHOLDS[threshold]}; "
                       "give --threshold (between 0 and 1)")

    def _check_hop(self, hop_ms: float) -> None:
        """KwsError unless the recognizer runs ``hop_ms`` with this run's frontend and its smoother
        can decide at it (the false accepts it counts would be none, whatever the model did)."""
        hop_samples_of(self.cfg.features, hop_ms)
        check_decides(dataclasses.replace(self.cfg.smoothing, hop_ms=float(hop_ms)))

    def _save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.record, indent=1) + "\n")

    def score(self, threshold: float | None = None, hop_ms: float | None = None) -> tuple[list[ScoredAudio], dict]:
        """The current model.keras (as float TFLite) over every negative recording at ``hop_ms``, and
        its false accepts there at ``threshold`` (default: this run's settings). A round's count after
        its training is the next round's before (no training in between): a call on the very model
        file, hop, threshold and recordings of the last one returns its result instead of scoring the
        negatives again (a copy of the count)."""
        threshold = self.threshold if threshold is None else threshold
        hop_ms = self.hop_ms if hop_ms is None else hop_ms
        key = (hashlib.sha256(self.run.model.read_bytes()).hexdigest(), float(hop_ms), float(threshold),
               tuple(f.path for f in self.negatives.files))
        if self._last_scoring is not None and self._last_scoring[0] == key:
            parts, fa = self._last_scoring[1]
            return parts, copy.deepcopy(fa)
        parts, fa = self._score(threshold, hop_ms)
        self._last_scoring = (key, (parts, copy.deepcopy(fa)))
        return parts, fa

    def _score(self, threshold: float, hop_ms: float) -> tuple[list[ScoredAudio], dict]:
        """``score`` without the reuse of the last result."""
        from kws.converters.source import RunSource, load_keras_model
        from kws.trainer.tfimport import import_tensorflow

        import_tensorflow()
        # a corrupt model.keras, or one that does not match labels.txt: one line naming it
        model = load_keras_model(RunSource(run=self.run, cfg=self.cfg, labels=tuple(self.labels)))
        try:
            parts = float_tflite_scores(model, [f.path for f in self.negatives.files], self.cfg.features,
                                        hop_ms, self.run.path)
        except AudioError as exc:
            raise KwsError(f"{exc} (negatives)") from None
        smoothing = dataclasses.replace(self.cfg.smoothing, hop_ms=float(hop_ms))
        fa = negatives_false_accepts(parts, self.manifest, dict.fromkeys(self.keywords, threshold), smoothing)
        return parts, fa

    def run_rounds(self) -> dict:
        """Run (or finish) every round; returns the mining record."""
        from kws.trainer.train import train

        rounds = self.record["rounds"]
        for number in range(1, self.rounds + 1):
            if number <= len(rounds) and rounds[number - 1].get("fa_after") is not None:
                if not self._trains_on_cut_short(number):
                    continue
                # unfinished again until measured after its training: a stop in between reruns it so
                rounds[number - 1]["fa_after"] = None
                self._save()
            t0 = time.time()
            if number > len(rounds):  # score, choose and store this round's windows before training on them
                parts, before_value = self.score()
                columns = [self.labels.index(k) for k in self.keywords]
                taken = [(w["file"], w["start_s"]) for w in self.record["windows"]]
                new = pick_hard_windows(parts, columns, self.threshold - self.margin,
                                        self.windows_per_round, self.cfg.features.clip_ms / MS_PER_S, taken)
                for w in new:
                    w["round"] = number
                epochs_done = int(self.run.read_state().get("epochs_done", 0))
                rounds.append({"round": number, "threshold": self.threshold, "hop_ms": self.hop_ms,
                               "margin": self.margin, "fa_before": before_value, "windows_added": len(new),
                               "windows_total": len(self.record["windows"]) + len(new),
                               "start_epoch": epochs_done, "target_epochs": epochs_done + self.epochs_per_round,
                               "fa_after": None})
                self.record["windows"].extend(new)
                self._save()
                self.say(f"mining round {number}: {before_value['false_accepts']} false accepts = "
                         f"{fa_rate_text(before_value['fa_per_hour'])} FA/h on {before_value['hours']:.3f} h of "
                         "negatives at "
                         f"threshold {self.threshold}; kept {len(new)} windows scoring >= "
                         f"{self.threshold - self.margin:.2f} ({rounds[-1]['windows_total']} in all)")
            entry = rounds[number - 1]
            state = self.run.read_state()
            if int(state.get("epochs_done", 0)) == entry["start_epoch"] and state.get("best_val_accuracy", -1) != -1:
                # the best checkpoint must come from the epochs that saw the mined windows
                self.run.reset_best("kws-mine")
            # measured after training as before it, whatever a rerun that finishes the round was given
            began = {key: self._recorded(entry, key, self._earlier[key], f"round {number}'s ")
                     for key in self._earlier}
            self._check_hop(began["hop_ms"])
            train(resume=self.run.path, overrides=(f"train.epochs={entry['target_epochs']}",), quiet=self.quiet)
            self._warn_if_cut_short(number, entry)
            entry["epochs_trained"] = int(self.run.read_state().get("epochs_done", 0)) - entry["start_epoch"]
            _, after = self.score(began["threshold"], began["hop_ms"])
            entry["fa_after"] = after
            entry["seconds"] = round(entry.get("seconds", 0.0) + time.time() - t0, 1)
            self._save()
            self._record_in_metrics()
            self.say(f"mining round {number}: FA/h on the negatives "
                     f"{fa_rate_text(entry['fa_before']['fa_per_hour'])} -> {fa_rate_text(after['fa_per_hour'])} "
                     f"({entry['fa_before']['false_accepts']} -> {after['false_accepts']} false accepts in "
                     f"{after['hours']:.3f} h)")
        return self.record

    def _trains_on_cut_short(self, number: int) -> bool:
        """Whether finished round ``number`` is one whose training train.time_budget_s stopped before
        its epochs were done and that a rerun trains on now: the last round (a later round's epochs
        followed an earlier one's), and only where the budget, raised since, leaves time (one line,
        quiet or not, where it does not)."""
        rounds = self.record["rounds"]
        entry = rounds[number - 1]
        start, target = entry.get("start_epoch"), entry.get("target_epochs")
        if number != len(rounds) or not all(isinstance(n, int) and not isinstance(n, bool) for n in (start, target)):
            return False
        state = self.run.read_state()
        done = int(state.get("epochs_done", 0))
        if not start <= done < target:
            return False
        budget, spent = self.cfg.train.time_budget_s, float(state.get("train_seconds", 0.0))
        if budget and spent >= budget:
            print(f"kws-mine: round {number} stays cut short at {done - start} of its {target - start} epochs: the "
                  f"run's train.time_budget_s ({budget:g} s) is still used up ({spent:.0f} s trained); raise it in "
                  f"{self.run.config} (0: no limit) and rerun to train the round on", file=sys.stderr, flush=True)
            return False
        self.say(f"kws-mine: round {number} trained {done - start} of its {target - start} epochs before the run's "
                 "train.time_budget_s stopped it; training it on and measuring it again")
        return True

    def _warn_if_cut_short(self, number: int, entry: dict) -> None:
        """One line (quiet or not) where a round's training stopped before its epochs were done: the
        run's train.time_budget_s, counted over every epoch it trained, stops kws-mine's training as it
        stops kws-train --resume's, after one epoch once it is used up."""
        state = self.run.read_state()
        done, budget = int(state.get("epochs_done", 0)), self.cfg.train.time_budget_s
        if done >= entry["target_epochs"] or not budget:
            return
        print(f"kws-mine: warning: round {number} trained {done - entry['start_epoch']} of its "
              f"{entry['target_epochs'] - entry['start_epoch']} epochs: the run's train.time_budget_s ({budget:g} s) "
              f"is used up ({float(state.get('train_seconds', 0.0)):.0f} s trained); raise it in {self.run.config} "
              "(0: no limit), and a rerun trains this round on", file=sys.stderr, flush=True)

    def _record_in_metrics(self) -> None:
        if not self.run.metrics.is_file():
            return
        metrics = json.loads(self.run.metrics.read_text(encoding="utf-8"))
        metrics["mining"] = [{"round": r["round"], "windows_added": r["windows_added"],
                              "fa_per_hour_before": r["fa_before"]["fa_per_hour"],
                              "fa_per_hour_after": (r["fa_after"] or {}).get("fa_per_hour")}
                             for r in self.record["rounds"]]
        atomic_write_text(self.run.metrics, json.dumps(metrics, indent=1))


class RetracingUnsaid(logging.Filter):
    """Drops TensorFlow's 'N out of the last M calls ... triggered tf.function retracing' warning.
    Every round's training builds a Keras model and loads its best checkpoint as another, and each
    traces its predict step for the validation and evaluation sets (a few times, as in one kws-train);
    TensorFlow counts those traces by the step's code, across every model in the process, so from
    round 2 on it warns of a loop retracing, about models that are each rightly new."""

    def filter(self, record: logging.LogRecord) -> bool:
        return RETRACING_WARNING not in record.getMessage()


def mine(run_path: str | Path, opts: MiningOptions, quiet: bool = False) -> dict:
    """Hard-negative mining rounds on a training run; returns the record also saved as mining.json.
    TensorFlow's retracing warning is dropped while they run (see ``RetracingUnsaid``)."""
    logger, unsaid = logging.getLogger(TF_LOGGER), RetracingUnsaid()
    logger.addFilter(unsaid)
    try:
        return Miner(run_path, opts, quiet).run_rounds()
    finally:
        logger.removeFilter(unsaid)
