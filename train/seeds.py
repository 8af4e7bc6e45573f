"""train's seeds, derived from names (fold, method, epoch ...), so a fold's or a method's
randomness never depends on the order in which work runs or on which Dask worker runs it.
The derivation lives in :mod:`mirage.featstore.seeds` (its 31-bit width, train's since the start)."""

from __future__ import annotations

from mirage.featstore.seeds import derive_seed as _derive_seed


def derive_seed(seed: int, *names: object) -> int:
    """A 31-bit seed from ``seed`` and any names; stable across runs and processes."""
    return _derive_seed(seed, *names, bits=31)
