"""Dask clients: a local cluster (``workers=N``), an existing scheduler, or none (in-process).

``scheduler`` is an address (``tcp://HOST:PORT``) or the JSON file that
``dask scheduler --scheduler-file`` writes. Failures of the cluster itself (a worker that
keeps dying, a scheduler that goes away) become a one-line :class:`ClusterError` that says
finished work is kept and a rerun resumes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import Counter
from typing import Callable, Iterator

from mirage.featstore.errors import ClusterError, ConfigError, MirageError  # noqa: F401  (ClusterError re-exported)

log = logging.getLogger(__name__)

#: How long to wait for the first worker of an existing cluster (``MIRAGE_DASK_WAIT_S``).
WAIT_FOR_WORKERS_S = 60.0
#: How long to try to reach the scheduler (``MIRAGE_DASK_CONNECT_S``).
CONNECT_S = 20.0

_CLUSTER_FAILURES = {"KilledWorker", "CancelledError", "FutureCancelledError", "FuturesCancelledError",
                     "CommClosedError", "StreamClosedError"}


def _connect(scheduler: str):
    from distributed import Client

    timeout = f"{float(os.environ.get('MIRAGE_DASK_CONNECT_S', CONNECT_S))}s"
    if scheduler.endswith(".json") and os.path.isfile(scheduler):
        return Client(scheduler_file=scheduler, timeout=timeout)
    if "://" not in scheduler and ":" not in scheduler:
        raise ConfigError(f"--scheduler: expected tcp://HOST:PORT or a scheduler JSON file, got {scheduler!r}")
    return Client(scheduler, timeout=timeout)


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
            client = _connect(scheduler)
        except OSError as exc:
            raise MirageError(f"--scheduler: cannot reach a Dask scheduler at {scheduler} ({exc}); start `dask scheduler` there or fix the address") from None
        try:
            wait_s = float(os.environ.get("MIRAGE_DASK_WAIT_S", WAIT_FOR_WORKERS_S))
            try:
                client.wait_for_workers(1, timeout=wait_s)
            except (TimeoutError, OSError):
                raise ClusterError(f"--scheduler: the Dask scheduler at {scheduler} has no workers after {wait_s:.0f} s; "
                                   f"expected at least one — start `dask worker {scheduler}`") from None
            log.info("connected to %s (%d workers)", scheduler, len(client.scheduler_info().get("workers", {})))
            yield client
        finally:
            client.close()
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.WARNING) as cluster, Client(cluster) as client:
        yield client


def host_processes(client) -> dict[str, int]:
    """Worker processes per host, so each task can size its torch thread pool to its share."""
    workers = client.scheduler_info().get("workers", {})
    return dict(Counter(str(w.get("host", "")) for w in workers.values()))


def worker_torch_threads(host_procs: dict[str, int] | None) -> int | None:
    """torch threads for a task on this Dask worker: ``MIRAGE_TORCH_THREADS`` if set, else the
    host's CPUs (cgroup-aware) divided by the worker processes on it and their threads;
    None outside a worker."""
    if os.environ.get("MIRAGE_TORCH_THREADS"):
        try:
            return max(1, int(os.environ["MIRAGE_TORCH_THREADS"]))
        except ValueError:
            raise ConfigError(f"MIRAGE_TORCH_THREADS: expected a positive integer, got {os.environ['MIRAGE_TORCH_THREADS']!r}") from None
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    from dask.system import CPU_COUNT
    from distributed.comm import get_address_host

    procs = max(1, (host_procs or {}).get(get_address_host(worker.address), 1))
    return max(1, CPU_COUNT // procs // max(1, worker.state.nthreads))


def watch_workers(client) -> Callable[[], None]:
    """A check to call while waiting on tasks: raises ClusterError once the cluster has had no
    worker for ``MIRAGE_DASK_WAIT_S`` seconds (the scheduler would wait for one forever)."""
    wait_s = float(os.environ.get("MIRAGE_DASK_WAIT_S", WAIT_FOR_WORKERS_S))
    since: list[float] = []

    def check() -> None:
        if client.nthreads():  # asks the scheduler now (scheduler_info() may be a cached copy)
            since.clear()
            return
        since.append(time.monotonic())
        if since[-1] - since[0] > wait_s:
            raise ClusterError(f"every Dask worker of {client.scheduler.address} is gone (none for {wait_s:.0f} s); "
                               "expected live workers — finished units are saved: start workers and rerun the same "
                               "command to resume")

    return check


def cluster_failure(exc: BaseException, what: str) -> ClusterError | None:
    """A :class:`ClusterError` when ``exc`` means the cluster (not the task's own code) failed."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if not names & _CLUSTER_FAILURES:
        return None
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    return ClusterError(
        f"the Dask cluster failed while running {what} ({type(exc).__name__}: {detail}); expected live workers — "
        "finished units are saved: rerun the same command to resume (check the workers' logs, e.g. for out-of-memory kills)")
