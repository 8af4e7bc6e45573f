"""``featstore verify``: every check a finished store must pass (shapes, status, chunk
checksums, finite values, content hash)."""

from __future__ import annotations

import numpy as np

from mirage.featstore.errors import StoreCorruptError
from mirage.featstore.store.base import SCHEMA_VERSION, STATUS_OK, STATUS_PENDING, STATUS_SKIPPED, FeatureStore

def verify_store(store: FeatureStore) -> list[str]:
    """Problems found (empty list = healthy): shapes, status, finite values, hash."""
    problems: list[str] = []
    meta = store.metadata
    if meta.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version: expected {SCHEMA_VERSION}, got {meta.get('schema_version')}")
    if not meta.get("complete"):
        problems.append("store is not complete: rerun the extraction to finish it")
    n = store.n_rows
    for name in store.array_names:
        if store._backend.shape(name)[0] != n:
            problems.append(f"array {name}: expected {n} rows, got {store._backend.shape(name)[0]}")
    damaged = [p for name in ["status", *store.array_names] for p in store.check_chunks(name)]
    if damaged:  # what follows reads through the checks and would stop at the first bad chunk
        return problems + damaged
    try:
        return _verify_contents(store, problems)
    except StoreCorruptError as exc:  # a store without checksums whose chunk cannot be decoded
        return [*problems, str(exc)]


def _verify_contents(store: FeatureStore, problems: list[str]) -> list[str]:
    meta = store.metadata
    n = store.n_rows
    status = store.read_rows("status", 0, n)
    rows = store.items["row"].to_numpy()
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        problems.append("item table points outside the arrays")
    elif np.any(status[rows] != STATUS_OK):
        problems.append(f"{int(np.sum(status[rows] != STATUS_OK))} listed items are not marked written")
    if np.any(status == STATUS_PENDING):
        problems.append(f"{int(np.sum(status == STATUS_PENDING))} rows were never written")
    if int(np.sum(status == STATUS_SKIPPED)) != len(store.skipped):
        problems.append(f"skipped rows: status says {int(np.sum(status == STATUS_SKIPPED))}, report lists {len(store.skipped)}")
    if store.items["utt_id"].duplicated().any():
        problems.append("duplicate utt_id in the item table")
    ok = np.zeros(n, dtype=bool)
    ok[rows] = True
    for name in store.array_names:
        for start, stop, block in store.iter_blocks(name):
            bad = ~np.isfinite(block.reshape(len(block), -1)).all(axis=1) & ok[start:stop]
            if bad.any():
                problems.append(f"array {name}: {int(bad.sum())} usable rows hold NaN/inf (first at row {start + int(np.argmax(bad))})")
                break
    recorded = meta.get("content_hash")
    if recorded and not problems:
        actual = store.content_hash()
        if actual != recorded:
            problems.append(f"content_hash: expected {recorded}, got {actual}")
    return problems
