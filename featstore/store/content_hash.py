"""The store's content hash: what a store holds, independent of how it was written.

SHA-256 over (utt_id, feature values) of the usable items, sorted by utt_id, and (version 2)
over their (utt_id, label, speaker). Independent of write order, row order, chunking and
format; :func:`~featstore.store.writer.content_hash_of` computes the same value from memory.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mirage.featstore.store.base import FeatureStore

#: 2: the hash also covers each item's label and speaker (version 1, stores written before,
#: covered utt_id and feature values only; they keep being checked the old way).
CONTENT_HASH_VERSION = 2
IDENTITY_COLUMNS = ("utt_id", "label", "speaker")


def identity_digest(items: pd.DataFrame) -> bytes:
    """SHA-256 over the (utt_id, label, speaker) of every item, sorted by utt_id."""
    cols = [items[c].fillna("").astype(str).tolist() if c in items.columns else [""] * len(items) for c in IDENTITY_COLUMNS]
    lines = sorted("\0".join(vals) for vals in zip(*cols))
    return hashlib.sha256("\n".join(lines).encode()).digest()


def finish_content_hash(digests: dict[str, bytes], items: pd.DataFrame | None) -> str:
    """The store hash from per-row digests (and, from version 2, the item identities)."""
    total = hashlib.sha256()
    for utt in sorted(digests):
        total.update(digests[utt])
    if items is not None:
        total.update(b"identity\0" + identity_digest(items))
    return total.hexdigest()


def compute_content_hash(store: "FeatureStore", version: int | None = None) -> str:
    """See :meth:`FeatureStore.content_hash`; ``version`` defaults to the one the store records
    (1 for stores written before versions were recorded)."""
    if version is None:
        version = int(store.metadata.get("content_hash_version", 1))
    items = store.items
    names = store.array_names
    row_to_utt = dict(zip(items["row"].to_numpy().tolist(), items["utt_id"].tolist()))
    digests: dict[str, bytes] = {}
    for start, stop, _ in _blocks(store):
        wanted = [r for r in range(start, stop) if r in row_to_utt]
        if not wanted:
            continue
        blocks = {n: np.ascontiguousarray(store.read_rows(n, start, stop), dtype="<f4") for n in names}
        for r in wanted:
            h = hashlib.sha256(row_to_utt[r].encode() + b"\0")
            for n in names:
                h.update(n.encode() + b"\0")
                h.update(blocks[n][r - start].tobytes())
            digests[row_to_utt[r]] = h.digest()
    return finish_content_hash(digests, items if version >= 2 else None)


def _blocks(store: "FeatureStore"):
    step = store.chunk_rows
    for start in range(0, store.n_rows, step):
        yield start, min(store.n_rows, start + step), None
