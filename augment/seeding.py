"""augment's random streams and thread pinning, from their one home in featstore
(:mod:`mirage.featstore.seeds`: 63-bit streams; :mod:`mirage.featstore.threads`).

Every random step gets its own generator derived from one seed; no global RNG is touched.
"""

from __future__ import annotations

from mirage.featstore.seeds import check_seed, derive_seed, numpy_rng, torch_generator
from mirage.featstore.threads import fixed_threads

__all__ = ["check_seed", "derive_seed", "fixed_threads", "numpy_rng", "torch_generator"]
