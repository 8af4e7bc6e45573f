"""``calibrate``: per-class Gaussians with covariance borrowed from the nearest classes.

After Yang, Liu & Xu (ICLR 2021, "Free lunch for few-shot learning: distribution
calibration"): a class seen through few rows has a poorly estimated spread, and neighbouring
classes in the embedding space tend to share the shape of theirs. For each class c of the
fold's (standardised) training rows:

* mean μ_c = the class mean;
* covariance Σ'_c = (Σ_c + Σ_{j ∈ N_k(c)} Σ_j) / (k + 1) + α · I, where N_k(c) are the k
  classes whose means are nearest μ_c (Euclidean) and α inflates every direction (the ridge
  that also makes Σ'_c full rank).

Each Σ_j is kept as its centred rows (n_j × D, n_j ≈ 50 against D = 512), never as a D × D
matrix: a draw is μ_c + Σ_j sqrt(1 / ((k + 1)(n_j − 1))) A_jᵀ ε_j + sqrt(α) η with ε_j, η
standard normal, which has exactly the covariance above — low rank plus shrinkage, memory
O(n · D). Classes get rows in proportion to their training counts (largest remainder, the
prior kept, like the other baselines); hard labels; one seeded generator, so the same seed
gives the same rows. Uses the fold's training rows only.
"""

from __future__ import annotations

import numpy as np

from mirage.featstore.errors import ConfigError
from mirage.train.baselines import apportion


def nearest_classes(means: np.ndarray, present: np.ndarray, k: int) -> list[list[int]]:
    """Per class, the ``k`` other present classes with the nearest means (ties by index)."""
    d = np.linalg.norm(means[:, None, :] - means[None, :, :], axis=2)
    out = []
    for c in range(len(means)):
        others = [j for j in np.argsort(d[c], kind="stable").tolist() if j != c and present[j]]
        out.append(others[:k])
    return out


def calibrate(x: np.ndarray, y: np.ndarray, n_syn: int, *, n_classes: int, seed: int, k: int = 2,
              alpha: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``n_syn`` rows drawn from the calibrated class Gaussians of ``(x, y)``; (x_syn float32, y_syn int64)."""
    if int(k) < 0 or not float(alpha) >= 0.0:
        raise ConfigError(f"calibrate: expected k >= 0 and alpha >= 0, got k={k}, alpha={alpha}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    dim = x.shape[1]
    counts = np.bincount(y, minlength=n_classes)
    present = counts > 0
    means = np.zeros((n_classes, dim))
    centred: list[np.ndarray] = []
    for c in range(n_classes):
        rows = x[y == c]
        if len(rows):
            means[c] = rows.mean(axis=0)
        # a class of one row has no spread of its own; it borrows its neighbours' only
        centred.append((rows - means[c]) / np.sqrt(len(rows) - 1) if len(rows) > 1 else np.zeros((0, dim)))
    neighbours = nearest_classes(means, present, int(k))
    per_class = apportion(counts, int(n_syn))
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in np.flatnonzero(per_class > 0):
        m = int(per_class[c])
        donors = [c, *neighbours[c]]
        draw = np.repeat(means[c][None, :], m, axis=0)
        for j in donors:  # each donor's covariance with weight 1 / (k + 1)
            a = centred[j]
            if len(a):
                draw += rng.standard_normal((m, len(a))) @ a / np.sqrt(len(donors))
        if alpha > 0:
            draw += np.sqrt(alpha) * rng.standard_normal((m, dim))
        xs.append(draw)
        ys.append(np.full(m, c, dtype=np.int64))
    if not xs:
        return np.zeros((0, dim), np.float32), np.zeros(0, np.int64)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)
