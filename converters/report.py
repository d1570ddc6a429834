"""The conversion report: per-artifact accuracy against Keras, the int8 accuracy guard, and the
table kws-convert prints (the same facts are saved as ``convert_report.json``)."""
from __future__ import annotations

import math

from typing import Any

from .evaluate import Scores

REPORT_NAME = "convert_report.json"
REPORT_FORMAT = "kws-convert-report"
REPORT_VERSION = 1
POINTS = 100.0
# float comparisons of accuracy points: two scores this close are equal
POINT_EPSILON = 1e-9
# A class's accuracy on n clips moves in steps of 100/n points: on a test split of a few dozen clips
# per class, one or two clips changing is 5-15 points and cannot be told from calibration noise (int8
# often swaps a clip between two confusable classes at the same overall accuracy). So a class fails the
# guard when it loses more than the allowed points AND more clips than one standard deviation of its
# correct count (sqrt(n)/2, the binomial worst case), at least CLASS_NOISE_CLIPS. With many clips per
# class the points rule decides.
CLASS_NOISE_CLIPS = 1


def class_noise_clips(n: int) -> int:
    """Clips a class of n test clips may lose to noise: max(CLASS_NOISE_CLIPS, round(sqrt(n) / 2))."""
    return max(CLASS_NOISE_CLIPS, int(round(math.sqrt(max(n, 0)) / 2)))

def class_changes(reference: Scores, scored: Scores) -> dict[str, dict[str, float]]:
    """Per label: reference accuracy, this artifact's accuracy, and the change in points."""
    out = {}
    for label, ref in reference.per_class.items():
        acc = scored.per_class.get(label, 0.0)
        out[label] = {"keras": ref, "accuracy": acc, "change_points": (acc - ref) * POINTS,
                      "clips": reference.counts.get(label, 0)}
    return out


def speaker_changes(reference: Scores, scored: Scores) -> dict[str, dict[str, float]]:
    """Per speaker (test-split group): Keras accuracy, this artifact's, the change in points, clips."""
    return {g: {"keras": ref, "accuracy": scored.per_group.get(g, 0.0),
                "change_points": (scored.per_group.get(g, 0.0) - ref) * POINTS,
                "clips": reference.group_counts.get(g, 0)}
            for g, ref in reference.per_group.items()}


def guard_failures(reference: Scores, int8: Scores, max_drop_points: float) -> list[str]:
    """What the int8 model lost beyond ``max_drop_points``, overall and per class (a class must
    also lose more than class_noise_clips of its clips); empty: passed. Judged on the keyword view
    where both have one: clips moved between _silence_ and _unknown_ are not a loss, as neither
    label is ever detected (the report's per-class table still shows them)."""
    failures = []
    merged = reference.keyword_view is not None and int8.keyword_view is not None
    if merged:
        reference, int8 = reference.keyword_view, int8.keyword_view
    drop = (reference.accuracy - int8.accuracy) * POINTS
    if drop > max_drop_points + POINT_EPSILON:
        failures.append(f"overall accuracy {int8.accuracy * POINTS:.2f}% vs Keras {reference.accuracy * POINTS:.2f}% "
                        + ("with _silence_ and _unknown_ as one class " if merged else "")
                        + f"(-{drop:.2f} points > {max_drop_points:g})")
    for label, change in class_changes(reference, int8).items():
        class_drop = -change["change_points"]
        clips_lost = round(class_drop / POINTS * change["clips"])
        if class_drop > max_drop_points + POINT_EPSILON and clips_lost > class_noise_clips(change["clips"]):
            failures.append(f"class {label}: {change['accuracy'] * POINTS:.2f}% vs Keras {change['keras'] * POINTS:.2f}% "
                            f"(-{class_drop:.2f} points > {max_drop_points:g}: {clips_lost} of {change['clips']} clips)")
    return failures


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * POINTS:.2f}%"


def _runtime_cell(info: dict[str, Any] | None) -> str:
    if not info:
        return "-"
    if not info.get("loaded"):
        status = str(info.get("status", "failed"))
        for known in ("not installed", "not checked"):
            if status.startswith(known):
                return known
        return "FAILED"
    latency = info.get("latency_ms")
    return "ok" + (f" {latency:.2f} ms" if latency is not None else "")


def format_table(report: dict[str, Any]) -> str:
    """The printed summary: one row per artifact, then ops and guard lines."""
    keras = report["keras"]
    rows = [("artifact", "size", "accuracy", "vs keras", "worst class", "ai-edge-litert", "tflite-runtime"),
            ("model.keras", "-", _pct(keras["accuracy"]), "", "", "", "")]
    for art in report["artifacts"].values():
        if art.get("accuracy") is None and "runtimes" not in art:
            rows.append((art["file"], _size(art.get("size_bytes")), "-", "", "", "", ""))
            continue
        change = art.get("accuracy_change_points")
        worst = min(art.get("per_class", {}).items(), key=lambda kv: kv[1]["change_points"], default=None)
        worst_text = f"{worst[0]} {worst[1]['change_points']:+.2f}" if worst else ""
        runtimes = art.get("runtimes", {})
        name = art["file"] + (" (for the C array only)" if art.get("written") is False else "")
        rows.append((name, _size(art.get("size_bytes")), _pct(art.get("accuracy")),
                     "" if change is None else f"{change:+.2f} pts", worst_text,
                     _runtime_cell(runtimes.get("ai-edge-litert")) if runtimes else "n/a (TF)",
                     _runtime_cell(runtimes.get("tflite-runtime")) if runtimes else "n/a"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    split = report["evaluation"]
    lines.insert(0, f"{split['split']} split: {split['clips']} clips; accuracy with the edge runtime, one thread")
    for key, art in report["artifacts"].items():
        if art.get("ops"):
            ops = ", ".join(f"{o['op']} v{o['version']}" + (f" x{o['count']}" if o["count"] > 1 else "")
                            for o in art["ops"])
            ok = "all run on tflite-runtime 2.14" if art.get("ops_supported") else "NOT all supported by tflite-runtime 2.14"
            lines.append(f"{key} ops: {ops} ({ok})")
    c = report["artifacts"].get("c")
    if c and "array_length" in c:
        lines.append(f"C array: {c['array_length']} bytes, estimated TFLite Micro arena {c['arena']['estimated_arena_bytes']} B")
    pb = report["artifacts"].get("pb")
    if pb and pb.get("max_abs_diff_vs_keras") is not None:
        lines.append(f"frozen_graph.pb: reloads with TensorFlow, max |diff| vs Keras {pb['max_abs_diff_vs_keras']:.1e}")
    int8 = report["artifacts"].get("int8") or {}
    if int8.get("per_speaker"):
        changes = sorted(int8["per_speaker"].items(), key=lambda kv: kv[1]["change_points"])
        lines.append(f"int8 per speaker ({len(changes)} in the {split['split']} split), largest changes: "
                     + ", ".join(f"{g} {c['keras'] * POINTS:.1f}% -> {c['accuracy'] * POINTS:.1f}% "
                                 f"({c['change_points']:+.2f})" for g, c in changes[:3]))
    stream = report.get("streaming") or {}
    if stream.get("written"):
        for key, art in stream.get("models", {}).items():
            if "file" not in art:
                lines.append(f"streaming {key}: none ({art.get('reason', 'not converted')})")
                continue
            diff = (f"{art['max_step_diff_vs_window']} quantization steps" if "max_step_diff_vs_window" in art
                    else f"max |diff| {art['max_abs_diff_vs_window']:.1e}")
            lines.append(f"streaming {key}: {art['file']} ({_size(art['size_bytes'])}, {stream['step_frames']} frames "
                         f"per step, {len(stream['states'])} states) vs the window model over "
                         f"{art['windows_compared']} windows: {diff}" + ("" if art.get("written") else " (not kept)"))
    elif stream.get("reason"):
        lines.append(f"streaming: none ({stream['reason']})")
    guard = report.get("guard")
    if guard and guard.get("checked"):
        merged = "; _silence_ and _unknown_ as one class" if guard.get("silence_and_unknown_as_one") else ""
        lines.append(f"int8 guard (max drop {guard['max_accuracy_drop']:g} points{merged}): "
                     + ("passed" if guard["passed"] else "FAILED: " + "; ".join(guard["failures"])))
    return "\n".join(lines)
