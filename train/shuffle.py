"""The shuffle buffer: whole blocks in, uniformly drawn rows out.

The buffer holds up to ``capacity_blocks`` blocks (each a tuple of row-aligned arrays,
e.g. features, labels, weights). Each batch draws its rows without replacement from all
rows held — how many from each block follows a multivariate hypergeometric draw, which
rows within a block follows a per-block permutation — and gathers them with one
``np.take`` per block straight into the batch arrays, so every row is copied once.
Within a batch, rows are grouped by block; which rows form a batch is uniform. A block's
first array may also be row views over memory-mapped chunk files (anything with ``shape``,
``dtype``, ``len`` and ``take(idx, out)``, e.g. ``featstore.store.mapped.MappedRows``): its
rows are then gathered straight from the page cache.
"""

from __future__ import annotations

import numpy as np


class ShuffleBuffer:
    def __init__(self, *, batch_size: int, capacity_blocks: int, rng: np.random.Generator):
        if batch_size < 1 or capacity_blocks < 1:
            raise ValueError(f"expected batch_size >= 1 and capacity_blocks >= 1, got {batch_size}, {capacity_blocks}")
        self.batch_size = int(batch_size)
        self.capacity_blocks = int(capacity_blocks)
        self.rng = rng
        self._blocks: list[tuple[np.ndarray, ...]] = []
        self._perms: list[np.ndarray] = []
        self._taken: list[int] = []

    @property
    def n_rows(self) -> int:
        return int(sum(len(p) - t for p, t in zip(self._perms, self._taken)))

    @property
    def full(self) -> bool:
        return len(self._blocks) >= self.capacity_blocks

    def add(self, arrays: tuple[np.ndarray, ...]) -> None:
        n = len(arrays[0])
        if any(len(a) != n for a in arrays):
            raise ValueError("block arrays must have the same number of rows")
        if n == 0:
            return
        self._blocks.append(arrays)
        self._perms.append(self.rng.permutation(n))
        self._taken.append(0)

    def take(self, n: int) -> tuple[np.ndarray, ...]:
        """``n`` rows (fewer if fewer are held) drawn uniformly without replacement."""
        remaining = np.array([len(p) - t for p, t in zip(self._perms, self._taken)], dtype=np.int64)
        n = int(min(n, remaining.sum()))
        counts = self.rng.multivariate_hypergeometric(remaining, n) if len(remaining) > 1 else np.array([n])
        first = self._blocks[0]
        out = tuple(np.empty((n, *a.shape[1:]), dtype=a.dtype) for a in first)
        pos = 0
        for i, c in enumerate(counts.tolist()):
            if c == 0:
                continue
            idx = np.sort(self._perms[i][self._taken[i]: self._taken[i] + c])  # ascending: cache-friendly gather
            for src, dst in zip(self._blocks[i], out):
                if isinstance(src, np.ndarray):
                    np.take(src, idx, axis=0, out=dst[pos: pos + c], mode="clip")  # "raise" would buffer
                else:  # rows over memory-mapped chunk files (featstore.store.mapped.MappedRows)
                    src.take(idx, dst[pos: pos + c], ascending=True)
            self._taken[i] += c
            pos += c
        keep = [i for i in range(len(self._blocks)) if self._taken[i] < len(self._perms[i])]
        if len(keep) != len(self._blocks):
            self._blocks = [self._blocks[i] for i in keep]
            self._perms = [self._perms[i] for i in keep]
            self._taken = [self._taken[i] for i in keep]
        return out

    def clear(self) -> None:
        self._blocks, self._perms, self._taken = [], [], []

    def batches(self, *, final: bool, drop_last: bool = False):
        """Yield full batches while the buffer holds ``capacity_blocks`` blocks; with ``final``,
        drain it (the last batch may be short unless ``drop_last``)."""
        if not final:
            while self.full and self.n_rows >= self.batch_size:
                yield self.take(self.batch_size)
            return
        while self.n_rows:
            if self.n_rows < self.batch_size and drop_last:
                self.clear()
                return
            yield self.take(self.batch_size)
