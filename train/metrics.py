"""SER metrics from a confusion matrix, computed by scikit-learn: UAR (the headline), WA, macro-F1; plots.

Semantics (unchanged from the project's earlier hand-written formulas, which the tests keep
as the reference):

* UAR = mean recall over the classes **present in the truth** (``balanced_accuracy_score``).
  A class absent from a test fold's truth does not count, even if it is predicted:
  sklearn drops its undefined recall with a "y_pred contains classes not in y_true" warning,
  which is silenced here because that is the intended semantics (recall over all K classes,
  ``recall_score(labels=range(K))``, would count it as 0 and is *not* what is reported);
* WA ("weighted accuracy" in the SER literature) = plain accuracy (``accuracy_score``);
* macro-F1 = mean F1 over the classes present in the truth **or** the predictions
  (``f1_score(average="macro")``, ``zero_division=0``); a class in neither does not count.

An empty confusion matrix gives NaN for all three (written as ``null`` in metrics.json).
Rows of a confusion matrix are true classes, columns predicted classes.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Sequence

import numpy as np

from mirage.train.outputs import save_figure

log = logging.getLogger(__name__)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) int64 counts, rows true, columns predicted."""
    from sklearn.metrics import confusion_matrix

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return confusion_matrix(y_true, y_pred, labels=np.arange(n_classes)).astype(np.int64, copy=False)


def _pairs(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (y_true, y_pred) pairs a confusion matrix counts, for sklearn's label-based metrics."""
    cm = np.asarray(cm, dtype=np.int64)
    k = cm.shape[0]
    counts = cm.ravel()
    cells = np.arange(k * k)
    return np.repeat(cells // k, counts), np.repeat(cells % k, counts)


def _scores(cm: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    y_true, y_pred = _pairs(cm)
    if len(y_true) == 0:
        nan = float("nan")
        return {"uar": nan, "wa": nan, "macro_f1": nan}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        uar_ = float(balanced_accuracy_score(y_true, y_pred))
    return {"uar": uar_, "wa": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def uar(cm: np.ndarray) -> float:
    return _scores(cm)["uar"]


def weighted_accuracy(cm: np.ndarray) -> float:
    return _scores(cm)["wa"]


def macro_f1(cm: np.ndarray) -> float:
    return _scores(cm)["macro_f1"]


def summary(cm: np.ndarray) -> dict[str, float]:
    return _scores(cm)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, labels: Sequence[str], path: str, *, title: str = "",
                   storage_options: dict[str, Any] | None = None) -> None:
    """Row-normalised confusion matrix (counts annotated) as a PNG at ``path`` (a local path or URL)."""
    plt = _pyplot()

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
    save_figure(fig, path, storage_options)


def plot_bars(names: Sequence[str], means: Sequence[float], stds: Sequence[float], path: str, *,
              chance: float | None = None, ylabel: str = "UAR", points: Sequence[float] | None = None,
              points_label: str = "", annotations: Sequence[str] | None = None,
              storage_options: dict[str, Any] | None = None) -> None:
    """Bar chart with error bars (e.g. UAR per augmentation method) as a PNG.

    ``points`` draws one marker per bar (e.g. the pooled UAR beside the fold mean);
    ``annotations`` writes a short text above each bar (e.g. Δ vs none, its CI and p)."""
    plt = _pyplot()

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
    save_figure(fig, path, storage_options)
