"""Torch intra-op thread pinning: the one context manager for it (extraction, fits, predictions)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def fixed_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads (None or 0: leave as is), restoring the old count.

    Float reductions may sum in a different order with another thread count, so byte-exact
    output needs a fixed count; restoring it keeps one call from changing the next one's.
    """
    if not n:
        yield
        return
    import torch

    old = torch.get_num_threads()
    if old != int(n):
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)
