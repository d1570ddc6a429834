"""A training run's folder: ``models/<UTC timestamp>/`` with config.yaml, labels.txt, split.json,
ckpts/{last,best}.keras, state.json, logs/, model.keras, metrics.json, confusion_matrix.png."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from kws.edge.errors import KwsError, naming
from kws.edge.locate import TIMESTAMP_FORMAT, models_dir
from kws.edge.manifest import MANIFEST_NAME, atomic_write_text, load_manifest
from kws.edge.stopping import removed_after

CONFIG_FILE = "config.yaml"
LABELS_FILE = "labels.txt"
SPLIT_FILE = "split.json"
STATE_FILE = "state.json"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
MODEL_INFO_FILE = "model_info.json"
CONFUSION_PNG = "confusion_matrix.png"
SKIPPED_FILE = "skipped_files.txt"
CKPT_DIR = "ckpts"
LAST_CKPT = "last.keras"
BEST_CKPT = "best.keras"
# an epoch's checkpoints are first saved under these names and take the place of last.keras and
# best.keras only once state.json counts the epoch: a kill between the two steps then leaves
# checkpoints and state that agree (settle_checkpoints), never weights one epoch ahead of the state
PENDING_CKPT = "epoch-{epoch}.{kind}.keras"
PENDING_GLOB = "epoch-*.keras"
LOG_DIR = "logs"
# state.json: the command that reset best_val_accuracy (kws-mine, so that the best checkpoint comes from
# the epochs that saw its windows); kws-train --resume says so, and the next epoch's state drops it
BEST_RESET_BY = "best_reset_by"


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run folder."""

    path: Path

    @property
    def config(self) -> Path: return self.path / CONFIG_FILE
    @property
    def labels(self) -> Path: return self.path / LABELS_FILE
    @property
    def split(self) -> Path: return self.path / SPLIT_FILE
    @property
    def state(self) -> Path: return self.path / STATE_FILE
    @property
    def model(self) -> Path: return self.path / MODEL_FILE
    @property
    def metrics(self) -> Path: return self.path / METRICS_FILE
    @property
    def model_info(self) -> Path: return self.path / MODEL_INFO_FILE
    @property
    def confusion_png(self) -> Path: return self.path / CONFUSION_PNG
    @property
    def skipped(self) -> Path: return self.path / SKIPPED_FILE
    @property
    def ckpts(self) -> Path: return self.path / CKPT_DIR
    @property
    def last_ckpt(self) -> Path: return self.path / CKPT_DIR / LAST_CKPT
    @property
    def best_ckpt(self) -> Path: return self.path / CKPT_DIR / BEST_CKPT
    @property
    def logs(self) -> Path: return self.path / LOG_DIR

    def pending_ckpt(self, epoch: int, kind: str) -> Path:
        """Where epoch ``epoch``'s ``kind`` ("last" or "best") checkpoint waits for state.json."""
        return self.ckpts / PENDING_CKPT.format(epoch=epoch, kind=kind)

    def commit_checkpoints(self, epoch: int) -> None:
        """Move epoch ``epoch``'s pending checkpoints into place (state.json already counts it)."""
        for kind, final in (("best", self.best_ckpt), ("last", self.last_ckpt)):
            pending = self.pending_ckpt(epoch, kind)
            if pending.is_file():
                os.replace(pending, final)

    def settle_checkpoints(self) -> None:
        """After a kill: commit the pending checkpoints of the epoch state.json counts, and drop those
        of an epoch it does not (stopped before its state was written: that epoch is trained again)."""
        done = int(self.read_state().get("epochs_done", 0))
        self.commit_checkpoints(done)
        for stale in self.ckpts.glob(PENDING_GLOB):
            stale.unlink()

    @property
    def resumable(self) -> bool:
        """Whether ``kws-train --resume`` can go on from this folder (its config and split are saved)."""
        return self.config.is_file() and self.split.is_file()

    def read_state(self) -> dict:
        """state.json ({} before the first epoch); a damaged one is a KwsError naming it."""
        if not self.state.is_file():
            return {}
        state = read_json_object(self.state, "run state")
        done = state.get("epochs_done", 0)
        if isinstance(done, bool) or not isinstance(done, int) or done < 0:
            raise KwsError(f"{self.state}: damaged run state: epochs_done must be a whole number >= 0, got {done!r}")
        return state

    def write_state(self, state: dict) -> None:
        atomic_write_text(self.state, json.dumps(state, indent=1))

    def reset_best(self, by: str) -> None:
        """Forget the best validation accuracy so that the next epochs choose the best checkpoint
        anew, recording the command ``by`` that asked for it."""
        self.write_state({**self.read_state(), "best_val_accuracy": -1.0, BEST_RESET_BY: by})

    def read_labels(self) -> list[str]:
        return [line.strip() for line in self.labels.read_text(encoding="utf-8").splitlines() if line.strip()]


def enclosing_run(path: Path) -> Path | None:
    """The nearest folder above ``path`` that ``kws-train --resume`` can go on from (``path`` being,
    say, a run's dist/ from kws-convert, or its ckpts/), or None where no folder above is a run."""
    return next((p for p in path.parents if RunDir(p).resumable), None)


def converted_from(path: Path) -> Path | None:
    """The training run that the kws-convert folder ``path`` (or a file in it) records as its
    source (the manifest's extra.source_run), where that run still exists; None otherwise (no
    manifest, an unreadable one, a run since deleted or moved)."""
    folder = path if path.is_dir() else path.parent
    if not (folder / MANIFEST_NAME).is_file():
        return None
    try:
        source = load_manifest(folder).extra.get("source_run")
    except KwsError:  # a damaged manifest names no run: the caller's own error stands
        return None
    return Path(source) if isinstance(source, str) and source and RunDir(Path(source)).resumable else None


def run_to_give(path: Path, command: str) -> str | None:
    """For a path given where a training run was wanted: "it lies inside the run R: COMMAND R" (a run's
    dist/ or ckpts/, or a file in them), "it was converted from the run R: COMMAND R" (a kws-convert
    --out folder elsewhere), or None where no run is known."""
    parent = enclosing_run(path)
    if parent is not None:
        return f"it lies inside the run {parent}: {command} {parent}"
    source = converted_from(path)
    return f"it was converted from the run {source}: {command} {source}" if source is not None else None


def read_json_object(path: Path, what: str) -> dict:
    """A JSON object from a run folder's file; damaged or not an object: a KwsError naming the file."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise KwsError(f"{path}: damaged {what}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise KwsError(f"{path}: damaged {what}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # integers too long, nesting too deep
        raise KwsError(f"{path}: damaged {what}: not usable JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise KwsError(f"{path}: damaged {what}: a JSON object was expected, got {type(data).__name__}")
    return data


def new_run_dir(out: str | os.PathLike | None) -> Path:
    """``out`` exactly, or a fresh ``<models>/<UTC timestamp>`` folder."""
    if out is not None:
        return Path(out)
    root = models_dir()
    stamp = time.strftime(TIMESTAMP_FORMAT, time.gmtime())
    path = root / stamp
    n = 1
    while path.exists():  # two runs started in the same second
        path = root / f"{stamp}-{n}"
        n += 1
    return path


def save_keras_atomic(model, path: Path) -> None:
    """Save a .keras file via a temp name in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    with removed_after(lambda: tmp.unlink(missing_ok=True)):  # a second Ctrl-C cannot leave it behind
        try:
            model.save(tmp)
            os.replace(tmp, path)
        except OSError as exc:  # a full disk: name the checkpoint, not its temp file or none
            raise naming(exc, path, tmp) from None
