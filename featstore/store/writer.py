"""The single store writer: create or resume, write whole chunk-aligned units, finalize.

A unit is a run of ``chunk_rows`` rows. Its feature values are written first, its skip
report next and its ``status`` entries last, so a process killed at any point leaves either
a finished unit or one that the next run redoes. HDF5 stores are staged as Zarr next to
the target (``<path>.partial.zarr``) and converted when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError, StoreCorruptError, StoreExistsError, StoreIncompleteError, StoreNotFoundError
from mirage.featstore.store.base import (
    CHECKSUM_ALGORITHM, SCHEMA_VERSION, STATUS_OK, STATUS_PENDING, SKIPPED_COLUMNS, FeatureStore, auto_chunk_rows,
    checksum_table_bytes, chunk_checksum, table_to_bytes, tool_version,
)
from mirage.featstore.store.content_hash import CONTENT_HASH_VERSION, compute_content_hash, finish_content_hash
from mirage.featstore.store.hdf5_store import write_hdf5_from
from mirage.featstore.store.location import Location, WriterLock, storage_errors
from mirage.featstore.store.zarr_store import BLOB_NAMES, META_NAME, ZarrBackend, compressors, zarr_store

log = logging.getLogger(__name__)
FORMATS = ("zarr", "hdf5")


def _tail(dim: int | tuple[int, ...] | None) -> tuple[int, ...]:
    """Per-row shape of an array declared as None (1-D), a width, or a tuple of sizes."""
    if dim is None:
        return ()
    return (int(dim),) if isinstance(dim, (int, np.integer)) else tuple(int(d) for d in dim)


def plan_fingerprint(plan: pd.DataFrame, arrays: dict[str, int | None], metadata: dict[str, Any], chunk_rows: int) -> str:
    h = hashlib.sha256()
    # duration_s comes from file headers, not from the user's intent: a re-encoded file must not block a resume.
    identity = plan.drop(columns=[c for c in ("duration_s",) if c in plan.columns]).reset_index(drop=True)
    h.update(pd.util.hash_pandas_object(identity, index=True).to_numpy().tobytes())
    h.update(json.dumps({"arrays": arrays, "chunk_rows": chunk_rows, "extractors": metadata.get("extractors")}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


class StoreWriter:
    """Create or resume a store at ``url``. Use as a context manager (holds the writer lock)."""

    def __init__(self, url: str, *, plan: pd.DataFrame, arrays: dict[str, int | None], metadata: dict[str, Any],
                 format: str = "zarr", chunk_rows: int | None = None, storage_options: dict[str, Any] | None = None,
                 overwrite: bool = False):
        if format not in FORMATS:
            raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
        if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer))
                                       or chunk_rows < 1):
            raise ConfigError(f"--chunk-rows: expected a positive number of rows, got {chunk_rows!r}")
        self.target = Location(url, storage_options)
        self.format = format
        self.storage_options = dict(storage_options or {})
        self.plan = plan.reset_index(drop=True)
        self.arrays = dict(arrays)
        widest = max([4 * int(np.prod(_tail(d))) for d in arrays.values()] or [4])
        self.chunk_rows = int(chunk_rows or auto_chunk_rows(len(self.plan), widest))
        self.staging = self.target if format == "zarr" else Location(self.target.url + ".partial.zarr", storage_options)
        self.fingerprint = plan_fingerprint(self.plan, self.arrays, metadata, self.chunk_rows)
        self.metadata = {
            "kind": "features", **metadata, "schema_version": SCHEMA_VERSION, "tool_version": tool_version(), "format": format,
            "plan_fingerprint": self.fingerprint, "chunk_rows": self.chunk_rows, "complete": False,
            "arrays": {k: v for k, v in sorted(self.arrays.items())},
        }
        self.overwrite = overwrite
        self.lock = WriterLock(self.staging, self.target.url)
        self.already_complete = False
        self._backend: ZarrBackend | None = None
        self._status = None

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "StoreWriter":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        with storage_errors(self.target.url, self.storage_options):
            self.target.check_bucket()
            self._check_target_kind()
            self.lock.acquire()
            try:
                self._open_locked()
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        self.lock.release()
        if self.format == "hdf5" and not self.staging.object_store:
            self._drop_empty_staging()

    def _drop_empty_staging(self) -> None:
        """The lock of an HDF5 store lives in its staging folder; a run that staged nothing (the
        store was already complete, or it was refused) leaves no empty ``*.partial.zarr`` behind."""
        try:
            if self.staging.exists() and not self.staging.listdir(""):
                self.staging.rm(recursive=True)
        except OSError as exc:  # best effort: a leftover empty folder is harmless
            log.debug("could not remove the empty staging folder %s: %s", self.staging.url, exc)

    def _existing_meta(self, loc: Location) -> dict | None:
        if self.format == "hdf5" and loc is self.target:
            if not self.target.fs.isfile(self.target.path):
                return None
            from mirage.featstore.store.hdf5_store import Hdf5Backend

            try:
                b = Hdf5Backend(self.target.url, self.storage_options)
                try:
                    return b.attrs()
                finally:
                    b.close()
            except StoreNotFoundError:
                raise StoreExistsError(f"{self.target.url} is a file that is not a feature store; expected a new path "
                                       "or an HDF5 store — choose another --store") from None
            except StoreCorruptError:
                if self.overwrite:
                    return {}
                raise StoreExistsError(f"{self.target.url} holds a damaged HDF5 store; expected a readable one — pass "
                                       "--overwrite to replace it or choose another --store") from None
        if not ZarrBackend.is_store(loc):
            return None
        try:
            return json.loads(loc.read_bytes(META_NAME))
        except ValueError:
            return {}

    def _check_target_kind(self) -> None:
        """A Zarr store is a folder, an HDF5 one a file; refuse to write over anything else."""
        from mirage.featstore.kinds import check_output, store_kind

        if self.target.exists():  # never write a store into a generator, shard set or run folder
            check_output(self.target.url, store_kind(self.metadata), flag="--store", storage_options=self.storage_options)
        if self.target.object_store:
            return
        fs, path = self.target.fs, self.target.path
        if self.format == "zarr" and fs.isfile(path):
            raise StoreExistsError(f"{self.target.url}: expected a folder (or a new path) for a Zarr store, got a "
                                   "regular file; choose another --store (or --format hdf5 for an .h5 file)")
        if self.format == "hdf5" and fs.isdir(path):
            raise StoreExistsError(f"{self.target.url}: expected a file (or a new path) for an HDF5 store, got a "
                                   "folder; choose another --store (or --format zarr)")
        parent = os.path.dirname(path.rstrip("/"))
        if parent and fs.exists(parent) and not fs.isdir(parent):
            raise StoreExistsError(f"{self.target.url}: expected a folder above the store, got a regular file "
                                   f"({parent}); choose another --store")

    def _open_locked(self) -> None:
        final = self._existing_meta(self.target)
        if final is not None and final.get("complete"):
            if final.get("plan_fingerprint") == self.fingerprint and not self.overwrite:
                self.already_complete = True
                return
            if not self.overwrite:
                raise StoreExistsError(
                    f"{self.target.url} already holds a store made with other settings; expected a new path — "
                    "pass --overwrite to replace it or choose another --store"
                )
            self._remove_target()
        staged = self._existing_meta(self.staging)
        if staged is not None and (staged.get("plan_fingerprint") != self.fingerprint or self.overwrite):
            if not self.overwrite:
                raise StoreExistsError(
                    f"{self.target.url} holds an unfinished extraction started with other settings; expected the same "
                    "command to resume — pass --overwrite to start over or choose another --store"
                )
            self._clear_staging()
            staged = None
        if staged is None:
            self._create()
        else:
            log.info("resuming %s", self.target.url)
        self._backend = ZarrBackend(self.staging.url, self.storage_options, read_only=False)
        self._status = self._backend.group["status"]

    def _remove_target(self) -> None:
        if self.format == "hdf5":
            self.target.rm()
        else:
            self._clear_staging()

    def _clear_staging(self) -> None:
        for name in self.staging.listdir(""):
            if name != ".lock":
                self.staging.rm(name, recursive=True)

    def _create(self) -> None:
        import zarr

        n = len(self.plan)
        group = zarr.open_group(zarr_store(self.staging.url, self.storage_options, read_only=False), mode="a")
        for name, dim in self.arrays.items():
            shape = (n, *_tail(dim))
            chunks = (self.chunk_rows, *_tail(dim))
            group.create_array(name, shape=shape, chunks=chunks, dtype="float32", fill_value=0.0,
                               compressors=compressors(), overwrite=True)
        group.create_array("status", shape=(n,), chunks=(self.chunk_rows,), dtype="uint8", fill_value=0, overwrite=True)
        self.staging.write_bytes(BLOB_NAMES["plan"], table_to_bytes(self.plan))
        # mirage.json last: its presence is what marks the folder as a (resumable) store.
        self.staging.write_bytes(META_NAME, json.dumps(self.metadata, sort_keys=True, indent=1).encode())

    # -- work ------------------------------------------------------------------------------
    def units(self) -> list[tuple[int, int]]:
        n = len(self.plan)
        return [(s, min(n, s + self.chunk_rows)) for s in range(0, n, self.chunk_rows)]

    def pending_units(self) -> list[tuple[int, int]]:
        if self.already_complete:
            return []
        status = np.asarray(self._status[:])
        return [(s, e) for s, e in self.units() if np.any(status[s:e] == STATUS_PENDING)]

    def write_unit(self, start: int, stop: int, values: dict[str, np.ndarray], status: np.ndarray,
                   skipped: list[dict] | None = None) -> None:
        """Write rows [start, stop): every array in ``values``, then the skip report, then status."""
        if start % self.chunk_rows or (stop != len(self.plan) and stop - start != self.chunk_rows):
            raise ValueError(f"unit [{start}, {stop}) is not chunk-aligned (chunk_rows={self.chunk_rows})")
        missing = set(self.arrays) - set(values)
        if missing:
            raise ValueError(f"write_unit: expected values for {sorted(self.arrays)}, missing {sorted(missing)}")
        with storage_errors(self.target.url, self.storage_options):
            sums: dict[str, int] = {}
            for name, arr in values.items():
                if name not in self.arrays:
                    raise ValueError(f"write_unit: unknown array {name!r}; expected one of {sorted(self.arrays)}")
                arr = np.broadcast_to(np.asarray(arr, dtype=np.float32), (stop - start, *_tail(self.arrays[name])))
                self._backend.group[name][start:stop] = arr
                sums[name] = chunk_checksum(arr)
            status = np.broadcast_to(np.asarray(status, dtype=np.uint8), (stop - start,))
            sums["status"] = chunk_checksum(status)
            report = [{k: str(r.get(k, "")) for k in SKIPPED_COLUMNS} for r in (skipped or [])]
            self.staging.write_bytes(f"_skipped/{start:012d}.json", json.dumps(report).encode())
            # The unit's checksums before its status: a unit marked written always has them.
            record = {**sums, "_algorithm": CHECKSUM_ALGORITHM}
            self.staging.write_bytes(f"_checksums/{start:012d}.json", json.dumps(record, sort_keys=True).encode())
            self._status[start:stop] = status

    def finalize(self, *, content_hash: str | None = None) -> FeatureStore:
        """Publish the item tables and metadata; for HDF5 convert and remove the staging store.

        ``content_hash``: the store's content hash when the caller already has it (computed by
        :func:`content_hash_of` from the very values written, as :func:`write_store` does);
        otherwise it is computed by reading the store back."""
        with storage_errors(self.target.url, self.storage_options):
            return self._finalize(content_hash)

    def _finalize(self, content_hash: str | None = None) -> FeatureStore:
        from mirage.featstore.store import open_store

        if self.already_complete:
            return open_store(self.target.url, storage_options=self.storage_options)
        status = np.asarray(self._status[:])
        if np.any(status == STATUS_PENDING):
            raise StoreIncompleteError(f"{self.target.url}: {int(np.sum(status == STATUS_PENDING))} rows not written; rerun to finish")
        ok = np.flatnonzero(status == STATUS_OK)
        items = self.plan.iloc[ok].copy()
        items["row"] = ok.astype(np.int64)
        reports: list[dict] = []
        for start, _ in self.units():
            reports += json.loads(self.staging.read_bytes(f"_skipped/{start:012d}.json"))
        skipped = pd.DataFrame(reports, columns=list(SKIPPED_COLUMNS))
        checksums = self._gather_checksums()
        self.staging.write_bytes(BLOB_NAMES["items"], table_to_bytes(items.reset_index(drop=True)))
        self.staging.write_bytes(BLOB_NAMES["skipped"], table_to_bytes(skipped))
        self.staging.write_bytes(BLOB_NAMES["checksums"], checksum_table_bytes(self.chunk_rows, checksums))
        store = None
        if content_hash is None or self.format == "hdf5":
            store = FeatureStore(ZarrBackend(self.staging.url, self.storage_options), self.staging.url, self.storage_options)
            store._checksums = (self.chunk_rows, checksums)  # the hash (and the HDF5 copy) read checked chunks
        meta = {**self.metadata, "n_items": int(len(items)), "n_skipped": int(len(skipped)),
                "content_hash": content_hash or compute_content_hash(store, CONTENT_HASH_VERSION),
                "content_hash_version": CONTENT_HASH_VERSION, "checksums": CHECKSUM_ALGORITHM}
        if self.format == "hdf5":
            store.metadata = {**meta, "complete": True}
            write_hdf5_from(store, self.target.url, self.storage_options)
            store.close()
            self.lock.release()
            self.staging.rm(recursive=True)
        else:
            if store is not None:
                store.close()
            self.staging.write_bytes(META_NAME, json.dumps({**meta, "complete": True}, sort_keys=True, indent=1).encode())
        return open_store(self.target.url, storage_options=self.storage_options)


    def _gather_checksums(self) -> dict[str, list[int]]:
        """Per array, the checksum of each unit (= chunk) as recorded by ``write_unit``. A unit
        written by an older version (no record) is checksummed from what it holds now."""
        names = [*self.arrays, "status"]
        out: dict[str, list[int]] = {n: [] for n in names}
        for start, stop in self.units():
            try:
                sums = json.loads(self.staging.read_bytes(f"_checksums/{start:012d}.json"))
            except FileNotFoundError:
                sums = {}
            if sums.get("_algorithm", "crc32") != CHECKSUM_ALGORITHM:  # staged by an older version
                sums = {}
            for n in names:
                if n not in sums:
                    sums[n] = chunk_checksum(np.asarray(self._backend.group[n][start:stop]))
                out[n].append(int(sums[n]))
        return out


def write_store(url: str, *, items: pd.DataFrame, arrays: dict[str, np.ndarray], metadata: dict[str, Any],
                format: str = "zarr", storage_options: dict[str, Any] | None = None, overwrite: bool = True,
                chunk_rows: int | None = None) -> FeatureStore:
    """Write a whole in-memory store in one call (synthetic shards use this).

    The content hash is computed from the arrays in memory (:func:`content_hash_of`, the
    same value :func:`compute_content_hash` reads back), not by reading the store again."""
    dims = {k: (None if v.ndim == 1 else int(v.shape[1]) if v.ndim == 2 else tuple(v.shape[1:])) for k, v in arrays.items()}
    with StoreWriter(url, plan=items, arrays=dims, metadata=metadata, format=format, chunk_rows=chunk_rows,
                     storage_options=storage_options, overwrite=overwrite) as w:
        pending = w.pending_units()
        for start, stop in pending:
            w.write_unit(start, stop, {k: v[start:stop] for k, v in arrays.items()}, np.full(stop - start, STATUS_OK))
        whole = [(s, e) for s, e in w.units()] == pending  # every row written here, from these arrays
        content_hash = content_hash_of(w.plan["utt_id"].tolist(), arrays, identity=w.plan) if whole and not w.already_complete else None
        return w.finalize(content_hash=content_hash)


def content_hash_of(utt_ids: list[str], arrays: dict[str, np.ndarray], *, block_rows: int = 4096,
                    identity: pd.DataFrame | None = None) -> str:
    """:func:`~featstore.store.base.compute_content_hash` of a store whose rows are all usable
    and hold ``arrays`` (row i is ``utt_ids[i]``), computed from memory with the same value.

    Per row, sha256 over ``utt\0`` then, for each array by name, ``name\0`` and the row's
    float32 little-endian bytes; the row digests, sorted by utt_id, hashed once more. Rows are
    laid out as one byte matrix per block (and utt_id length), so each row is a single
    sha256 call instead of a Python loop of updates."""
    names = sorted(arrays)
    n = len(utt_ids)
    if n == 0:
        return finish_content_hash({}, identity)
    flat = {k: np.ascontiguousarray(np.asarray(arrays[k], dtype=np.float32), dtype="<f4").reshape(n, -1) for k in names}
    for k in names:
        if len(flat[k]) != n:
            raise ValueError(f"content_hash_of: array {k} has {len(flat[k])} rows, expected {n}")
    keys = [str(u) for u in utt_ids]
    encoded = [u.encode() + b"\0" for u in keys]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    tags = [np.frombuffer(k.encode() + b"\0", dtype=np.uint8) for k in names]
    sha = hashlib.sha256
    digests: dict[str, bytes] = {}
    for b0 in range(0, n, block_rows):
        block_lengths = lengths[b0:b0 + block_rows]
        # Rows of equal utt_id length share one byte matrix (generated shards: all of them).
        groups = np.unique(block_lengths)
        for length in groups:
            if len(groups) == 1:
                sel = slice(b0, b0 + len(block_lengths))  # a view, not a copy
                idx = list(range(sel.start, sel.stop))
            else:
                sel = b0 + np.flatnonzero(block_lengths == length)
                idx = sel.tolist()
            parts = [np.frombuffer(b"".join([encoded[i] for i in idx]), dtype=np.uint8).reshape(len(idx), int(length))]
            for k, tag in zip(names, tags):
                parts.append(np.broadcast_to(tag, (len(idx), len(tag))))
                parts.append(flat[k][sel].view(np.uint8))
            mat = np.concatenate(parts, axis=1)
            width = mat.shape[1]
            buf = memoryview(mat.reshape(-1))
            digests.update(zip([keys[i] for i in idx], [sha(buf[j:j + width]).digest() for j in range(0, len(idx) * width, width)]))
    return finish_content_hash(digests, identity)
