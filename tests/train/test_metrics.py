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
