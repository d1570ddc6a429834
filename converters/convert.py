"""kws-convert's pipeline: training run -> int8 / float TFLite, frozen .pb, C array, manifest.json
and convert_report.json, each verified on the run's test split.

Everything is written into a staging folder beside the output folder and moved in only at the
end, so a failure leaves the output folder as it was. An int8 model that loses more than the
allowed accuracy is kept as ``model_int8.rejected.tflite`` (with the float artifacts and the
report) and the run ends with AccuracyGuardError. Such a conversion (one that failed a check) never
replaces or removes a file of an earlier conversion: where the output folder holds one, it is left
as it was (its int8 model, manifest and calibrated thresholds) and the failed one goes to
``<out>.rejected`` beside it.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kws.edge.locate import DIST_DIR, REJECTED_SUFFIX
from kws.edge.runtime import TFLITE_RUNTIME
from kws.edge.manifest import (MANIFEST_NAME, Manifest, ModelEntry, TensorSpec, atomic_write_bytes,
                               atomic_write_text, process_umask, save_manifest)
from kws.edge.stopping import cleanup_held, signals_held
from kws.trainer.config import EMBEDDING_QUANTIZATIONS, MAX_ACCURACY_DROP
from kws.trainer.models import EMBEDDING_ARCHITECTURE

from . import carray, frozen, opcheck, stream_export
from .errors import AccuracyGuardError, FormatError, OutputError
from .evaluate import RuntimeResult, edge_python, run_litert, run_tflite_runtime, scores
from .flatbuffer import parse_model
from .report import (REPORT_FORMAT, REPORT_NAME, REPORT_VERSION, class_changes,
                     guard_failures, speaker_changes)
from .source import AUGMENTED_CALIBRATION_SHARE, RunData, load_keras_model, open_run

FORMATS = ("int8", "float", "pb", "c")
DEFAULT_FORMATS = FORMATS
INT8_FILE = "model_int8.tflite"
INT8_REJECTED_FILE = "model_int8.rejected.tflite"
FLOAT_FILE = "model_float.tflite"
PB_FILE = "frozen_graph.pb"
C_SOURCE_FILE = "model_int8.cc"
C_HEADER_FILE = "model_int8.h"
# files each format owns in the output folder (stale ones are removed when the format is rebuilt)
# (with the streaming form of each: a conversion without one leaves none behind)
FORMAT_FILES = {
    "int8": (INT8_FILE, INT8_REJECTED_FILE, stream_export.STREAM_INT8_FILE),
    "float": (FLOAT_FILE, stream_export.STREAM_FLOAT_FILE),
    "pb": (PB_FILE,),
    "c": (C_SOURCE_FILE, C_HEADER_FILE, stream_export.STREAM_C_SOURCE_FILE, stream_export.STREAM_C_HEADER_FILE),
}
KERAS_BATCH = 256
STAGING_PREFIX = ".kws-convert-"
STAGING_OWNER = ".owner-pid"  # in a staging folder: the pid of the kws-convert writing it
ABANDONED_STAGING_S = 24 * 3600  # an older staging folder without an owner is a killed run's
FILE_MODE = 0o666
DIR_MODE = 0o777


@dataclass(frozen=True)
class ConvertOptions:
    """What to convert and where; None means the run config's value."""

    model: str | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS
    out: str | None = None
    max_accuracy_drop: float | None = None
    calibration_clips: int | None = None
    embedding_quantization: str | None = None  # the embedding family's int8 embedding: full or dynamic
    check_edge_env: bool = True
    stream_step_ms: float | None = None  # None: stream_export.default_step_frames of the smoothing hop
    streaming: bool = True


@dataclass
class ConvertResult:
    """Where the artifacts went, the report, and whether the int8 guard passed."""

    out: Path
    report: dict[str, Any]
    files: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def parse_formats(text: str | None) -> tuple[str, ...]:
    """'int8,float' -> ('int8', 'float'); None -> DEFAULT_FORMATS; FormatError names an unknown
    format, or says the list is empty ('' or only commas: nothing to write is never what was meant)."""
    if text is None:
        return DEFAULT_FORMATS
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise FormatError(f"unknown format {unknown[0]!r} in --formats (choose from {', '.join(FORMATS)})")
    if not names:
        raise FormatError(f"--formats is empty (choose from {', '.join(FORMATS)})")
    return tuple(dict.fromkeys(names))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: alive
        return True
    return True


def _remove_abandoned_staging(out: Path) -> None:
    """Remove the staging folders beside ``out`` that a killed kws-convert left (SIGKILL, a power cut):
    those whose owner process is gone, or, written before owners were recorded, a day old."""
    for folder in out.parent.glob(f"{STAGING_PREFIX}{out.name}-*"):
        if not folder.is_dir():
            continue
        try:
            owner = folder / STAGING_OWNER
            if owner.is_file():
                abandoned = not _process_alive(int(owner.read_text().strip()))
            else:
                abandoned = time.time() - folder.stat().st_mtime > ABANDONED_STAGING_S
        except (OSError, ValueError):
            continue
        if abandoned:
            shutil.rmtree(folder, ignore_errors=True)


def _make_staging(out: Path) -> Path:
    """A fresh folder beside ``out`` (same filesystem, so moving in is a rename)."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_staging(out)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{out.name}-", dir=out.parent))
        (staging / STAGING_OWNER).write_text(f"{os.getpid()}\n")  # whose it is, for the next run's cleanup
        if out.is_dir() and not os.access(out, os.W_OK):
            shutil.rmtree(staging, ignore_errors=True)
            raise OutputError(f"{out}: cannot write here (permission denied)")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the output folder ({exc.strerror or exc})") from None
    return staging


def _commit(staging: Path, out: Path, produced: list[str], owned: list[str]) -> None:
    """Move the staged files into ``out``: models first, the manifest last; remove this run's
    formats' stale files that were not produced again (e.g. an old stream_int8.tflite after --no-streaming)."""
    mask = process_umask()
    for name in produced:  # temp files are created 0600; give them the usual permissions
        os.chmod(staging / name, FILE_MODE & ~mask)
    if not out.exists():
        (staging / STAGING_OWNER).unlink(missing_ok=True)  # the folder becomes the dist itself
        os.chmod(staging, DIR_MODE & ~mask)
        with signals_held(CommittedInterrupt):  # once renamed, a stop must not say "nothing was written"
            os.replace(staging, out)
        return
    order = sorted(produced, key=lambda n: (n == MANIFEST_NAME, n == REPORT_NAME))
    # a Ctrl-C halfway would leave new models beside the old manifest, and one while the emptied staging
    # folder is removed would leave it behind and say "nothing was written" of a written conversion
    with signals_held(CommittedInterrupt):
        for name in order:
            os.replace(staging / name, out / name)
        for name in owned:
            if name not in produced and (out / name).is_file():
                (out / name).unlink()
        shutil.rmtree(staging, ignore_errors=True)


class CommittedInterrupt(KeyboardInterrupt):
    """Ctrl-C (or another stop signal) that arrived while the conversion's files were being moved in:
    they all were, and then the stop was honoured."""


def _commit_checked(staging: Path, out: Path, produced: list[str], owned: list[str]) -> None:
    """``_commit``, with a failure to move the files in as one OutputError line."""
    try:
        _commit(staging, out, produced, owned)
    except OSError as exc:
        raise OutputError(f"{out}: cannot move the artifacts in ({exc.strerror or exc})") from None


def destination(out: Path, produced: list[str], owned: list[str], failures: list[str]) -> Path:
    """The folder the staged files go to: ``out``, unless the conversion failed a check and moving it
    in would replace or remove a file there (an earlier conversion: a user's good int8 model, the
    manifest holding its calibrated thresholds); then ``<out>.rejected`` beside it."""
    if not failures or not any((out / name).exists() for name in {*produced, *owned}):
        return out
    return rejected_beside(out)


def rejected_beside(out: Path) -> Path:
    """``<out>.rejected``: where a conversion that failed a check goes when ``out`` holds an earlier one."""
    out = Path(os.path.abspath(out))  # a name even for --out . (symlinks kept: staging is beside the link)
    return out.with_name(out.name + REJECTED_SUFFIX)


def stale_rejected_note(out: Path, dest: Path) -> str | None:
    """One line when a conversion going to ``out`` leaves an earlier failed one's ``<out>.rejected``
    beside it (kept: it is a user's to delete), so it is not taken for this one's; else None."""
    rejected = rejected_beside(out)
    if dest == rejected or not rejected.is_dir():
        return None
    return (f"note: {rejected} holds an earlier conversion that failed its checks ({REPORT_NAME} there says "
            f"why), not this one; it is kept: delete it when you no longer need it")


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"shape": list(spec.shape), "dtype": spec.dtype, "scale": spec.scale, "zero_point": spec.zero_point}


def _keras_predict(model: Any, x: np.ndarray) -> np.ndarray:
    if len(x) == 0:
        return np.zeros((0, int(model.output_shape[-1])), np.float32)
    return np.asarray(model.predict(x, batch_size=KERAS_BATCH, verbose=0), np.float32)


def _evaluate_tflite(key: str, file: str, data: bytes, path: Path, ev, keras_scores, labels, check_edge: bool,
                     say: Callable[[str], None]) -> tuple[dict[str, Any], Any, ModelEntry | None]:
    """Accuracy, per-class change, ops and runtimes of one .tflite (already written at ``path``)."""
    info = parse_model(data, file)
    uses = opcheck.op_uses(info)
    bad_ops = opcheck.unsupported(uses)
    say(f"{key}: evaluating {file} on {len(ev.x)} {ev.split} clips with ai-edge-litert")
    litert, probs, m = run_litert(path, ev.x)
    art: dict[str, Any] = {"file": file, "size_bytes": len(data), "sha256": _sha256(data),
                           "ops": [u.to_dict() for u in uses], "ops_supported": not bad_ops,
                           "ops_unsupported": bad_ops, "runtimes": {"ai-edge-litert": litert.to_dict()}}
    entry = None
    sc = None
    if probs is not None:
        sc = scores(probs, ev.y, labels, ev.groups)
        litert.accuracy = sc.accuracy
        art["runtimes"]["ai-edge-litert"] = litert.to_dict()
        art.update(accuracy=sc.accuracy, accuracy_change_points=(sc.accuracy - keras_scores.accuracy) * 100.0,
                   per_class=class_changes(keras_scores, sc), per_speaker=speaker_changes(keras_scores, sc))
        entry = ModelEntry(file=file, input=m.input_spec, output=m.output_spec, sha256=art["sha256"],
                           size_bytes=len(data))
        art["input"], art["output"] = _spec(m.input_spec), _spec(m.output_spec)
    else:
        art.update(accuracy=None, accuracy_change_points=None, per_class={})
    if check_edge:
        if edge_python() is not None:
            say(f"{key}: loading {file} with tflite-runtime in the edge environment")
        edge = run_tflite_runtime(path, ev.x, ev.y, probs)
    else:
        edge = RuntimeResult(TFLITE_RUNTIME, False, "not checked (--no-edge-check)")
    art["runtimes"]["tflite-runtime"] = edge.to_dict()
    return art, sc, entry


def convert(opts: ConvertOptions, say: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> ConvertResult:
    """Run the whole conversion; raises ConvertError subclasses (AccuracyGuardError after the
    float artifacts and the report have been written)."""
    t_start = time.time()
    formats = tuple(opts.formats)
    for f in formats:
        if f not in FORMATS:
            raise FormatError(f"unknown format {f!r} (choose from {', '.join(FORMATS)})")
    if opts.max_accuracy_drop is not None and not 0 <= opts.max_accuracy_drop <= MAX_ACCURACY_DROP:
        # the run's convert.max_accuracy_drop obeys the same rule (trainer.config)
        raise FormatError(f"--max-accuracy-drop must be a number of points in [0, {MAX_ACCURACY_DROP:g}], "
                          f"got {opts.max_accuracy_drop:g}")
    if opts.calibration_clips is not None and opts.calibration_clips < 1:
        raise FormatError(f"--calibration-clips must be >= 1, got {opts.calibration_clips}")
    if opts.embedding_quantization is not None and opts.embedding_quantization not in EMBEDDING_QUANTIZATIONS:
        raise FormatError(f"--embedding-quantization must be one of {', '.join(EMBEDDING_QUANTIZATIONS)}, "
                          f"got {opts.embedding_quantization!r}")
    src = open_run(opts.model)
    cfg = src.cfg
    changes = {k: v for k, v in (("calibration_clips", opts.calibration_clips),
                                 ("embedding_quantization", opts.embedding_quantization)) if v is not None}
    if changes:
        import dataclasses
        cfg = cfg.replace(convert=dataclasses.replace(cfg.convert, **changes))
        src = type(src)(run=src.run, cfg=cfg, labels=src.labels)
    if opts.embedding_quantization is not None and cfg.model.architecture != EMBEDDING_ARCHITECTURE:
        say(f"--embedding-quantization: not used ({cfg.model.architecture} has no speech embedding; its int8 model "
            "is full-integer)")
    max_drop = cfg.convert.max_accuracy_drop if opts.max_accuracy_drop is None else float(opts.max_accuracy_drop)
    step_frames = _step_frames(cfg, opts) if opts.streaming else None
    out = Path(opts.out) if opts.out else src.path / DIST_DIR
    staging = _make_staging(out)
    try:
        return _convert_into(src, formats, out, staging, max_drop, opts.check_edge_env, say, t_start, step_frames)
    except OSError as exc:
        with cleanup_held(exc):
            shutil.rmtree(staging, ignore_errors=True)
        raise _in_out(exc, staging, out) from None
    except BaseException as exc:  # a second Ctrl-C while the staging folder goes cannot leave half of it
        with cleanup_held(exc):
            shutil.rmtree(staging, ignore_errors=True)
        raise


def _in_out(exc: OSError, staging: Path, out: Path) -> OSError:
    """``exc`` naming the file in ``out`` where it named one in the staging folder (a full disk while
    writing model_float.tflite is about dist/model_float.tflite, not a temporary folder's copy)."""
    if exc.errno is None or exc.filename is None:
        return exc
    try:
        inside = Path(os.fsdecode(exc.filename)).relative_to(staging)
    except ValueError:  # a file elsewhere
        return exc
    return type(exc)(exc.errno, exc.strerror, os.fspath(out / inside))


def _step_frames(cfg: Any, opts: ConvertOptions) -> int:
    """Frames per step of the streaming form: --stream-step-ms, else the default (30 ms, or the
    smoothing hop where that is shorter)."""
    stride = cfg.features.stride_ms
    if opts.stream_step_ms is None:
        return stream_export.default_step_frames(max(1, int(round(cfg.smoothing.hop_ms / stride))), stride)
    frames = opts.stream_step_ms / stride
    if (not math.isfinite(frames) or opts.stream_step_ms <= 0 or abs(frames - round(frames)) > 1e-9
            or round(frames) > cfg.features.num_frames):
        raise FormatError(f"--stream-step-ms must be a multiple of the frontend stride ({stride:g} ms) up to the "
                          f"clip, got {opts.stream_step_ms:g}")
    return int(round(frames))


def _convert_into(src, formats, out: Path, staging: Path, max_drop: float, check_edge: bool,
                  say: Callable[[str], None], t_start: float, step_frames: int | None) -> ConvertResult:
    from kws.trainer.tfimport import import_tensorflow

    if src.cfg.model.architecture == EMBEDDING_ARCHITECTURE:  # mel -> frozen embedding -> head
        from .embedding_export import convert_embedding_run

        return convert_embedding_run(src, formats, out, staging, max_drop, check_edge, say, t_start)
    tf = import_tensorflow()
    from .tflite import batch1_model, convert_float, convert_int8

    cfg, labels = src.cfg, src.labels
    model = load_keras_model(src)
    say(f"model: {src.path} ({cfg.model.architecture}, labels {', '.join(labels)})")
    data = RunData(src, say)
    ev = data.evaluation()
    keras_probs = _keras_predict(model, ev.x)
    keras_scores = scores(keras_probs, ev.y, labels, ev.groups)
    edge_model = batch1_model(model)
    timings: dict[str, float] = {}
    artifacts: dict[str, dict[str, Any]] = {}
    entries: dict[str, ModelEntry] = {}
    produced: list[str] = []
    failures: list[str] = []
    guard: dict[str, Any] = {"checked": False, "max_accuracy_drop": max_drop, "class_noise_clips": "max(1, round(sqrt(n) / 2))",
                             "reference": "model.keras", "passed": None, "failures": []}
    calibration_info: dict[str, Any] = {}

    def write(name: str, payload: bytes | str) -> Path:
        path = staging / name
        atomic_write_bytes(path, payload.encode("utf-8") if isinstance(payload, str) else payload)  # names it
        produced.append(name)
        return path

    def discard(name: str) -> None:
        (staging / name).unlink()
        produced.remove(name)

    float_blob = None
    calibration_x = None
    if "float" in formats:
        t0 = time.time()
        say("float: converting")
        blob = float_blob = convert_float(edge_model)
        path = write(FLOAT_FILE, blob)
        art, _, entry = _evaluate_tflite("float", FLOAT_FILE, blob, path, ev, keras_scores, labels, check_edge, say)
        artifacts["float"] = art
        if entry:
            entries["float"] = entry
        timings["float_s"] = round(time.time() - t0, 2)

    int8_blob = None
    int8_entry: ModelEntry | None = None
    if "int8" in formats or "c" in formats:
        t0 = time.time()
        cal = data.calibration()
        calibration_info = {"clips": int(len(cal.x)), "split": cal.split, "by_label": cal.by_label,
                            "augmented_share": AUGMENTED_CALIBRATION_SHARE}
        say(f"int8: calibrating on {len(cal.x)} training clips ({', '.join(f'{k} {v}' for k, v in cal.by_label.items())})")
        int8_blob = convert_int8(edge_model, cal.x)
        calibration_x = cal.x
        path = write(INT8_FILE, int8_blob)
        art, sc, entry = _evaluate_tflite("int8", INT8_FILE, int8_blob, path, ev, keras_scores, labels,
                                          check_edge, say)
        int8_entry = entry
        art["calibration"] = calibration_info
        art["micro_arena"] = carray.estimate_arena(parse_model(int8_blob, INT8_FILE)).to_dict()
        guard["checked"] = True
        if sc is None:
            failures.append(f"int8: ai-edge-litert cannot run {INT8_FILE}: "
                            f"{art['runtimes']['ai-edge-litert']['status']}")
            guard_fail = failures[-1:]
        else:
            guard_fail = guard_failures(keras_scores, sc, max_drop)
        guard["silence_and_unknown_as_one"] = keras_scores.keyword_view is not None
        guard["failures"] = guard_fail
        guard["passed"] = not guard_fail
        if guard_fail:
            os.replace(path, staging / INT8_REJECTED_FILE)
            produced.remove(INT8_FILE)
            produced.append(INT8_REJECTED_FILE)
            art["file"] = INT8_REJECTED_FILE
            art["status"] = "rejected"
            failures.extend(f"int8 {f}" for f in guard_fail if not f.startswith("int8:"))
            if "int8" not in formats:
                (staging / INT8_REJECTED_FILE).unlink()
                produced.remove(INT8_REJECTED_FILE)
        else:
            art["status"] = "ok"
            if entry and "int8" in formats:
                entries["int8"] = entry
            if "int8" not in formats:
                (staging / INT8_FILE).unlink()
                produced.remove(INT8_FILE)
        art["written"] = "int8" in formats
        artifacts["int8"] = art
        timings["int8_s"] = round(time.time() - t0, 2)

    if "c" in formats and int8_blob is not None:
        # C files only for an int8 model that passed every check (as for the streaming form's)
        if guard["passed"] and int8_entry is not None and artifacts["int8"]["ops_supported"]:
            info = parse_model(int8_blob, INT8_FILE)
            uses = opcheck.op_uses(info)
            arena = carray.estimate_arena(info)
            m_entry = int8_entry
            write(C_HEADER_FILE, carray.render_header(uses, arena, m_entry.input, m_entry.output, labels,
                                                      INT8_FILE, len(int8_blob)))
            write(C_SOURCE_FILE, carray.render_source(int8_blob, labels, C_HEADER_FILE, INT8_FILE))
            artifacts["c"] = {"file": C_SOURCE_FILE, "files": [C_SOURCE_FILE, C_HEADER_FILE],
                              "size_bytes": (staging / C_SOURCE_FILE).stat().st_size,
                              "array_name": carray.ARRAY_NAME, "array_length": len(int8_blob),
                              "same_bytes_as": INT8_FILE, "ops_to_register": list(dict.fromkeys(u.name for u in uses)),
                              "arena": arena.to_dict(), "accuracy": None}
        else:
            why = ("int8 model rejected" if not guard["passed"]
                   else f"{INT8_FILE} uses ops {opcheck.OLDEST_RUNTIME} cannot run")
            artifacts["c"] = {"file": C_SOURCE_FILE, "files": [], "status": f"not written: {why}", "accuracy": None}

    stream = None
    if step_frames is not None and {"int8", "float", "c"} & set(formats):
        t0 = time.time()
        window_blobs = {"float": float_blob} if float_blob is not None else {}
        if int8_blob is not None and guard["passed"]:
            window_blobs["int8"] = int8_blob
        stream = stream_export.export_streaming(
            model, step_frames, window_blobs, set(entries), calibration_x, ev.x,
            want_c="c" in formats and "c" in artifacts and "array_length" in artifacts["c"],
            staging=staging, write=write, discard=discard, labels=tuple(labels), say=say)
        failures.extend(stream.failures)
        timings["streaming_s"] = round(time.time() - t0, 2)

    if "pb" in formats:
        t0 = time.time()
        say("pb: freezing the graph and reloading it with TensorFlow")
        pb = frozen.freeze(model)
        check = frozen.verify(pb, ev.x, keras_probs)
        write(PB_FILE, pb)
        pb_scores = scores(check.predictions, ev.y, labels)
        artifacts["pb"] = {"file": PB_FILE, "size_bytes": len(pb), "sha256": _sha256(pb),
                           "input": check.input_tensor, "output": check.output_tensor,
                           "max_abs_diff_vs_keras": check.max_abs_diff, "tolerance": frozen.PB_TOLERANCE,
                           "accuracy": pb_scores.accuracy,
                           "accuracy_change_points": (pb_scores.accuracy - keras_scores.accuracy) * 100.0,
                           "per_class": class_changes(keras_scores, pb_scores),
                           "reloaded_with": f"tensorflow {tf.__version__} (tf.compat.v1 GraphDef import)"}
        timings["pb_s"] = round(time.time() - t0, 2)

    for key, art in artifacts.items():
        if key in ("int8", "float") and not art.get("ops_supported", True):
            failures.append(f"{key}: ops not supported by {opcheck.OLDEST_RUNTIME}: {'; '.join(art['ops_unsupported'])}")

    smoothing = cfg.smoothing
    if stream is not None and stream.section is not None:
        hop = stream_export.hop_for_step(smoothing.hop_ms, step_frames * cfg.features.stride_ms)
        if hop != smoothing.hop_ms:
            say(f"streaming: the run's hop of {smoothing.hop_ms:g} ms is not a whole number of "
                f"{step_frames * cfg.features.stride_ms:g} ms steps; the manifest's hop is {hop:g} ms")
            import dataclasses
            smoothing = dataclasses.replace(smoothing, hop_ms=hop)
    if entries:
        manifest = Manifest(
            labels=tuple(labels), frontend=cfg.features, models=dict(entries), smoothing=smoothing,
            thresholds={}, config_digest=cfg.digest(), streaming=stream.section if stream else None,
            extra={"converted_by": "kws-convert", "source_run": str(src.path.resolve()),
                   "architecture": cfg.model.architecture, "tensorflow": tf.__version__,
                   "test_accuracy": {k: artifacts[k].get("accuracy") for k in entries},
                   "keras_test_accuracy": keras_scores.accuracy,
                   "int8_calibration": calibration_info})
        save_manifest(manifest, staging / MANIFEST_NAME)
        produced.append(MANIFEST_NAME)

    owned = [MANIFEST_NAME, REPORT_NAME] + [n for f in formats for n in FORMAT_FILES[f]]
    dest = destination(out, produced + [REPORT_NAME], owned, failures)
    report = {
        "format": REPORT_FORMAT, "version": REPORT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": str(src.path.resolve()), "architecture": cfg.model.architecture, "labels": list(labels),
        "formats": list(formats), "out": str(dest.resolve()), "config_digest": cfg.digest(),
        "evaluation": {"split": ev.split, "clips": int(len(ev.y)), "by_label": ev.by_label},
        "keras": {"file": "model.keras", **keras_scores.to_dict()},
        "artifacts": artifacts, "guard": guard, "failures": failures,
        "streaming": stream.report if stream else {"written": False, "reason": "not asked for"},
        "files": sorted(produced + [REPORT_NAME]), "timings": {**timings, "total_s": round(time.time() - t_start, 2)},
        "tensorflow": tf.__version__,
    }
    atomic_write_text(staging / REPORT_NAME, json.dumps(report, indent=1, default=_json_default) + "\n")
    produced.append(REPORT_NAME)
    earlier = sorted(n for f, names in FORMAT_FILES.items() if f not in formats for n in names
                     if (dest / n).is_file())
    if earlier:  # other formats' files of an earlier conversion: kept, but not this manifest's
        one = len(earlier) == 1
        say(f"note: {', '.join(earlier)} in {dest} {'is' if one else 'are'} from an earlier conversion (not asked "
            f"for now), and this manifest does not describe {'it' if one else 'them'}")
    stale = stale_rejected_note(out, dest)
    if stale:
        say(stale)
    return _deliver(staging, out, dest, produced, owned, report, failures)


def _deliver(staging: Path, out: Path, dest: Path, produced: list[str], owned: list[str],
             report: dict[str, Any], failures: list[str]) -> ConvertResult:
    """Move the staged files into ``dest`` (``destination``); the result, or (where something failed)
    AccuracyGuardError carrying it."""
    _commit_checked(staging, dest, produced, owned)
    result = ConvertResult(out=dest, report=report, files=sorted(produced), failures=failures)
    if failures:
        error = AccuracyGuardError(_guard_message(failures, out, dest, produced))
        error.result = result
        raise error
    return result


def _guard_message(failures: list[str], out: Path, dest: Path, produced: list[str]) -> str:
    kept = ", ".join(n for n in sorted(produced) if n != REPORT_NAME)
    return (f"{failures[0]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
            + f"; kept {kept} and {REPORT_NAME} in {dest}"
            + (f"; {out} holds an earlier conversion, left as it was" if dest != out else ""))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")

