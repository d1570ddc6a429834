"""The training loop: data -> features -> model -> checkpoints, TensorBoard, metrics.

Each epoch is deterministic given (seed, epoch), the split is saved in the run folder, and a
checkpoint is written atomically after every epoch, so ``--resume`` after Ctrl-C or a kill
continues exactly where the last finished epoch left off.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kws.edge.audio import AUDIO_SUFFIXES
from kws.edge.errors import KwsError, os_error_line
from kws.edge.manifest import atomic_write_bytes, atomic_write_text
from kws.edge.stopping import StopRequest, cleanup_held, tell

from . import dataset as ds
from . import distill
from . import negatives as neg
from .augment import AugmentSources, load_rirs, mixup
from .config import Config, config_warnings, load_config, save_config
from .features import eval_features, partial_items, training_features
from .metrics import classification_report, group_report, plot_confusion
from .run import BEST_RESET_BY, RunDir, new_run_dir, run_to_give, save_keras_atomic
from .tfimport import import_tensorflow

DISTRIBUTE_CHOICES = ("none", "mirrored", "multiworker")
LOGICAL_CPUS_ENV = "KWS_LOGICAL_CPUS"  # split the CPU into N logical devices (tests, debugging)
UNKNOWN_POOL_FACTOR = 4  # training _unknown_ draws from up to this many times the needed clips
NORMALIZATION_CLIPS = 2000  # training clips (a seeded sample) whose features give the input statistics
MIXUP_STREAM = 104729  # third seed word of the mixup draws (apart from the augmentation chunks and negatives)
EVAL_TRAIN_WINDOWS = 500  # embedding family: training clips embedded for metrics.json's train accuracy


class TrainingInterrupted(KwsError):
    """Ctrl-C or SIGTERM during training; the last finished epoch's checkpoint is kept."""


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict


def learning_rate(cfg: Config, epoch: int) -> float:
    """Learning rate of a 0-based epoch: linear warm-up, then the configured schedule."""
    t = cfg.train
    if epoch < t.warmup_epochs:
        return t.learning_rate * (epoch + 1) / (t.warmup_epochs + 1)
    if t.lr_schedule == "constant":
        return t.learning_rate
    if t.lr_schedule == "step":
        return t.learning_rate * (0.1 if epoch >= math.ceil(0.75 * t.epochs) else 1.0)
    span = max(1, t.epochs - t.warmup_epochs - 1)
    progress = min(1.0, (epoch - t.warmup_epochs) / span)
    return t.final_learning_rate + 0.5 * (t.learning_rate - t.final_learning_rate) * (1 + math.cos(math.pi * progress))


def make_strategy(kind: str):
    """The tf.distribute strategy for --distribute (none: the default one-device strategy)."""
    tf = import_tensorflow()

    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise KwsError("--distribute multiworker needs TF_CONFIG set on every worker "
                           "(see README: Training on several machines)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise KwsError(f"--distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}, got {kind!r}")


def worker_subdir(distribute: str) -> str | None:
    """For a non-chief multi-worker process, the private sub-folder it writes into (else None).

    All workers run the same command with the same --out; only the chief (task 0, or a task of
    type "chief") writes the run folder itself, the others keep their copies out of its way."""
    if distribute != "multiworker" or "TF_CONFIG" not in os.environ:
        return None
    try:
        tf_config = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError:
        raise KwsError("TF_CONFIG is not valid JSON") from None
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    is_chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in cluster)
    return None if is_chief else f".{kind}-{index}"


def configure_devices() -> str:
    """Split the CPU into logical devices if asked; describe the devices training will use."""
    tf = import_tensorflow()

    n = int(os.environ.get(LOGICAL_CPUS_ENV, "0") or 0)
    cpus = tf.config.list_physical_devices("CPU")
    if n > 1 and cpus:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError):
            pass
    if gpus:
        return f"{len(gpus)} GPU(s): " + ", ".join(g.name for g in gpus)
    return f"CPU ({os.cpu_count()} cores" + (f", {n} logical devices)" if n > 1 else ")")


class _Printer:
    """The run's progress lines on stderr; where stderr is gone (the terminal hung up, and the stop
    waits for the next batch) a line is dropped instead of failing the run."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            tell(msg)


def _stop_check_callback(keras, stop: StopRequest):
    """Stops model.fit between batches once Ctrl-C or SIGTERM asked the run to stop."""

    class StopCheck(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stop.check()

    return StopCheck()


def _epoch_progress_callback(keras, total_steps: int, epoch: int, epochs: int, quiet: bool):
    """A per-batch progress bar for one epoch (tqdm on stderr)."""
    from tqdm import tqdm

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, _epoch, logs=None):
            self.bar = tqdm(total=total_steps, desc=f"epoch {epoch + 1}/{epochs}", unit="step",
                            leave=False, disable=True if quiet else None, file=sys.stderr, dynamic_ncols=True)

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)
            if logs and batch % 10 == 0:
                self.bar.set_postfix(loss=f"{logs.get('loss', 0):.3f}", acc=f"{logs.get('accuracy', 0):.3f}")

        def on_epoch_end(self, _epoch, logs=None):
            self.bar.close()

    return Progress()


SEED_STATE_SUFFIX = "seed_generator_state"


def reseed_layers(model, seed: int, epoch: int) -> None:
    """Set every layer's random state (dropout's seed generators) from (seed, epoch): Keras does
    not restore these from a checkpoint, so without this a resumed run drops other units."""
    states = [v for v in model.non_trainable_variables if v.path.endswith(SEED_STATE_SUFFIX)]
    for i, var in enumerate(states):
        base = np.random.SeedSequence([seed, epoch, i]).generate_state(1)[0]
        var.assign(np.array([base, 0], dtype=var.dtype))


def _predict(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    if len(x) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return model.predict(x, batch_size=max(batch_size, 256), verbose=0)


def _labels_of(items, labels: list[str]) -> np.ndarray:
    index = {lab: i for i, lab in enumerate(labels)}
    return np.array([index[i.label] for i in items], dtype=np.int64)


def _sample(items: list, n: int, rng: np.random.Generator) -> list:
    """At most ``n`` of ``items``, a seeded choice kept in the original order."""
    if len(items) <= n:
        return items
    return [items[i] for i in sorted(rng.choice(len(items), n, replace=False))]


def feature_stats(cfg: Config, items, clips, backgrounds):
    """Per-feature mean and variance of (a seeded sample of) the training clips, unaugmented."""
    from .models import FeatureStats

    items = _sample(items, NORMALIZATION_CLIPS, np.random.default_rng(cfg.train.seed + 5))
    return FeatureStats.of(eval_features(items, clips, cfg, backgrounds, seed=cfg.train.seed + 5))


def prepare_data(cfg: Config, run: RunDir, resume: bool, say: Callable[[str], None], quiet: bool,
                 download=None):
    """Scan (or reload the saved split), load every clip once, report conversions and skips."""
    if resume:
        index = ds.load_index(run.split)
        if not index.root.is_dir():
            raise ds.DataError(f"{index.root}: the data folder of this run is gone; cannot resume")
    else:
        data_path = cfg.data.path
        if not data_path:
            raise ds.DataError("no data: give --data FOLDER_OR_URL (or data.path in the config)")
        from .fetch import DownloadOptions, fetch_dataset, is_url
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", data_path)
        if scheme and not is_url(data_path):
            raise ds.DataError(f"{data_path}: {scheme.group(1)}:// URLs are not supported; give an http(s) URL "
                               "of a .tar.gz/.zip or a local folder")
        root = (fetch_dataset(data_path, cfg.data.max_download_mb, quiet, download or DownloadOptions())
                if is_url(data_path) else Path(data_path))
        index = ds.scan_dataset(root, cfg.data.wanted_words, cfg.data.silence_percentage,
                                cfg.data.unknown_percentage, cfg.data.validation_percentage,
                                cfg.data.testing_percentage, cfg.train.seed, cfg.data.group_pattern)
    train_unknown = index.train_unknown
    if train_unknown is None:  # a new run (or one saved before split.json kept the choice)
        rng = np.random.default_rng(cfg.train.seed)
        n_unknown_train = sum(1 for i in index.splits["training"] if i.label == ds.UNKNOWN_LABEL)
        train_unknown = _sample(index.unknown_pool["training"], UNKNOWN_POOL_FACTOR * n_unknown_train, rng)
    paths = [i.path for s in ds.SPLITS for i in index.splits[s] if i.path] + train_unknown
    from tqdm import tqdm
    # disable=None: bars only on a terminal, so a log file gets the one-line summaries alone
    with tqdm(total=len(set(paths)), desc="reading WAVs", unit="file", leave=False,
              disable=True if quiet else None, file=sys.stderr) as bar:
        clips, report = ds.load_clips(paths, cfg.features.sample_rate, cfg.features.clip_samples,
                                      progress=bar.update)
    backgrounds, bg_skipped = ds.load_background(index.background_files, cfg.features.sample_rate)
    rirs, rir_skipped = [], []
    if cfg.augment.rir_dir:
        try:
            rirs, rir_skipped = load_rirs(cfg.augment.rir_dir, cfg.features.sample_rate)
        except FileNotFoundError as exc:
            raise ds.DataError(str(exc)) from None
        if not rirs:
            raise ds.DataError(f"{cfg.augment.rir_dir}: augment.rir_dir holds no readable impulse response "
                               f"({', '.join(AUDIO_SUFFIXES)}; {ds.NOT_READ_NOTE})")
    skipped = index.skipped + report.skipped + bg_skipped + rir_skipped
    report.skipped = skipped
    noise = ds.background_note(backgrounds, cfg.features.clip_samples)
    say(f"data: {report.summary(cfg.features.sample_rate)}; {noise}"
        + (f"; {len(rirs)} recorded impulse responses" if cfg.augment.rir_dir else ""))
    shown = "; ".join(f"{p} ({why})" for p, why in skipped[:5])
    shown += f" ... and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    ds.drop_unreadable(index, clips)
    train_unknown = [p for p in train_unknown if p in clips]
    index.train_unknown = train_unknown  # saved with the split: the pool above is cut to what was read
    counts = index.counts()
    for w in index.labels[2:]:
        if not counts["training"].get(w):
            raise ds.DataError(f"{index.root / w}: no readable training clips for wanted word '{w}'"
                               + (f" (skipped {len(skipped)} unreadable file(s): {shown})" if skipped else ""))
    if skipped:  # the run goes on: its folder keeps the list (a resumed run's adds to the first one's)
        listed = run.skipped.read_text(encoding="utf-8").splitlines(keepends=True) if run.skipped.is_file() else []
        lines = list(dict.fromkeys(listed + [f"{p}\t{why}\n" for p, why in skipped]))
        atomic_write_text(run.skipped, "".join(lines))
        print(f"warning: skipped {len(skipped)} file(s): {shown} (full list: {run.skipped})", file=sys.stderr)
    if not backgrounds:
        print(f"warning: no {ds.BACKGROUND_DIR}/ in the data: _silence_ clips are digital silence and no "
              "background noise is mixed in", file=sys.stderr)
    percentages = (cfg.data.validation_percentage, cfg.data.testing_percentage)
    for warning in (index.unread_warning(), index.list_warning(), index.list_case_warning(),
                    index.list_gap_warning(*percentages), index.speaker_warning(),
                    index.empty_split_warning(*percentages), ds.silent_background_warning(index.root, backgrounds)):
        if warning:
            print(warning, file=sys.stderr)
    return index, clips, AugmentSources(tuple(backgrounds), tuple(rirs)), train_unknown


def negative_items(cfg: Config, run: RunDir, index: ds.DataIndex, clips: dict, negatives: neg.NegativeSet | None,
                   say: Callable[[str], None]) -> list[ds.Item]:
    """The extra training items of real negatives: placeholders for each epoch's windows of
    ``negatives`` and the run's mined hard negatives (loaded into ``clips`` here)."""
    n_keywords = sum(1 for i in index.splits["training"] if i.label in index.labels[2:])
    n_epoch = neg.windows_per_epoch(n_keywords, cfg.data.negatives_percentage) if negatives else 0
    items = [ds.Item(f"{neg.EPOCH_KEY}{k}", cfg.data.negatives_label) for k in range(n_epoch)]
    mined = neg.mined_windows(run.path)
    for k, pcm in enumerate(neg.read_windows(mined, cfg.features.clip_samples, cfg.features.sample_rate)):
        clips[f"{neg.MINED_KEY}{k}"] = pcm
        items.append(ds.Item(f"{neg.MINED_KEY}{k}", ds.UNKNOWN_LABEL))
    if negatives:
        say(f"negatives: {negatives.describe()} from {', '.join(cfg.data.negatives)}; {n_epoch} windows per "
            f"epoch as {cfg.data.negatives_label} (training only: validation and test keep the data split)")
    if mined:
        say(f"hard negatives from kws-mine: {len(mined)} windows as {ds.UNKNOWN_LABEL}")
    n_partial = int(round(n_keywords * cfg.augment.partial_word_percentage / 100))
    if n_partial:
        items += partial_items(n_partial)
        say(f"partial words: {n_partial} windows per epoch as {ds.UNKNOWN_LABEL}, each holding "
            f"{cfg.augment.partial_word_visible[0]:g}-{cfg.augment.partial_word_visible[1]:g} of a keyword's speech")
    return items


def partial_word_pool(cfg: Config, index, unknown_clips: Sequence[str]) -> list[str]:
    """The clips partial-word windows are cut from: the training keywords, and with
    ``augment.partial_word_unknowns`` the training ``_unknown_`` words too (a stream's window cuts
    every word it slides over, not only the keywords)."""
    pool = [i.path for i in index.splits["training"] if i.path and i.label in index.labels[2:]]
    return pool + list(unknown_clips) if cfg.augment.partial_word_unknowns else pool


def train(cfg: Config | None = None, out: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
          overrides: tuple[str, ...] = (), distribute: str = "none", quiet: bool = False,
          download=None) -> TrainResult:
    """Train (or resume) a model; returns the run folder and its final metrics. ``download``
    (kws.trainer.fetch.DownloadOptions) says how a data URL is fetched. Ctrl-C or SIGTERM at any
    point raises TrainingInterrupted saying what the run folder keeps (KeyboardInterrupt before the
    run folder is chosen)."""
    say = _Printer(quiet)
    # until the epochs start, a stop request interrupts at once; during them, at the next batch
    stop = StopRequest(immediate=True).install()
    locks_before = len(_RUN_LOCKS)
    try:
        run, cfg, state, created = _open_run(cfg, out, resume, overrides, distribute)
        try:
            return _train_run(run, cfg, state, created, resume, distribute, quiet, download, say, stop)
        except Exception as exc:  # noqa: BLE001 - whatever failed, a new run leaves no half folder
            if created and not run.resumable:
                with cleanup_held(exc):
                    shutil.rmtree(run.path, ignore_errors=True)
            if not isinstance(exc, OSError):
                raise
            # a full disk or a folder that became read-only: one line, and the run is resumable
            raise KwsError(f"{os_error_line(exc)}; {_what_is_kept(run)}") from None
        except KeyboardInterrupt as exc:
            if created and not run.resumable:  # stopped before anything resumable was saved
                with cleanup_held(exc):  # a second Ctrl-C cannot leave half a run folder
                    shutil.rmtree(run.path, ignore_errors=True)
            raise TrainingInterrupted(f"interrupted; {_what_is_kept(run)}") from None
    finally:
        stop.restore()
        while len(_RUN_LOCKS) > locks_before:  # this run's folder is free again (kws-mine trains it anew)
            os.close(_RUN_LOCKS.pop())


RESUME_KEYS = ("train.epochs",)  # the only settings --resume may change


def changed_on_resume(overrides: Sequence[str]) -> list[str]:
    """The --set overrides that --resume does not allow (every key but RESUME_KEYS)."""
    return [o for o in overrides if o.split("=", 1)[0].strip() not in RESUME_KEYS]


def _what_is_kept(run: RunDir) -> str:
    """What a run folder keeps after a stop, and how to go on from it."""
    if not run.resumable:
        return f"nothing of {run.path} was kept"
    done = int(run.read_state().get("epochs_done", 0))
    kept = (f"keeps the checkpoint of epoch {done}" if done
            else "keeps its config and split; no epoch had finished")
    return f"{run.path} {kept}. Resume with: kws-train --resume {run.path}"


def best_so_far(state: dict) -> str:
    """What a resumed run's state says of its best epoch: its validation accuracy, or why none is
    chosen (a command that reset it, kws-mine, so that the best comes from the epochs after it)."""
    best = float(state.get("best_val_accuracy", -1.0))
    if best >= 0:
        return f"best validation accuracy {best:.4f}"
    by = state.get(BEST_RESET_BY)
    return (f"best epoch chosen anew after {by}, among the epochs trained from here on" if isinstance(by, str) and by
            else "no best epoch chosen yet")


def _open_run(cfg: Config | None, out, resume, overrides: tuple[str, ...], distribute: str):
    """The run folder (created or resumed), its config, saved state and whether it was made now."""
    if resume is not None:
        run = RunDir(Path(resume))
        if not run.path.is_dir():
            raise KwsError(f"{run.path}: no such run folder")
        if not run.resumable:
            # kws-train --resume models/r2/dist means models/r2; a kws-convert --out elsewhere, its source run
            hint = run_to_give(run.path, "kws-train --resume")
            raise KwsError(f"{run.path}: not a resumable run (no {run.config.name} / {run.split.name})"
                           + (f"; {hint}" if hint else ""))
        if changed_on_resume(overrides):
            raise KwsError("--resume keeps the run's config; only --set train.epochs=N may change")
        _lock_run(run)
        cfg = load_config(run.config, overrides)
        state = run.read_state()
        run.settle_checkpoints()  # a kill between an epoch's checkpoints and its state.json
        if overrides and cfg.train.epochs >= int(state.get("epochs_done", 0)):
            save_config(cfg, run.config)  # the new train.epochs is the run's from now on
        created = False
    else:
        assert cfg is not None
        run = RunDir(new_run_dir(out))
        sub = worker_subdir(distribute)
        if sub:
            run = RunDir(run.path / sub)
        if run.state.exists() or run.model.exists() or run.config.exists():
            raise KwsError(f"{run.path}: already holds a training run; use --resume {run.path} or another --out")
        if run.path.is_dir() and any(run.path.iterdir()):  # a run's files would overwrite what is there
            raise KwsError(f"{run.path}: exists and holds other files; give --out a new or empty folder")
        created = not run.path.exists()
        run.path.mkdir(parents=True, exist_ok=True)
        _lock_run(run)
        if run.config.exists() or run.state.exists():  # another kws-train started and finished here meanwhile
            raise KwsError(f"{run.path}: already holds a training run; use --resume {run.path} or another --out")
        state = {}
    return run, cfg, state, created


_RUN_LOCKS: list[int] = []  # open descriptors of the run folders being trained (each lock held until train returns)


def _lock_run(run: RunDir) -> None:
    """Hold an exclusive lock on the run folder for the rest of the process; KwsError where another
    kws-train holds it (two runs into one --out, or two --resume of one run, mixed their files)."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: no guard
        return
    fd = os.open(run.path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise KwsError(f"{run.path}: another kws-train is writing this run folder now; wait for it, or give "
                       "another --out") from None
    _RUN_LOCKS.append(fd)


def _train_run(run: RunDir, cfg: Config, state: dict, created: bool, resume: str | os.PathLike | None, distribute: str,
               quiet: bool, download, say, stop: StopRequest) -> TrainResult:
    """Read the data, build or load the model, train the remaining epochs and finish the run
    (``resume``: the run folder given to --resume, None for a new run)."""
    for line in config_warnings(cfg):  # valid settings that do not do what they say: said first
        print(f"warning: {line}", file=sys.stderr)
    # data first: a bad folder is reported before TensorFlow's few seconds of start-up, and a
    # run that fails here leaves no folder behind
    try:
        if resume is None and not cfg.data.negatives and cfg.data.path and "://" not in cfg.data.path:
            listed = neg.listed_negatives(cfg.data.path)
            if listed:  # kws-synth --negatives-dir recorded them with the dataset
                cfg = cfg.replace(data=dataclasses.replace(cfg.data, negatives=listed))
                say(f"negatives: listed in {Path(cfg.data.path) / neg.LISTED_NEGATIVES} (--negatives overrides)")
        if is_embedding(cfg):  # missing weights fail here, before the clips are read
            from .speech_embedding import find_weights

            find_weights(cfg.model.embedding_weights)
        # headers only, first: a bad negatives file fails before the clips are read
        negatives = neg.index_negatives(cfg.data.negatives) if cfg.data.negatives else None
        if cfg.augment.talk_background_share and negatives is None:
            raise KwsError(f"augment.talk_background_share is {cfg.augment.talk_background_share:g} but there are "
                           "no data.negatives to draw the talk from (--negatives DIR, or set the share to 0)")
        index, clips, sources, train_unknown = prepare_data(cfg, run, resume is not None, say, quiet, download)
        backgrounds = sources.backgrounds
        extra_items = [] if is_embedding(cfg) else negative_items(cfg, run, index, clips, negatives, say)
        if cfg.train.teachers:
            if is_embedding(cfg):
                raise distill.TeacherError("train.teachers: the embedding family does not learn from teachers")
            if resume is None:
                cfg = cfg.replace(train=dataclasses.replace(cfg.train, teachers=distill.resolve(cfg.train.teachers)))
            for path in cfg.train.teachers:
                distill.check_teacher(path, index.labels, cfg.features)
    except BaseException as exc:
        if created:
            with cleanup_held(exc):
                shutil.rmtree(run.path, ignore_errors=True)
        raise
    tf = import_tensorflow()
    devices = configure_devices()
    import keras
    labels = index.labels
    if resume is None:
        # config.yaml last: a folder that has it holds everything --resume needs
        atomic_write_text(run.labels, "\n".join(labels) + "\n")
        ds.save_index(index, run.split)
        save_config(cfg, run.config)
    elif run.read_labels() != labels:
        raise KwsError(f"{run.labels}: labels differ from the saved split; the run folder is inconsistent")
    counts = index.counts()
    speakers = index.speakers()["per_split"]
    say("split: " + "; ".join(f"{s} {sum(c.values())} ({speakers.get(s, 0)} speakers)" for s, c in counts.items())
        + f" (split by {index.split_source()}); labels: "
        + ", ".join(labels))

    keras.utils.set_random_seed(cfg.train.seed)
    embedding = None
    if is_embedding(cfg):  # the head's inputs: frozen speech embeddings, computed once per run
        from .embedding_data import EmbeddingFeatures

        embedding = EmbeddingFeatures(cfg, run.path, index, clips, sources, negatives, say)
    input_shape = embedding.input_shape if embedding else cfg.features.input_shape
    strategy = make_strategy(distribute)
    resuming = resume is not None and run.last_ckpt.is_file()
    from .models import FeatureStats, build_model, model_info
    stats = None
    if not resuming and cfg.model.input_normalization:  # the embedding head: its training windows' embeddings
        stats = (FeatureStats.of(embedding.x_fixed) if embedding
                 else feature_stats(cfg, index.splits["training"], clips, backgrounds))
    with strategy.scope():
        if resuming:
            try:
                model = keras.models.load_model(run.last_ckpt)
            except Exception as exc:  # noqa: BLE001 - zip, h5 and deserialization errors all mean "damaged"
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                raise KwsError(f"{run.last_ckpt}: cannot load the checkpoint (damaged?): {first}") from None
            _check_resumed_model(run, cfg, model, tuple(input_shape), len(labels))
        else:
            try:
                model = build_model(cfg.model.architecture, input_shape, len(labels), cfg.model,
                                    feature_stats=stats)
            except ValueError as exc:  # e.g. a clip too short for the layers' receptive field
                if created:  # a run that can never be built is no run to resume
                    with cleanup_held(exc):
                        shutil.rmtree(run.path, ignore_errors=True)
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise KwsError(f"model.architecture {cfg.model.architecture}: cannot be built for input "
                               f"{tuple(input_shape)} (features.clip_ms, stride_ms, num_features and the "
                               f"model's size decide it): {first}") from None
            if cfg.train.optimizer == "adam":
                opt = (keras.optimizers.AdamW(cfg.train.learning_rate, weight_decay=cfg.train.weight_decay)
                       if cfg.train.weight_decay else keras.optimizers.Adam(cfg.train.learning_rate))
            else:
                opt = keras.optimizers.SGD(cfg.train.learning_rate, momentum=0.9)
            model.compile(optimizer=opt,
                          loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.train.label_smoothing),
                          metrics=["accuracy"])
    teachers = distill.load_teachers(cfg.train.teachers, labels, cfg.features, cfg.train.teacher_weight)
    if teachers:
        say(f"distilling: {len(teachers.models)} teacher(s) make up {cfg.train.teacher_weight:g} of each target")
    info = model_info(model)
    info["architecture"] = cfg.model.architecture
    if stats is not None:
        info["feature_stats"] = stats.to_dict()
    elif resuming and run.model_info.is_file():
        info = {**json.loads(run.model_info.read_text()), **info}
    atomic_write_text(run.model_info, json.dumps(info, indent=1))
    say(f"model {cfg.model.architecture}: {info['params']:,} parameters, {info['macs'] / 1e6:.2f} M "
        f"multiply-accumulates per inference; input {tuple(info['input_shape'])}"
        + (", standardised per feature" if info["input_normalization"] else "") + f"; devices: {devices}"
        + (f"; strategy {type(strategy).__name__} x{strategy.num_replicas_in_sync}" if distribute != "none" else ""))

    val_items = index.splits["validation"]
    evaluate_x = (embedding.evaluation if embedding else
                  lambda items, seed: eval_features(items, clips, cfg, backgrounds, seed=seed))
    x_val = evaluate_x(val_items, cfg.train.seed + 1)
    y_val = _labels_of(val_items, labels)
    train_items = index.splits["training"] + extra_items
    train_labels = _labels_of(train_items, labels)

    n_epoch_windows = sum(1 for i in extra_items if i.path.startswith(neg.EPOCH_KEY))
    keyword_pool = partial_word_pool(cfg, index, train_unknown)

    def epoch_features(epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """This epoch's training inputs and one-hot labels."""
        if embedding:
            x, y = embedding.epoch(epoch)
            return x, keras.utils.to_categorical(y, len(labels))
        epoch_clips = clips
        if n_epoch_windows:  # this epoch's windows of the real negatives, read from disk now
            epoch_clips = {**clips, **neg.epoch_windows(negatives, n_epoch_windows, cfg.features.clip_samples,
                                                        cfg.features.sample_rate, [cfg.train.seed, epoch])}
        epoch_sources = sources
        if cfg.augment.talk_background_share:  # this epoch's talk to mix under words, read from disk now
            epoch_sources = dataclasses.replace(sources, talk=neg.talk_pool(
                negatives, cfg.features.clip_samples, cfg.features.sample_rate, [cfg.train.seed, epoch]))
        x = training_features(train_items, epoch_clips, cfg, epoch_sources, train_unknown,
                              seed=[cfg.train.seed, epoch], keyword_pool=keyword_pool)
        return x, keras.utils.to_categorical(train_labels, len(labels))

    start_epoch = int(state.get("epochs_done", 0))
    best_acc = float(state.get("best_val_accuracy", -1.0))
    history = list(state.get("history", []))
    writers = {name: tf.summary.create_file_writer(str(run.logs / name)) for name in ("train", "validation")}
    n_train = len(embedding.y_fixed) + embedding.n_negatives if embedding else len(train_items)
    steps = math.ceil(n_train / cfg.train.batch_size)
    stop.immediate = False
    pool = ThreadPoolExecutor(max_workers=1)
    if start_epoch >= cfg.train.epochs:
        say(f"{run.path}: all {start_epoch} epochs are done; evaluating it again "
            f"(--set train.epochs=N with N > {start_epoch} trains on)")
    elif start_epoch:
        say(f"resuming {run.path} after epoch {start_epoch} ({best_so_far(state)})")
    budget_start = time.time() - float(state.get("train_seconds", 0.0))
    try:
        pending = pool.submit(epoch_features, start_epoch) if start_epoch < cfg.train.epochs else None
        for epoch in range(start_epoch, cfg.train.epochs):
            stop.check()
            t0 = time.time()
            x_train, y_train = pending.result()
            if teachers:
                y_train = teachers.targets(x_train, y_train)
            x_train, y_train = mixup(x_train, y_train, cfg.train.mixup_alpha,
                                     np.random.default_rng([cfg.train.seed, epoch, MIXUP_STREAM]))
            stop.check()
            pending = pool.submit(epoch_features, epoch + 1) if epoch + 1 < cfg.train.epochs else None
            lr = learning_rate(cfg, epoch)
            model.optimizer.learning_rate.assign(lr)
            # dropout, shuffling and every other TF/numpy draw of this epoch depend on (seed, epoch)
            # alone, so a resumed run continues exactly as an uninterrupted one would
            keras.utils.set_random_seed(cfg.train.seed * 1000 + epoch)
            reseed_layers(model, cfg.train.seed, epoch)
            hist = model.fit(x_train, y_train, batch_size=cfg.train.batch_size, epochs=epoch + 1,
                             initial_epoch=epoch, shuffle=True, verbose=0,
                             callbacks=[_stop_check_callback(keras, stop),
                                        _epoch_progress_callback(keras, steps, epoch, cfg.train.epochs, quiet)])
            loss = float(hist.history["loss"][-1])
            if not np.isfinite(loss):  # nothing of this epoch is saved: the checkpoints stay the last good ones
                raise KwsError(f"training diverged: loss {loss} in epoch {epoch + 1}; nothing of that epoch was "
                               f"saved in {run.path} (lower train.learning_rate, or augmentation levels such as "
                               "augment.eq_db and gain_db, and train again)")
            acc = float(hist.history["accuracy"][-1])
            val_prob = _predict(model, x_val, cfg.train.batch_size)
            val_pred = val_prob.argmax(axis=1)
            val_acc = float((val_pred == y_val).mean()) if len(y_val) else acc
            val_loss = float(-np.mean(np.log(val_prob[np.arange(len(y_val)), y_val] + 1e-9))) if len(y_val) else loss
            improved = val_acc > best_acc
            if improved:
                best_acc = val_acc
                save_keras_atomic(model, run.pending_ckpt(epoch + 1, "best"))
            save_keras_atomic(model, run.pending_ckpt(epoch + 1, "last"))
            seconds = time.time() - t0
            history.append({"epoch": epoch + 1, "loss": loss, "accuracy": acc, "val_loss": val_loss,
                            "val_accuracy": val_acc, "learning_rate": lr, "seconds": round(seconds, 2)})
            run.write_state({"epochs_done": epoch + 1, "best_val_accuracy": best_acc, "history": history,
                             "train_seconds": round(time.time() - budget_start, 2)})
            run.commit_checkpoints(epoch + 1)  # only now: state.json counts the epoch they hold
            with writers["train"].as_default(step=epoch + 1):
                tf.summary.scalar("loss", loss)
                tf.summary.scalar("accuracy", acc)
                tf.summary.scalar("learning_rate", lr)
            with writers["validation"].as_default(step=epoch + 1):
                tf.summary.scalar("loss", val_loss)
                tf.summary.scalar("accuracy", val_acc)
                if len(y_val):
                    report = classification_report(y_val, val_pred, labels)
                    png = plot_confusion(report["confusion_matrix"], labels, f"validation, epoch {epoch + 1}")
                    tf.summary.image("confusion_matrix", tf.expand_dims(tf.image.decode_png(png, channels=4), 0))
            for w in writers.values():
                w.flush()
            validation = (f"val loss {val_loss:.4f} acc {val_acc:.4f}" if len(y_val)
                          else "no validation clips: best by train acc")
            say(f"epoch {epoch + 1}/{cfg.train.epochs}: loss {loss:.4f} acc {acc:.4f} | {validation}"
                f"{' *' if improved else ''} | lr {lr:.2e} | {seconds:.1f}s "
                f"({len(x_train) / max(seconds, 1e-9):.0f} clips/s)")
            if cfg.train.time_budget_s and time.time() - budget_start >= cfg.train.time_budget_s:
                say(f"time budget of {cfg.train.time_budget_s:.0f}s reached after epoch {epoch + 1}")
                break
        stop.check()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        stop.immediate = True
        for w in writers.values():
            w.close()

    return finish(cfg, run, model_path=run.best_ckpt if run.best_ckpt.is_file() else run.last_ckpt,
                  index=index, clips=clips, backgrounds=backgrounds, info=info, say=say, evaluate_x=evaluate_x)


def _check_resumed_model(run: RunDir, cfg: Config, model: Any, input_shape: tuple, num_labels: int) -> None:
    """KwsError (one line) where the checkpoint is not the model config.yaml describes: a hand edit of
    the config since (features, architecture) made --resume a traceback or a run filed under the
    wrong architecture."""
    saved = json.loads(run.model_info.read_text()) if run.model_info.is_file() else {}
    problems = []
    if tuple(model.input_shape[1:]) != tuple(input_shape):
        problems.append(f"input {tuple(model.input_shape[1:])}, config {tuple(input_shape)}")
    if int(model.output_shape[-1]) != num_labels:
        problems.append(f"{int(model.output_shape[-1])} outputs, {num_labels} labels")
    if saved.get("architecture", cfg.model.architecture) != cfg.model.architecture:
        problems.append(f"architecture {saved['architecture']}, config {cfg.model.architecture}")
    if problems:
        raise KwsError(f"{run.config}: no longer describes the run's checkpoint ({'; '.join(problems)}); "
                       "--resume keeps the config the run was trained with: undo the edit")


def is_embedding(cfg: Config) -> bool:
    """Whether the run trains the embedding family's head (kws.trainer.embedding_data) rather than a
    model over the frontend's features."""
    from .models import EMBEDDING_ARCHITECTURE

    return cfg.model.architecture == EMBEDDING_ARCHITECTURE


def finish(cfg: Config, run: RunDir, model_path: Path, index: ds.DataIndex, clips, backgrounds, info: dict,
           say: Callable[[str], None], evaluate_x: Callable[[list, int], np.ndarray] | None = None) -> TrainResult:
    """Evaluate the best checkpoint on train/validation/test, save model.keras, metrics and figure.
    ``evaluate_x(items, seed)``: the model's inputs of items (default: the frontend's features)."""
    tf = import_tensorflow()
    import keras

    model = keras.models.load_model(model_path)
    labels = index.labels
    out: dict = {"labels": labels, "model": info, "config_digest": cfg.digest(), "epochs": run.read_state().get("epochs_done")}
    rng = np.random.default_rng(cfg.train.seed + 2)
    if evaluate_x is None:
        evaluate_x = lambda items, seed: eval_features(items, clips, cfg, backgrounds, seed=seed)  # noqa: E731
    limit = min(cfg.train.max_train_eval_clips, EVAL_TRAIN_WINDOWS) if is_embedding(cfg) else cfg.train.max_train_eval_clips
    train_items = _sample(index.splits["training"], limit, rng)
    training_groups = index.training_speakers()  # the unknown clips redrawn each epoch are heard too
    for split, items, seed in (("train", train_items, cfg.train.seed + 3),
                               ("validation", index.splits["validation"], cfg.train.seed + 1),
                               ("test", index.splits["testing"], cfg.train.seed + 4)):
        if not items:
            out[split] = None
            continue
        x = evaluate_x(items, seed)
        y = _labels_of(items, labels)
        pred = _predict(model, x, cfg.train.batch_size).argmax(axis=1)
        out[split] = classification_report(y, pred, labels)
        if split != "train":
            by_speaker = group_report(y, pred, [i.group for i in items], training_groups)
            if by_speaker:
                out[split]["by_speaker"] = by_speaker
    save_keras_atomic(model, run.model)
    atomic_write_text(run.metrics, json.dumps(out, indent=1))
    final = out.get("test") or out.get("validation") or out["train"]
    png = plot_confusion(final["confusion_matrix"], labels,
                         f"{'test' if out.get('test') else 'validation'} set, accuracy {final['accuracy']:.3f}")
    atomic_write_bytes(run.confusion_png, png)
    w = tf.summary.create_file_writer(str(run.logs / "test"))
    with w.as_default(step=out["epochs"] or 0):
        tf.summary.image("confusion_matrix", tf.expand_dims(tf.image.decode_png(png, channels=4), 0))
        if out.get("test"):
            tf.summary.scalar("accuracy", out["test"]["accuracy"])
    w.close()

    def pct(split: str) -> str:
        if not out.get(split):
            return "n/a"
        spk = out[split].get("by_speaker")
        voices = (f", {spk['unseen_speakers']} unseen speaker{'s' if spk['unseen_speakers'] != 1 else ''}"
                  f" (worst {spk['worst'][0]['speaker']} {spk['worst'][0]['accuracy'] * 100:.1f}%)"
                  if spk and split != "train" else "")
        if split != "train" and not spk:
            voices = ", speakers unknown: see data.group_pattern"
        return f"{out[split]['accuracy'] * 100:.2f}% (n={out[split]['count']}{voices})"
    say(f"accuracy: train {pct('train')}, validation {pct('validation')}, test {pct('test')}")
    print(f"test accuracy: {pct('test')}  model: {run.path}")
    return TrainResult(run.path, out)
