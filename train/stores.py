"""Open feature stores, cached per run: opening parses the item table, so a run opens each store once.

A run (``train fit``, ``compare``, ``cross``, ``mtl-aug``: see :func:`train.experiment.locked_run`)
owns a :class:`StoreCache` through :func:`run_stores`; readers find it with
:func:`current_stores`. The run closes its own stores when it ends and never touches another
run's, so two runs in one process (nested, or in two threads) do not close each other's stores.

The current cache is a context variable: each thread has its own, and the loaders' local read
pool runs its tasks in the submitting thread's context. Dask tasks get the cache as an argument;
sent to another process, it arrives as that process's own :data:`process cache
<process_stores>` (a worker keeps its open stores between tasks and runs; the content-hash
token makes it reopen a store rewritten at the same path). Code outside any run uses the
process cache too.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import threading
from typing import Any, Iterator


def store_token(store) -> str | None:
    """What identifies a store's contents (its content hash), so caches notice a rewritten store."""
    return store.metadata.get("content_hash") or store.metadata.get("plan_fingerprint")


class StoreCache:
    """Open :class:`~featstore.store.FeatureStore` objects keyed by (URL, storage options)."""

    def __init__(self) -> None:
        self._stores: dict[tuple[str, str], tuple[str | None, Any]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, storage_options: dict[str, Any] | None = None, token: str | None = None):
        """The open store at ``url``; with ``token`` (see :func:`store_token`) a cached store
        whose token differs (the path was rewritten since) is closed and reopened."""
        from mirage.featstore.store import open_store

        key = (str(url), json.dumps(storage_options or {}, sort_keys=True, default=str))
        with self._lock:
            cached = self._stores.get(key)
            if cached is not None and (token is None or cached[0] == token):
                return cached[1]
            if cached is not None:
                cached[1].close()
            store = open_store(url, storage_options=storage_options)
            self._stores[key] = (store_token(store), store)
            return store

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for _, store in stores:
            store.close()

    def __len__(self) -> int:
        return len(self._stores)

    def __reduce__(self):  # another process (a Dask worker) uses its own process cache
        return (process_stores, ())


_PROCESS = StoreCache()
_CURRENT: contextvars.ContextVar[StoreCache | None] = contextvars.ContextVar("mirage_run_stores", default=None)


def process_stores() -> StoreCache:
    """The cache of code outside any run (Dask worker processes, library calls): never closed by a run."""
    return _PROCESS


def current_stores() -> StoreCache:
    """The running run's cache in this thread/context, else the process cache."""
    cache = _CURRENT.get()
    return _PROCESS if cache is None else cache  # not `or`: an empty cache has len 0


@contextlib.contextmanager
def run_stores() -> Iterator[StoreCache]:
    """A fresh cache for one run (so a store rewritten since an earlier run is reread), made
    current for the block and closed after it; the enclosing cache, if any, is current again."""
    cache = StoreCache()
    reset = _CURRENT.set(cache)
    try:
        yield cache
    finally:
        _CURRENT.reset(reset)
        cache.close()
