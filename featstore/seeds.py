"""Seeds: the one home for deriving named random streams from one seed (augment and train).

No global RNG is touched, so the same seed gives the same bytes regardless of what else
ran in the process, in which order folds or methods run, or on which Dask worker.

Two widths, each keeping the derivation its outputs were written with (so seeds, shards and
UARs recorded before stay byte-identical):

* ``bits=63`` (augment's streams: torch and numpy generators): NumPy ``SeedSequence`` over
  the seed's and path's 32-bit words; path items are ints or strings;
* ``bits=31`` (train's folds, methods, epochs; fits into any 32-bit ``random_state``):
  SHA-256 over the seed and ``str()`` of each name.
"""

from __future__ import annotations

import hashlib

import numpy as np


def check_seed(seed) -> int:
    """A seed must be an integer in [0, 2**63) (it is stored as int64 in manifests)."""
    from mirage.featstore.errors import ConfigError

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63:
        raise ConfigError(f"--seed: expected an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def _seed63(seed: int, path) -> int:
    words = [int(seed) & 0xFFFFFFFF, int(seed) >> 32]
    for p in path:
        if isinstance(p, str):
            words.extend(p.encode())
        else:
            words.extend([int(p) & 0xFFFFFFFF, int(p) >> 32])
    state = np.random.SeedSequence(words).generate_state(2, dtype=np.uint32).astype(np.uint64)
    return int(state @ np.array([1, 1 << 32], dtype=np.uint64)) & ((1 << 63) - 1)


def _seed31(seed: int, path) -> int:
    h = hashlib.sha256(str(int(seed)).encode())
    for name in path:
        h.update(b"\0" + str(name).encode())
    return int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF


def derive_seed(seed: int, *path: object, bits: int = 63) -> int:
    """A ``bits``-bit seed (63 or 31, see the module docstring) for the stream named by
    ``path`` under ``seed``; stable across runs and processes."""
    if bits == 63:
        return _seed63(seed, path)
    if bits == 31:
        return _seed31(seed, path)
    raise ValueError(f"derive_seed: expected bits 63 or 31, got {bits}")


def torch_generator(seed: int, *path: int | str):
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(seed, *path))
    return g


def numpy_rng(seed: int, *path: int | str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, *path))
