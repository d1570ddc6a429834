"""kws-convert's streaming artifacts: the step models (``stream_float.tflite``, ``stream_int8.tflite``),
the int8 one as C source, and their manifest section, each checked against the window model over a
long stream of the run's test features before it is written."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kws.edge.manifest import StreamEntry, StreamingSection, atomic_write_bytes
from kws.edge.runtime import LITERT, TFLiteModel
from kws.edge.stepmodel import StepModel

from . import carray, opcheck
from .flatbuffer import parse_model
from .errors import ConvertError
from .streaming import (FRAMES_INPUT, SCORES_OUTPUT, NotStreamableError, StepPlan, convert_step_float,
                        convert_step_int8, plan)

STREAM_FLOAT_FILE = "stream_float.tflite"
STREAM_INT8_FILE = "stream_int8.tflite"
STREAM_C_SOURCE_FILE = "stream_int8.cc"
STREAM_C_HEADER_FILE = "stream_int8.h"
# frames of test features streamed through both forms to compare them (30 s at a 10 ms stride)
STREAM_CHECK_FRAMES = 3000
FLOAT_TOLERANCE = 1e-5
INT8_TOLERANCE_STEPS = 1
# The default step: 30 ms (3 frames at a 10 ms stride), or the smoothing hop where that is shorter.
# Issue 15 asks for a hop of 10-30 ms; a 30 ms step costs less per second of audio than a 20 ms one
# (one invoke and one smoother update per hop instead of 1.5; bench_edge). A 1-frame int8 step does
# not convert to a plain int8 graph with TF 2.21: the converter turns the residual Add of two
# [1, 1, 1, C] tensors into a BiasAdd it leaves in float (DEQUANTIZE, RESHAPE, ADD, QUANTIZE); the
# float step is fine.
DEFAULT_STEP_MS = 30.0
# int8 step: clips streamed through the Keras step model to calibrate it (its ranges are then
# replaced by the window model's, so the values hardly matter; each step is one eager Keras call, ~0.1 s)
STEP_CALIBRATION_CLIPS = 2


def default_step_frames(hop_frames: int, stride_ms: float = 10.0) -> int:
    """Frames per step for a hop of ``hop_frames`` frames when none is asked for: DEFAULT_STEP_MS
    (at least one frame), or the hop where it is shorter."""
    return max(1, min(hop_frames, int(DEFAULT_STEP_MS // stride_ms)))


def hop_for_step(hop_ms: float, step_ms: float) -> float:
    """The hop the manifest lists with a streaming form of ``step_ms``: the run's hop where it is a
    whole number of steps (the recognizer streams it), else the step itself (a hop of 40 ms and a
    30 ms step would run the window model every hop)."""
    steps = hop_ms / step_ms
    return hop_ms if abs(steps - round(steps)) <= 1e-9 and round(steps) >= 1 else step_ms


@dataclass
class StreamResult:
    """What the streaming export produced: the manifest section (None: no step model), the report
    part, the files written and any failures."""

    section: StreamingSection | None
    report: dict[str, Any]
    files: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def stream_frames(clips: np.ndarray, max_frames: int = STREAM_CHECK_FRAMES) -> np.ndarray:
    """Clips of features laid end to end as one stream, (frames, features), at most ``max_frames``."""
    clips = np.asarray(clips, np.float32)
    return clips.reshape(-1, clips.shape[-1])[:max_frames]


def compare_forms(window: TFLiteModel, step: StepModel, frames: np.ndarray) -> dict[str, Any]:
    """Stream ``frames`` through the step model (zero frames first, so a step ends at the first full
    window) and score every window that ends at a step with the window model. Returns the max abs
    difference, also in output quantization steps, and how many windows were compared."""
    window_frames = int(window.input_shape[1])
    s = step.step_frames
    lead = (-window_frames) % s
    stream = np.concatenate([np.zeros((lead, frames.shape[1]), np.float32), frames])
    step.reset()
    diffs = []
    for start in range(0, len(stream) - s + 1, s):
        scores = step.step(stream[start:start + s])
        end = start + s - lead
        if end >= window_frames:
            diffs.append(float(np.max(np.abs(window.predict(frames[end - window_frames:end]) - scores))))
    step.reset()
    worst = max(diffs) if diffs else 0.0
    out_spec = window.output_spec
    result = {"windows_compared": len(diffs), "stream_frames": int(len(frames)), "max_abs_diff_vs_window": worst}
    if out_spec.quantized:
        result["max_step_diff_vs_window"] = int(round(worst / out_spec.scale))
    return result


def _describe(plan_: StepPlan) -> dict[str, Any]:
    return {"step_frames": plan_.step_frames, "window_frames": plan_.window_frames,
            "states": [{"name": s.name, "layer": s.layer, "frames": s.frames, "shape": list(s.shape)}
                       for s in plan_.states]}


def _entry(file: str, data: bytes, model: StepModel, step_plan: StepPlan) -> StreamEntry:
    """The manifest entry: tensors named frames, state_<layer>... in; scores, new_state_<layer>... out."""
    names_in = [FRAMES_INPUT] + [s.name for s in step_plan.states]
    return StreamEntry(file=file, inputs=tuple(zip(names_in, model.input_specs)),
                       outputs=tuple(zip([SCORES_OUTPUT] + [f"new_{n}" for n in names_in[1:]], model.output_specs)),
                       sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def export_streaming(model: Any, step_frames: int, window_blobs: dict[str, bytes], write_keys: set[str],
                     calibration: np.ndarray | None, test_clips: np.ndarray, want_c: bool,
                     staging: Path, write: Callable[[str, bytes | str], Path], discard: Callable[[str], None], labels: tuple[str, ...],
                     say: Callable[[str], None]) -> StreamResult:
    """Build, convert and check the step models of the window models in ``window_blobs`` ("float",
    "int8") in the staging folder (``write`` adds a file there, ``discard`` takes one back); keep those in ``write_keys`` (and the int8 one as C source if ``want_c``). A model with
    no exact streaming form gives a section of None and one line saying why."""
    try:
        step_plan = plan(model, step_frames)
    except NotStreamableError as exc:
        say(f"streaming: no step model ({exc})")
        return StreamResult(None, {"written": False, "reason": str(exc)})
    report: dict[str, Any] = {"written": True, **_describe(step_plan), "models": {}}
    say(f"streaming: step model of {step_frames} frames with {len(step_plan.states)} state tensors; converting")
    result = StreamResult(None, report)
    float_blob = convert_step_float(step_plan) if "float" in window_blobs else None
    int8_blob = None
    if "int8" in window_blobs and calibration is not None:
        try:
            int8_blob = convert_step_int8(step_plan, window_blobs["int8"], calibration, STEP_CALIBRATION_CLIPS)
        except ConvertError as exc:  # e.g. 1-frame steps: a known converter limit, not a broken model
            say(f"streaming int8: no step model ({exc})")
            report["models"]["int8"] = {"written": False, "reason": str(exc)}
    frames = stream_frames(test_clips)
    entries: dict[str, StreamEntry] = {}
    for key, (file, blob) in {"float": (STREAM_FLOAT_FILE, float_blob), "int8": (STREAM_INT8_FILE, int8_blob)}.items():
        if blob is None or key not in window_blobs:
            continue
        path = write(file, blob)
        window_path = staging / f".window_{key}_for_stream_check.tflite"
        atomic_write_bytes(window_path, window_blobs[key])
        try:
            step = StepModel(path, runtime=LITERT)
            check = compare_forms(TFLiteModel(window_path, runtime=LITERT), step, frames)
        finally:
            window_path.unlink()
        info = parse_model(blob, file)
        uses = opcheck.op_uses(info)
        art = {"file": file, "size_bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest(),
               "ops": [u.to_dict() for u in uses], "ops_unsupported": opcheck.unsupported(uses),
               "written": key in write_keys, **check}
        if key == "int8":
            art["micro_arena"] = carray.estimate_arena(info).to_dict()
        report["models"][key] = art
        steps = check.get("max_step_diff_vs_window")
        ok = steps <= INT8_TOLERANCE_STEPS if key == "int8" else check["max_abs_diff_vs_window"] <= FLOAT_TOLERANCE
        say(f"streaming {key}: {file} vs the window model over {check['windows_compared']} windows: max |diff| "
            f"{check['max_abs_diff_vs_window']:.1e}" + (f" ({steps} quantization steps)" if key == "int8" else ""))
        if not ok or art["ops_unsupported"]:
            result.failures.append(f"streaming {key}: {file} " + (
                "does not reproduce the window model's scores" if not ok
                else "uses ops tflite-runtime 2.14 cannot run: " + "; ".join(art["ops_unsupported"])))
            art["written"] = False
            discard(file)
            continue
        if key == "int8" and want_c:
            result.files.extend(_write_c(blob, info, uses, step, labels, write, report))
        if key in write_keys:
            result.files.append(file)
            entries[key] = _entry(file, blob, step, step_plan)
        else:
            discard(file)
    result.section = StreamingSection(step_frames, entries) if entries else None
    return result


def _write_c(blob: bytes, info: Any, uses: list, step: StepModel, labels: tuple[str, ...],
             write: Callable[[str, bytes | str], Path], report: dict[str, Any]) -> list[str]:
    arena = carray.estimate_arena(info)
    write(STREAM_C_HEADER_FILE, carray.render_stream_header(uses, arena, step.input_specs, step.output_specs,
                                                            labels, STREAM_INT8_FILE, len(blob)))
    write(STREAM_C_SOURCE_FILE, carray.render_source(blob, labels, STREAM_C_HEADER_FILE, STREAM_INT8_FILE,
                                                     array_name=carray.STREAM_ARRAY_NAME,
                                                     length_name=carray.STREAM_LENGTH_NAME,
                                                     labels_name=carray.STREAM_LABELS_NAME))
    report["c"] = {"files": [STREAM_C_SOURCE_FILE, STREAM_C_HEADER_FILE], "array_name": carray.STREAM_ARRAY_NAME,
                   "array_length": len(blob), "same_bytes_as": STREAM_INT8_FILE,
                   "ops_to_register": list(dict.fromkeys(u.name for u in uses)), "arena": arena.to_dict()}
    return [STREAM_C_SOURCE_FILE, STREAM_C_HEADER_FILE]
