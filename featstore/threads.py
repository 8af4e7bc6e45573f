"""Torch intra-op thread pinning: the one context manager for it (extraction, fits, predictions)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def fixed_threads(n: int | None, *, blas: bool = False) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads (None or 0: leave as is), restoring the old count.

    Float reductions may sum in a different order with another thread count, so byte-exact
    output needs a fixed count; restoring it keeps one call from changing the next one's.
    ``blas=True`` also fixes numpy's BLAS (OpenBLAS/MKL) threads: a Dask worker starts with
    ``OPENBLAS_NUM_THREADS=1``, so without it a generator fitted in a worker differs from the
    same fit in-process. It costs ~2 ms per call, so it is for whole fits, not per batch.
    """
    if not n:
        yield
        return
    if blas:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(n), user_api="blas"), fixed_threads(n):
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
