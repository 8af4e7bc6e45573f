"""Paired fold-wise statistics of one method against ``none`` (``train compare``).

Every method is run on the same folds with the same classifier seeds as ``none``, so the
per-fold UAR differences d_f = UAR_method(f) − UAR_none(f) are paired observations:

* ``delta_vs_none`` — the mean of d_f (= fold-mean UAR of the method − that of none);
* ``delta_pooled_vs_none`` — the difference of the pooled UARs (all folds' predictions together);
* ``p_value`` — the two-sided Wilcoxon signed-rank test of the d_f (``scipy.stats.wilcoxon``,
  zero differences dropped as in Wilcoxon's original method). It is ``None`` for ``none``
  itself and when every paired difference is zero (the test is undefined: nothing differs);
  ``p_value_note`` then says which. With few folds the smallest reachable p is large (with
  5 non-zero differences it is 0.0625), so "not significant" there says little;
* ``ci95`` — a percentile bootstrap 95% confidence interval of the mean d_f, resampling folds
  with replacement (``n_boot`` resamples, a numpy Generator seeded by ``seed``: the same seed
  gives the same interval). It treats folds as exchangeable; with few folds it is narrow
  and optimistic — read it beside the p-value;
* ``folds_won`` / ``folds_lost`` / ``folds_tied`` — folds with d_f > 0, < 0, = 0.

Fold UARs are compared as rounded in ``metrics.json`` (6 digits), so a method whose
predictions equal none's has every d_f exactly 0.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

N_BOOT = 10000
CI_LEVEL = 0.95


def bootstrap_ci(diffs: np.ndarray, *, seed: int, n_boot: int = N_BOOT, level: float = CI_LEVEL) -> list[float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (resampled with replacement)."""
    d = np.asarray(diffs, dtype=np.float64)
    if len(d) == 0:
        return [math.nan, math.nan]
    if np.all(d == d[0]):
        return [float(d[0]), float(d[0])]
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(int(n_boot), len(d)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return [float(lo), float(hi)]


def wilcoxon_p(diffs: np.ndarray) -> tuple[float | None, str | None]:
    """``(p, None)``, or ``(None, reason)`` when the test is undefined (no non-zero difference)."""
    from scipy.stats import wilcoxon

    d = np.asarray(diffs, dtype=np.float64)
    if len(d) == 0:
        return None, "no paired folds"
    if not np.any(d != 0):
        return None, "every paired fold difference is zero"
    p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return (p if math.isfinite(p) else None), (None if math.isfinite(p) else "the test returned no p-value")


def paired_vs_none(fold_uar: Mapping[str, float], none_fold_uar: Mapping[str, float], *, seed: int,
                   is_none: bool = False, n_boot: int = N_BOOT) -> dict[str, Any]:
    """Δ, Wilcoxon p, bootstrap CI and folds won/lost of one method against ``none`` (paired by fold name)."""
    names = [f for f in none_fold_uar if f in fold_uar]
    d = np.array([float(fold_uar[f]) - float(none_fold_uar[f]) for f in names], dtype=np.float64)
    d = np.round(d, 6)  # fold UARs carry 6 digits; float noise must not win or lose a fold
    if is_none:
        p, note = None, "none itself (the reference)"
    else:
        p, note = wilcoxon_p(d)
    out: dict[str, Any] = {
        "delta_vs_none": float(np.mean(d)) if len(d) else math.nan,
        "p_value": p,
        "ci95": bootstrap_ci(d, seed=seed, n_boot=n_boot),
        "folds_won": int(np.sum(d > 0)), "folds_lost": int(np.sum(d < 0)), "folds_tied": int(np.sum(d == 0)),
    }
    if note is not None:
        out["p_value_note"] = note
    return out
