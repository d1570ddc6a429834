"""Classification metrics (accuracy, per-class precision/recall/F1, confusion matrix) and the
confusion-matrix figure. Pure numpy (matplotlib only for the figure); no TensorFlow."""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np


def confusion_matrix(true: Sequence[int], pred: Sequence[int], num_labels: int) -> np.ndarray:
    """Counts[i, j] = clips of true label i predicted as j."""
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return cm


def classification_report(true: Sequence[int], pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix, as plain JSON types."""
    cm = confusion_matrix(true, pred, len(labels))
    total = int(cm.sum())
    per_class = {}
    for i, label in enumerate(labels):
        tp = int(cm[i, i])
        predicted = int(cm[:, i].sum())
        support = int(cm[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": round(precision, 5), "recall": round(recall, 5),
                            "f1": round(f1, 5), "support": support}
    return {
        "accuracy": round(float(np.trace(cm)) / total, 6) if total else 0.0,
        "count": total,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "labels": list(labels),
    }


WORST_GROUPS = 5  # speakers listed as the worst in reports


def group_report(true: Sequence[int], pred: Sequence[int], groups: Sequence[str | None],
                 seen_groups: Sequence[str] | None = None) -> dict | None:
    """Accuracy per speaker (group) of the clips that have one, the worst WORST_GROUPS of them, and
    how many of the speakers are unseen (not in ``seen_groups``, e.g. training's; None where the
    speakers training heard are not known). None when no clip has a group."""
    per: dict[str, list[int]] = {}
    for t, p, g in zip(true, pred, groups):
        if g is not None:
            per.setdefault(g, []).append(int(t == p))
    if not per:
        return None
    per_group = {g: {"accuracy": round(sum(v) / len(v), 5), "count": len(v)} for g, v in sorted(per.items())}
    worst = sorted(per_group.items(), key=lambda kv: (kv[1]["accuracy"], -kv[1]["count"], kv[0]))[:WORST_GROUPS]
    accs = [v["accuracy"] for v in per_group.values()]
    unseen = None if seen_groups is None else len(set(per_group) - set(seen_groups))
    return {"speakers": len(per_group), "unseen_speakers": unseen,
            "min_accuracy": min(accs), "median_accuracy": round(float(np.median(accs)), 5),
            "worst": [{"speaker": g, **v} for g, v in worst], "per_speaker": per_group}


def plot_confusion(cm: np.ndarray | list, labels: Sequence[str], title: str = "confusion matrix") -> bytes:
    """A PNG of the confusion matrix (rows: true label, columns: predicted), counts in each cell."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    size = max(4.0, 0.55 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size), dpi=100)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
