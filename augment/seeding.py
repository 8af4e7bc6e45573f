"""Explicit random streams: every random step gets its own generator derived from one seed.

No global RNG is touched, so the same seed gives the same bytes regardless of what else
ran in the process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np


def check_seed(seed) -> int:
    """A seed must be an integer in [0, 2**63) (it is stored as int64 in manifests)."""
    from mirage.featstore.errors import ConfigError

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63:
        raise ConfigError(f"--seed: expected an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def derive_seed(seed: int, *path: int | str) -> int:
    """A 63-bit seed for the stream named by ``path`` under ``seed`` (stable across runs)."""
    words = [int(seed) & 0xFFFFFFFF, int(seed) >> 32]
    for p in path:
        if isinstance(p, str):
            words.extend(p.encode())
        else:
            words.extend([int(p) & 0xFFFFFFFF, int(p) >> 32])
    return int(np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).astype(np.uint64) @ np.array([1, 1 << 32], dtype=np.uint64)) & ((1 << 63) - 1)


def torch_generator(seed: int, *path: int | str):
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(seed, *path))
    return g


def numpy_rng(seed: int, *path: int | str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *path))


@contextlib.contextmanager
def fixed_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads (None: leave as is), restoring the old count.

    Float reductions may sum in a different order with another thread count, so byte-exact
    output needs a fixed count.
    """
    import torch

    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
