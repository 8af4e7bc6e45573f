"""SER metrics from a confusion matrix: UAR (the headline), WA, macro-F1; plots.

Conventions (those of sklearn, which the tests check against):

* UAR = mean recall over the classes present in the truth (``balanced_accuracy_score``);
* WA ("weighted accuracy" in the SER literature) = plain accuracy;
* macro-F1 = mean F1 over the classes present in the truth or the predictions.

Rows of a confusion matrix are true classes, columns predicted classes.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows true, columns predicted."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def uar(cm: np.ndarray) -> float:
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def weighted_accuracy(cm: np.ndarray) -> float:
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def macro_f1(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(np.float64)
    denom = 2 * tp + (cm.sum(axis=0) - tp) + (cm.sum(axis=1) - tp)
    seen = denom > 0
    if not seen.any():
        return float("nan")
    return float(np.mean(2 * tp[seen] / denom[seen]))


def summary(cm: np.ndarray) -> dict[str, float]:
    return {"uar": uar(cm), "wa": weighted_accuracy(cm), "macro_f1": macro_f1(cm)}


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str, *, title: str = "") -> None:
    """Row-normalised confusion matrix (counts annotated) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    k = len(labels)
    norm = cm / np.maximum(1, cm.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * k, 1.5 + 0.6 * k), dpi=100)
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0.22, bottom=0.2, right=0.98, top=0.92)  # tight_layout costs ~1 s per figure
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def plot_bars(names: Sequence[str], means: Sequence[float], stds: Sequence[float], path: str, *,
              chance: float | None = None, ylabel: str = "UAR", points: Sequence[float] | None = None,
              points_label: str = "", annotations: Sequence[str] | None = None) -> None:
    """Bar chart with error bars (e.g. UAR per augmentation method) as a PNG.

    ``points`` draws one marker per bar (e.g. the pooled UAR beside the fold mean);
    ``annotations`` writes a short text above each bar (e.g. Δ vs none, its CI and p)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    notes = list(annotations or [])
    lines = max([n.count("\n") + 1 for n in notes if n] or [0])
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names) + (0.4 * len(names) if notes else 0), 3.6 + 0.3 * lines), dpi=100)
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4c78a8", label="fold-mean UAR ± std" if points else None)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(ylabel)
    vals = [m + s for m, s in zip(means, stds)] + list(points or [])
    lo = min([m - s for m, s in zip(means, stds)] + list(points or []) + ([chance] if chance is not None else []))
    top = min(1.0, max(vals) + 0.05)
    if points:
        ax.scatter(range(len(names)), points, color="#f58518", marker="D", s=22, zorder=3, label=points_label or None)
    if lines:
        top = max(vals) + 0.05 + 0.045 * lines
        for i, note in enumerate(notes):
            if note:
                ax.text(i, max(means[i] + stds[i], (points or means)[i]) + 0.01, note, ha="center", va="bottom", fontsize=6.5)
    ax.set_ylim(max(0.0, lo - 0.05), top)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    if chance is not None or points:
        ax.legend(loc="lower right", fontsize=7)
    fig.subplots_adjust(left=0.12, bottom=0.12, right=0.98, top=0.95)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
