"""Write one whole synthetic shard straight to local files: the same bytes as ``write_store``.

``write_store`` goes through the general resumable writer: a Zarr group opened and its
arrays created through zarr's async machinery, a status array read back, the store
reopened at the end. For a shard that is written whole into a private temporary folder
(and renamed into place by the caller) none of that buys anything, and it cost about
0.4 s per 4096-row shard. Here the files are written directly:

- the Zarr metadata documents (``zarr.json`` of the group and of each array) and the
  encoded ``status`` chunks are produced once per layout by zarr itself, into an in-memory
  store, and cached: they depend only on the shapes, chunking and codecs;
- float32 arrays are stored uncompressed (``zarr_store.compressors()`` is ``None``), so a
  chunk file is the chunk's little-endian bytes, the edge chunk padded with the fill value
  to the full chunk shape, as zarr stores it;
- the item tables, checksum records and ``mirage.json`` come from the same helpers and the
  same :class:`~featstore.store.writer.StoreWriter` metadata that ``write_store`` uses.

A test writes the same shard both ways and compares the trees byte for byte. Anything this
path does not reproduce exactly (an object store; a chunk whose values all equal the fill
value, which zarr does not write at all) goes through ``write_store`` instead.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import numpy as np
import pandas as pd

_LAYOUT_CACHE: dict[tuple, dict[str, bytes]] = {}
_LAYOUT_LOCK = threading.Lock()
_LAYOUT_CACHE_MAX = 64


def _tail(a: np.ndarray) -> tuple[int, ...]:
    return tuple(int(d) for d in a.shape[1:])


def _dims(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The per-row dims ``write_store`` declares for these arrays (None, a width or a tuple)."""
    return {k: (None if v.ndim == 1 else int(v.shape[1]) if v.ndim == 2 else tuple(v.shape[1:])) for k, v in arrays.items()}


def layout_files(n: int, chunk_rows: int, tails: tuple[tuple[str, tuple[int, ...]], ...]) -> dict[str, bytes]:
    """``zarr.json`` documents and encoded ``status`` chunks of a store of this layout, made by zarr."""
    key = (int(n), int(chunk_rows), tails)
    with _LAYOUT_LOCK:
        if key in _LAYOUT_CACHE:
            return _LAYOUT_CACHE[key]
    import zarr

    from mirage.featstore.store.base import STATUS_OK
    from mirage.featstore.store.zarr_store import compressors

    held: dict = {}  # the in-memory store's own mapping (MemoryStore(store_dict=...)), key -> Buffer
    group = zarr.open_group(zarr.storage.MemoryStore(store_dict=held), mode="a")
    for name, tail in tails:  # exactly StoreWriter._create's calls
        group.create_array(name, shape=(n, *tail), chunks=(chunk_rows, *tail), dtype="float32", fill_value=0.0,
                           compressors=compressors(), overwrite=True)
    status = group.create_array("status", shape=(n,), chunks=(chunk_rows,), dtype="uint8", fill_value=0, overwrite=True)
    status[:] = np.full(n, STATUS_OK, dtype=np.uint8)
    # Metadata documents and the status chunks; the float arrays were never written to, so
    # the in-memory store holds none of their chunks.
    files = {k: v.to_bytes() for k, v in sorted(held.items())
             if k.endswith("zarr.json") or k.startswith("status/")}
    with _LAYOUT_LOCK:
        if len(_LAYOUT_CACHE) >= _LAYOUT_CACHE_MAX:  # shards short of their quota each have their own n
            _LAYOUT_CACHE.clear()
        _LAYOUT_CACHE[key] = files
    return files


def _chunk_key(i: int, ndim: int) -> str:
    return "c/" + "/".join([str(i)] + ["0"] * (ndim - 1))


def can_write_direct(arrays: dict[str, np.ndarray], chunk_rows: int) -> bool:
    """False when some chunk holds only the fill value 0 (zarr leaves such chunks unwritten)."""
    for v in arrays.values():
        flat = np.asarray(v, dtype=np.float32).reshape(len(v), -1)
        for s in range(0, len(flat), chunk_rows):
            if not np.any(flat[s:s + chunk_rows]):
                return False
    return True


def write_shard_files(path: str, *, items: pd.DataFrame, arrays: dict[str, np.ndarray], metadata: dict[str, Any],
                      chunk_rows: int) -> str:
    """Write a complete store at local folder ``path`` (which must not exist); returns its content hash."""
    from mirage.featstore.store.base import (
        CHECKSUM_ALGORITHM, CONTENT_HASH_VERSION, SKIPPED_COLUMNS, STATUS_OK, checksum_table_bytes, chunk_checksum,
        table_to_bytes,
    )
    from mirage.featstore.store.writer import StoreWriter, content_hash_of
    from mirage.featstore.store.zarr_store import BLOB_NAMES, META_NAME

    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
    # Constructing the writer touches no file: it is the one source of the plan, metadata and units.
    w = StoreWriter(path, plan=items, arrays=_dims(arrays), metadata=metadata, chunk_rows=chunk_rows)
    n, c = len(w.plan), w.chunk_rows
    files = dict(layout_files(n, c, tuple((k, _tail(v)) for k, v in arrays.items())))
    sums: dict[str, list[int]] = {k: [] for k in [*arrays, "status"]}
    status = np.full(c, STATUS_OK, dtype=np.uint8)
    for i, (start, stop) in enumerate(w.units()):
        record: dict[str, Any] = {}
        for name, arr in arrays.items():
            block = arr[start:stop]
            record[name] = chunk_checksum(block)
            if stop - start < c:  # zarr stores the edge chunk at full size, padded with the fill value
                block = np.concatenate([block, np.zeros((c - (stop - start), *block.shape[1:]), np.float32)])
            files[f"{name}/{_chunk_key(i, arr.ndim)}"] = np.ascontiguousarray(block, dtype="<f4").tobytes()
        record["status"] = chunk_checksum(status[: stop - start])
        for name in sums:
            sums[name].append(int(record[name]))
        files[f"_skipped/{start:012d}.json"] = json.dumps([]).encode()
        files[f"_checksums/{start:012d}.json"] = json.dumps({**record, "_algorithm": CHECKSUM_ALGORITHM},
                                                            sort_keys=True).encode()
    items_out = w.plan.copy()
    items_out["row"] = np.arange(n, dtype=np.int64)
    content_hash = content_hash_of(w.plan["utt_id"].tolist(), arrays, identity=w.plan)
    meta = {**w.metadata, "n_items": n, "n_skipped": 0, "content_hash": content_hash,
            "content_hash_version": CONTENT_HASH_VERSION, "checksums": CHECKSUM_ALGORITHM, "complete": True}
    files[BLOB_NAMES["plan"]] = table_to_bytes(w.plan)
    files[BLOB_NAMES["items"]] = table_to_bytes(items_out)
    files[BLOB_NAMES["skipped"]] = table_to_bytes(pd.DataFrame([], columns=list(SKIPPED_COLUMNS)))
    files[BLOB_NAMES["checksums"]] = checksum_table_bytes(c, sums)
    files[META_NAME] = json.dumps(meta, sort_keys=True, indent=1).encode()
    os.makedirs(path)
    made = {path}
    for rel, data in files.items():
        full = os.path.join(path, rel)
        parent = os.path.dirname(full)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        with open(full, "wb") as fh:
            fh.write(data)
    return content_hash
