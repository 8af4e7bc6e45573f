"""Standard augmentation baselines, applied to a fold's standardised real training rows.

Every method makes exactly ``n_syn`` rows (``--n``: ``4x`` = four per real training item),
keeping the training label prior (each class grows by the same factor):

* ``smote`` — imbalanced-learn's SMOTE, per-class targets ``count_c * (1 + n_syn / n)``
  (largest-remainder rounding so the total is exact); hard labels.
* ``mixup`` — classic mix-up: x = λ x_i + (1 − λ) x_j, y = λ y_i + (1 − λ) y_j with λ ~ Beta(α, α)
  (α = 0.4) folded to λ >= 0.5 (so x stays nearer its anchor x_i), anchors i cycling through
  the training items, partners j uniform over all training items (``pairs="any"``, the
  default; soft labels) or over the anchor's class (``pairs="same"``; the label stays hard).
  On EmoDB logmel + linear LOSO, any-class pairs cost ~6 UAR points, same-class ~0.5.
* ``noise`` — x_i + σ · std · ε, ε ~ N(0, I), σ = ``noise_std_fraction`` of each feature's std;
  anchors as for mix-up; hard labels.
"""

from __future__ import annotations

import logging

import numpy as np

from mirage.featstore.errors import ConfigError, MissingDependencyError
from mirage.featstore.apportion import apportion

log = logging.getLogger(__name__)

BASELINES = ("smote", "mixup", "noise")


def anchor_indices(n_real: int, n_syn: int, rng: np.random.Generator) -> np.ndarray:
    """Each real row ``n_syn // n_real`` times, plus a random subset for the remainder."""
    full = np.tile(np.arange(n_real), n_syn // n_real)
    rest = rng.choice(n_real, size=n_syn % n_real, replace=False)
    return np.concatenate([full, np.sort(rest)]).astype(np.int64)


def smote(x: np.ndarray, y: np.ndarray, n_syn: int, *, n_classes: int, seed: int, k_neighbors: int = 5):
    try:
        from imblearn.over_sampling import SMOTE
    except ImportError:  # pragma: no cover - a core dependency
        raise MissingDependencyError("smote: expected imbalanced-learn, got none; pip install imbalanced-learn") from None
    counts = np.bincount(y, minlength=n_classes)
    usable = counts >= 2
    extra = apportion(np.where(usable, counts, 0), n_syn)
    if (~usable & (counts > 0)).any():
        log.warning("smote: classes with a single training item are not oversampled: %s", np.flatnonzero(~usable & (counts > 0)).tolist())
    strategy = {int(c): int(counts[c] + extra[c]) for c in np.flatnonzero(extra > 0)}
    if not strategy:
        return np.zeros((0, x.shape[1]), np.float32), np.zeros(0, np.int64)
    k = int(min(k_neighbors, min(counts[c] for c in strategy) - 1))
    sampler = SMOTE(sampling_strategy=strategy, k_neighbors=k, random_state=seed)
    xr, yr = sampler.fit_resample(x, y)
    return np.asarray(xr[len(x):], np.float32), np.asarray(yr[len(x):], np.int64)


def mixup(x: np.ndarray, y: np.ndarray, n_syn: int, *, n_classes: int, seed: int, alpha: float = 0.4,
          pairs: str = "any"):
    if pairs not in ("any", "same"):
        raise ConfigError(f"mixup pairs: expected 'any' or 'same', got {pairs!r}")
    rng = np.random.default_rng(seed)
    i = anchor_indices(len(x), n_syn, rng)
    if pairs == "any":
        j = rng.integers(0, len(x), size=n_syn)
    else:  # a partner of the anchor's class
        j = np.empty(n_syn, dtype=np.int64)
        for c in np.unique(y[i]):
            pool, need = np.flatnonzero(y == c), np.flatnonzero(y[i] == c)
            j[need] = pool[rng.integers(0, len(pool), size=len(need))]
    lam = rng.beta(alpha, alpha, size=n_syn)
    lam = np.maximum(lam, 1.0 - lam).astype(np.float32)
    xs = lam[:, None] * x[i] + (1.0 - lam[:, None]) * x[j]
    onehot = np.eye(n_classes, dtype=np.float32)
    ys = lam[:, None] * onehot[y[i]] + (1.0 - lam[:, None]) * onehot[y[j]]
    return xs.astype(np.float32), ys.astype(np.float32)


def noise(x: np.ndarray, y: np.ndarray, n_syn: int, *, n_classes: int, seed: int, noise_std_fraction: float = 0.1):
    rng = np.random.default_rng(seed)
    i = anchor_indices(len(x), n_syn, rng)
    std = x.std(axis=0).astype(np.float32)
    eps = rng.standard_normal((n_syn, x.shape[1]), dtype=np.float32)
    return (x[i] + noise_std_fraction * std * eps).astype(np.float32), y[i].astype(np.int64)


def augment_baseline(method: str, x: np.ndarray, y: np.ndarray, n_syn: int, *, n_classes: int, seed: int, **options):
    """``(x_syn, y_syn)`` for one baseline; y_syn is int labels, or (n, K) soft labels for mix-up."""
    fn = {"smote": smote, "mixup": mixup, "noise": noise}.get(method)
    if fn is None:
        raise ConfigError(f"baseline: expected one of {', '.join(BASELINES)}, got {method!r}")
    if n_syn <= 0 or len(x) == 0:
        return np.zeros((0, x.shape[1]), np.float32), np.zeros(0, np.int64)
    return fn(x, y, n_syn, n_classes=n_classes, seed=seed, **options)
