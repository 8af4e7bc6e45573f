"""Feature stores: Zarr v3 (default) or HDF5, on local disk or any fsspec URL."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from mirage.featstore.errors import StoreIncompleteError, StoreNotFoundError
from mirage.featstore.store.base import SCHEMA_VERSION, FeatureStore, verify_store
from mirage.featstore.store.location import Location, ObjectStoreError, storage_errors
from mirage.featstore.store.writer import FORMATS, StoreWriter, write_store

__all__ = ["FeatureStore", "StoreWriter", "open_store", "opened", "write_store", "verify", "verify_store", "detect_format",
           "FORMATS", "SCHEMA_VERSION", "ObjectStoreError"]


def detect_format(url: str, storage_options: dict[str, Any] | None = None) -> str | None:
    """"zarr", "hdf5", "partial" (an unfinished extraction) or None (nothing there)."""
    with storage_errors(url, storage_options):
        return _detect_format(url, storage_options)


def _detect_format(url: str, storage_options: dict[str, Any] | None) -> str | None:
    from mirage.featstore.store.zarr_store import ZarrBackend

    loc = Location(url, storage_options)
    loc.check_bucket()
    if loc.fs.isfile(loc.path):
        return "hdf5"
    if ZarrBackend.is_store(loc):
        return "zarr"
    if ZarrBackend.is_store(Location(loc.url + ".partial.zarr", storage_options)):
        return "partial"
    return None


def open_store(url: str, *, storage_options: dict[str, Any] | None = None) -> FeatureStore:
    """Open a finished store for reading."""
    with storage_errors(url, storage_options):
        return _open_store(url, storage_options)


@contextlib.contextmanager
def opened(store, storage_options: dict[str, Any] | None = None) -> Iterator[FeatureStore]:
    """``store`` as an open :class:`FeatureStore`: an open one as is (the caller keeps it),
    a URL or path opened for the block and closed after it (the one home of "open the store
    if given a URL")."""
    if isinstance(store, FeatureStore):
        yield store
        return
    fs = open_store(str(store), storage_options=storage_options)
    try:
        yield fs
    finally:
        fs.close()


def _open_store(url: str, storage_options: dict[str, Any] | None) -> FeatureStore:
    from mirage.featstore.store.hdf5_store import Hdf5Backend
    from mirage.featstore.store.zarr_store import ZarrBackend

    loc = Location(url, storage_options)
    kind = detect_format(loc.url, storage_options)
    if kind is None:
        from mirage.featstore.kinds import describe, detect_kind

        found = detect_kind(loc.url, storage_options)  # a generator, shard set or run folder: say so
        if found is not None:
            raise StoreNotFoundError(f"{loc.url}: expected a feature store, got {describe(found)}; pass a store written "
                                     "by `featstore extract`")
        raise StoreNotFoundError(f"{loc.url}: expected a feature store, found nothing; run `featstore extract --store {loc.url}` first")
    if kind == "partial":
        raise StoreIncompleteError(f"{loc.url}: the extraction into this HDF5 store did not finish; rerun the same `featstore extract` command to resume")
    backend = Hdf5Backend(loc.url, storage_options) if kind == "hdf5" else ZarrBackend(loc.url, storage_options)
    if not backend.attrs().get("complete"):
        backend.close()
        raise StoreIncompleteError(f"{loc.url}: the extraction did not finish; rerun the same `featstore extract` command to resume")
    return FeatureStore(backend, loc.url, storage_options)


def verify(url: str, *, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check a store. Returns ``{"path", "state", "problems", ...}``; ``state`` is "complete"
    or "incomplete" (an interrupted extraction that a rerun will finish). An incomplete store
    is healthy when its written units are consistent."""
    with storage_errors(url, storage_options):
        return _verify(url, storage_options)


def _verify(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    import json

    import numpy as np

    from mirage.featstore.store.base import STATUS_PENDING
    from mirage.featstore.store.zarr_store import META_NAME, ZarrBackend

    loc = Location(url, storage_options)
    kind = detect_format(loc.url, storage_options)
    if kind is None:
        raise StoreNotFoundError(f"{loc.url}: expected a feature store, found nothing")
    staging = loc.url + ".partial.zarr" if kind == "partial" else loc.url
    if kind in ("partial", "zarr"):
        meta = json.loads(Location(staging, storage_options).read_bytes(META_NAME))
        if not meta.get("complete"):
            backend = ZarrBackend(staging, storage_options)
            n = backend.shape("status")[0]
            problems = [f"array {name}: expected {n} rows, got {backend.shape(name)[0]}"
                        for name in backend.array_names() if backend.shape(name)[0] != n]
            status = backend.read("status", 0, n)
            done = int(np.sum(status != STATUS_PENDING))
            return {"path": loc.url, "state": "incomplete", "rows_written": done, "rows_total": int(n),
                    "problems": problems}
    with open_store(loc.url, storage_options=storage_options) as store:
        return {"path": loc.url, "state": "complete", "n_items": store.n_items, "n_skipped": len(store.skipped),
                "content_hash": store.metadata.get("content_hash"), "problems": verify_store(store)}
