"""The label plan of a generate run: which labels each shard slot holds."""

from __future__ import annotations

import numpy as np

from mirage.augment.sampling import CodeSpec
from mirage.augment.seeding import numpy_rng

#: Up to this many items the label plan is drawn whole, as earlier versions did (so their
#: runs resume byte-identically); above it, shard by shard in bounded memory.
WHOLE_PLAN_MAX = 1 << 24


class LabelPlan:
    """The labels of every slot: ``n`` labels in exact prior proportions, in a seeded random order.

    Up to :data:`WHOLE_PLAN_MAX` items the whole plan is one permutation (as in earlier
    versions). Above it, slot by slot in bounded memory: each slot's label counts are drawn
    without replacement from what is left of the exact counts (a multivariate
    hypergeometric draw, so the total still has exact proportions), then shuffled with the
    slot's own seed. Either way a slot's labels depend only on (seed, n, shard_size, prior).
    """

    def __init__(self, spec: CodeSpec, n: int, shard_size: int, *, balanced: bool, seed: int,
                 whole_max: int | None = None):
        from mirage.augment.sampling import exact_counts

        self.n, self.shard_size, self.seed = int(n), int(shard_size), int(seed)
        self.n_slots = -(-self.n // self.shard_size)
        self.streamed = self.n > (WHOLE_PLAN_MAX if whole_max is None else int(whole_max))
        self._whole = None if self.streamed else spec.label_plan(self.n, balanced=balanced, seed=seed)
        self._counts = exact_counts(self.n, spec.sampling_prior(balanced))

    def size(self, slot: int) -> int:
        return min(self.shard_size, self.n - slot * self.shard_size)

    def slots(self, skip=frozenset()):
        """Yield ``(slot, size, labels)`` in slot order (``labels`` None for slots in ``skip``)."""
        if not self.streamed:
            for slot in range(self.n_slots):
                size = self.size(slot)
                start = slot * self.shard_size
                yield slot, size, None if slot in skip else self._whole[start:start + size]
            return
        left = self._counts.copy()
        rng = numpy_rng(self.seed, "labels", "streamed")
        for slot in range(self.n_slots):
            size = self.size(slot)
            if slot == self.n_slots - 1:
                counts = left.copy()
            else:
                counts = _draw_counts(rng, left, size)
            left -= counts
            if slot in skip:
                yield slot, size, None
                continue
            labels = np.repeat(np.arange(len(counts)), counts)
            yield slot, size, labels[numpy_rng(self.seed, "labels", slot).permutation(size)]


def _draw_counts(rng: np.random.Generator, left: np.ndarray, size: int) -> np.ndarray:
    """``size`` labels drawn without replacement from ``left`` (per-label counts).

    numpy's exact draw takes totals below 1e9; above, a multinomial draw clipped to what is
    left (the shortfall going to the labels with the most left) keeps the totals exact."""
    total = int(left.sum())
    if total < 10**9:
        return rng.multivariate_hypergeometric(left, size, method="marginals")
    counts = np.minimum(rng.multinomial(size, left / total), left)
    short = size - int(counts.sum())
    for k in np.argsort(-(left - counts), kind="stable"):
        if short <= 0:
            break
        add = min(short, int(left[k] - counts[k]))
        counts[k] += add
        short -= add
    return counts
