"""Dask clients: a local cluster (``workers=N``), an existing scheduler, or none (in-process)."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from featstore.errors import ConfigError, MirageError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(*, workers: int = 0, scheduler: str | None = None) -> Iterator:
    """Yield a ``distributed.Client`` or None when neither workers nor scheduler is asked for."""
    if not workers and not scheduler:
        yield None
        return
    if workers and workers < 0:
        raise ConfigError(f"--workers: expected a positive integer, got {workers}")
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            raise MirageError(f"--scheduler: cannot reach a Dask scheduler at {scheduler} ({exc}); start `dask scheduler` there or fix the address") from None
        try:
            yield client
        finally:
            client.close()
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        yield client
