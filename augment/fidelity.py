"""How real and how varied a set of generated rows is, beside the MI score.

* ``precision`` / ``recall`` (Kynkäänniemi et al. 2019) and ``density`` / ``coverage``
  (Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models"), from
  k-nearest-neighbour balls (k = 5) in the embedding space: a real row's ball reaches its
  k-th nearest other real row. precision = share of generated rows inside some real ball;
  recall = share of real rows inside some generated ball; density = mean number of real balls
  holding a generated row, over k (1 ≈ as dense as the real data; > 1 = crowding the modes);
  coverage = share of real balls holding at least one generated row.
* ``frechet`` — per class, ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)) with
  Ledoit-Wolf shrinkage covariances (512-d features and tens of rows per class make the sample
  covariance singular), averaged over the classes both sides hold; ``frechet_by_class`` per class.

Both sides are standardised with the real rows' statistics first (so the units are real
standard deviations and no feature dominates the distances), and sub-sampled (seeded) to the
same count n = min(len(real), len(generated), max_rows): recall and coverage grow with the
number of generated rows, so equal counts keep shards of different sizes comparable.
"""

from __future__ import annotations

import numpy as np

from mirage.featstore.standardize import floored_scale

K_NEIGHBOURS = 5
MAX_ROWS = 2000
_BLOCK = 1024  # rows per distance block: memory O(block x n)


def _standardise(real: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = real.mean(axis=0)
    std = floored_scale(mean, real.std(axis=0))
    return (real - mean) / std, (generated - mean) / std


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(np.square(a).sum(1)[:, None] + np.square(b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row of ``x`` to its k-th nearest other row of ``x``."""
    out = np.empty(len(x))
    for s in range(0, len(x), _BLOCK):
        d2 = _sq_dist(x[s:s + _BLOCK], x)
        d2[np.arange(len(d2)), np.arange(s, s + len(d2))] = np.inf
        out[s:s + len(d2)] = np.sqrt(np.partition(d2, k - 1, axis=1)[:, k - 1])
    return out


def prdc(real: np.ndarray, generated: np.ndarray, *, k: int = K_NEIGHBOURS) -> dict[str, float]:
    """Precision, recall, density and coverage of ``generated`` against ``real`` (rows already comparable)."""
    real = np.asarray(real, np.float64)
    generated = np.asarray(generated, np.float64)
    r_real, r_gen = kth_radius(real, k), kth_radius(generated, k)
    in_real_balls = np.zeros(len(generated))      # per generated row: real balls holding it
    real_covered = np.zeros(len(real), dtype=bool)
    real_recalled = np.zeros(len(real), dtype=bool)
    for s in range(0, len(generated), _BLOCK):
        d = np.sqrt(_sq_dist(generated[s:s + _BLOCK], real))        # (gen block, real)
        inside = d <= r_real[None, :]
        in_real_balls[s:s + len(d)] = inside.sum(axis=1)
        real_covered |= inside.any(axis=0)
        real_recalled |= (d <= r_gen[s:s + len(d), None]).any(axis=0)
    return {"precision": float((in_real_balls > 0).mean()), "recall": float(real_recalled.mean()),
            "density": float(in_real_balls.mean() / k), "coverage": float(real_covered.mean())}


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to rows ``a`` and ``b`` (Ledoit-Wolf covariances)."""
    from sklearn.covariance import LedoitWolf

    sa = LedoitWolf().fit(a).covariance_
    sb = LedoitWolf().fit(b).covariance_
    root = _sqrt_psd(sa)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root @ sb @ root), 0.0, None)).sum()  # tr((Sa Sb)^1/2)
    return float(np.square(a.mean(0) - b.mean(0)).sum() + np.trace(sa) + np.trace(sb) - 2.0 * cross)


def fidelity_scores(real: np.ndarray, real_labels: np.ndarray, generated: np.ndarray, generated_labels: np.ndarray, *,
                    rng: np.random.Generator, k: int = K_NEIGHBOURS, max_rows: int = MAX_ROWS) -> tuple[dict, str | None]:
    """``({precision, recall, density, coverage, frechet, frechet_by_class}, None)`` or ``({}, reason)``."""
    real = np.asarray(real, np.float64)
    generated = np.asarray(generated, np.float64)
    real_labels, generated_labels = np.asarray(real_labels).astype(str), np.asarray(generated_labels).astype(str)
    ok_r, ok_g = np.isfinite(real).all(1), np.isfinite(generated).all(1)
    real, real_labels, generated, generated_labels = real[ok_r], real_labels[ok_r], generated[ok_g], generated_labels[ok_g]
    if real.shape[1:] != generated.shape[1:]:
        return {}, f"feature widths differ (real {real.shape[1:]}, generated {generated.shape[1:]})"
    n = int(min(len(real), len(generated), max_rows))
    if n <= k:
        return {}, f"too few rows for k = {k} neighbours (real {len(real)}, generated {len(generated)})"
    ir = np.sort(rng.choice(len(real), n, replace=False))
    ig = np.sort(rng.choice(len(generated), n, replace=False))
    zr, zg = _standardise(real[ir], generated[ig])
    out: dict = prdc(zr, zg, k=k)
    by_class = {}
    lr, lg = real_labels[ir], generated_labels[ig]
    for lab in sorted(set(lr) & set(lg)):
        a, b = zr[lr == lab], zg[lg == lab]
        if len(a) >= 2 and len(b) >= 2:
            by_class[lab] = frechet_distance(a, b)
    out["frechet"] = float(np.mean(list(by_class.values()))) if by_class else None
    out["frechet_by_class"] = by_class
    return out, None
