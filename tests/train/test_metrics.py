from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from mirage.train import metrics


def _known():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=300)
    y_true[y_true == 4] = 3  # class 4 never true...
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, size=300))  # ...but sometimes predicted
    return y_true, y_pred


@pytest.mark.filterwarnings("ignore:y_pred contains classes")
def test_metrics_match_sklearn():
    y_true, y_pred = _known()
    cm = metrics.confusion(y_true, y_pred, 5)
    assert np.array_equal(cm, confusion_matrix(y_true, y_pred, labels=range(5)))
    present = sorted(set(y_true.tolist()))
    assert np.isclose(metrics.uar(cm), recall_score(y_true, y_pred, labels=present, average="macro"))
    assert np.isclose(metrics.uar(cm), balanced_accuracy_score(y_true, y_pred))
    assert np.isclose(metrics.weighted_accuracy(cm), accuracy_score(y_true, y_pred))
    assert np.isclose(metrics.macro_f1(cm), f1_score(y_true, y_pred, average="macro"))


def test_hand_made_confusion():
    cm = np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]])  # class 2 absent from truth and predictions
    assert np.isclose(metrics.uar(cm), (0.8 + 0.5) / 2)
    assert np.isclose(metrics.weighted_accuracy(cm), 9 / 12)
    f1_a = 2 * 8 / (2 * 8 + 1 + 2)
    f1_b = 2 * 1 / (2 * 1 + 2 + 1)
    assert np.isclose(metrics.macro_f1(cm), (f1_a + f1_b) / 2)


def test_plots_write_pngs(tmp_path):
    metrics.plot_confusion(np.array([[3, 1], [0, 4]]), ["a", "b"], str(tmp_path / "c.png"), title="t")
    metrics.plot_bars(["none", "x"], [0.5, 0.6], [0.01, 0.02], str(tmp_path / "b.png"), chance=0.25)
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "b.png").stat().st_size > 1000


def _old_formulas(cm: np.ndarray) -> tuple[float, float, float]:
    """The project's earlier hand-written UAR / WA / macro-F1 (the documented semantics)."""
    support, tp = cm.sum(axis=1), np.diag(cm).astype(np.float64)
    uar = float(np.mean(tp[support > 0] / support[support > 0]))
    wa = float(np.trace(cm) / cm.sum())
    denom = 2 * tp + (cm.sum(axis=0) - tp) + (cm.sum(axis=1) - tp)
    return uar, wa, float(np.mean(2 * tp[denom > 0] / denom[denom > 0]))


@pytest.mark.parametrize("cm", [
    np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]]),
    np.array([[8, 2, 0], [1, 1, 0], [0, 0, 0]]),  # class 2 absent from truth and predictions
    np.array([[4, 0, 1], [1, 3, 2], [0, 0, 0]]),  # class 2 absent from the fold's truth but predicted
    np.array([[0, 3], [0, 2]]),                     # class 0 never predicted
    np.array([[7]]),
])
def test_sklearn_metrics_keep_the_old_semantics(cm, recwarn):
    assert metrics.summary(cm) == pytest.approx(dict(zip(("uar", "wa", "macro_f1"), _old_formulas(cm))), abs=1e-12)
    assert not [w for w in recwarn if "y_pred contains classes" in str(w.message)]  # intended semantics: no warning


def test_absent_class_is_not_counted_as_zero_recall():
    cm = np.array([[4, 0, 1], [1, 3, 2], [0, 0, 0]])
    y_true, y_pred = np.repeat([0, 0, 1, 1, 1], [4, 1, 1, 3, 2]), np.array([0, 0, 0, 0, 2, 0, 1, 1, 1, 2, 2])
    assert np.array_equal(metrics.confusion(y_true, y_pred, 3), cm)
    assert metrics.uar(cm) == pytest.approx((4 / 5 + 3 / 6) / 2)
    assert metrics.uar(cm) != pytest.approx(recall_score(y_true, y_pred, labels=[0, 1, 2], average="macro", zero_division=0))


def test_empty_confusion_gives_nan():
    s = metrics.summary(np.zeros((3, 3), dtype=np.int64))
    assert all(np.isnan(v) for v in s.values())
    assert metrics.confusion(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 3).shape == (3, 3)
