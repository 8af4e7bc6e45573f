"""Seeds derived from names, so a fold's or a method's randomness never depends on the
order in which work runs or on which Dask worker runs it."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *names: object) -> int:
    """A 31-bit seed from ``seed`` and any names (fold, method, epoch ...); stable across runs and processes."""
    h = hashlib.sha256(str(int(seed)).encode())
    for name in names:
        h.update(b"\0" + str(name).encode())
    return int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF
