"""Largest-remainder rounding: the one home for splitting an integer total by shares."""

from __future__ import annotations

import numpy as np


def largest_remainder(total: int, shares) -> np.ndarray:
    """Integer counts summing to ``total`` closest to ``total * shares`` (shares summing to 1):
    floors first, the rest one each to the largest remainders, ties to the lower index."""
    raw = int(total) * np.asarray(shares, dtype=np.float64)
    counts = np.floor(raw).astype(np.int64)
    rest = int(total) - int(counts.sum())
    if rest > 0:
        order = np.lexsort((np.arange(len(counts)), -(raw - counts)))
        counts[order[:rest]] += 1
    return counts


def apportion(weights, total: int) -> np.ndarray:
    """``total`` split proportionally to non-negative ``weights`` (all zeros: nothing)."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    return largest_remainder(total, weights / weights.sum())
