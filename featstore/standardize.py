"""Per-feature z-scoring: the one standardiser of the project (generator space and classifiers)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mirage.featstore.errors import ConfigError

#: A feature dimension whose spread is below float32 resolution relative to its magnitude
#: (std <= 1e-6 · max(1, |mean|)) is treated as constant and keeps unit scale: dividing by its
#: rounding noise would blow that noise up to unit variance.
RELATIVE_SCALE_FLOOR = 1e-6


def floored_scale(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``std`` with (near-)constant dimensions set to 1 (see :data:`RELATIVE_SCALE_FLOOR`)."""
    floor = RELATIVE_SCALE_FLOOR * np.maximum(1.0, np.abs(mean))
    return np.where(std <= floor, 1.0, std)


@dataclass
class Standardizer:
    """``(x - mean) / scale`` per feature, with statistics of one set of training rows."""

    mean: np.ndarray    # (D,) float32
    scale: np.ndarray   # (D,) float32, > 0

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        """Mean and standard deviation of the rows of ``x`` (two-pass, in float64)."""
        x64 = np.asarray(x, dtype=np.float64)
        if x64.ndim != 2 or len(x64) < 1:
            raise ConfigError(f"expected at least one training row to standardise on, got shape {x64.shape}")
        mean = x64.mean(axis=0)
        return cls._from(mean, x64.std(axis=0))

    @classmethod
    def from_moments(cls, n: int, total: np.ndarray, total_sq: np.ndarray) -> "Standardizer":
        """From streamed sums (row count, Σx, Σx²), for rows that never sit in memory together."""
        if n < 1:
            raise ConfigError("expected at least one training row to standardise on, got none")
        mean = np.asarray(total, dtype=np.float64) / n
        var = np.maximum(np.asarray(total_sq, dtype=np.float64) / n - mean ** 2, 0.0)
        return cls._from(mean, np.sqrt(var))

    @classmethod
    def identity(cls, dim: int) -> "Standardizer":
        """No scaling (``--normalise none``)."""
        return cls(np.zeros(dim, np.float32), np.ones(dim, np.float32))

    @classmethod
    def _from(cls, mean: np.ndarray, std: np.ndarray) -> "Standardizer":
        return cls(mean.astype(np.float32), floored_scale(mean, std).astype(np.float32))

    @property
    def dim(self) -> int:
        return len(self.mean)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.scale).astype(np.float32, copy=False)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return (np.asarray(z, dtype=np.float32) * self.scale + self.mean).astype(np.float32, copy=False)

    def torch(self, x):
        import torch

        return (x - torch.from_numpy(self.mean)) / torch.from_numpy(self.scale)
