"""The feature store as readers see it: item table + row-aligned arrays + metadata.

Layout (both formats): arrays ``audio`` (N, Da), ``text`` (N, Dt) and any extra per-item
arrays (synthetic shards add ``text_pred`` and ``mi_pointwise``), all float32, chunked by
whole rows; ``status`` (N,) uint8 (0 pending, 1 ok, 2 skipped); ``items`` (Parquet: the
item table of the usable rows plus a ``row`` column pointing into the arrays); ``skipped``
(Parquet: utt_id, path, reason, message); metadata under the ``mirage`` attribute.
"""

from __future__ import annotations

import functools
import io
import json
import time
import zlib
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mirage.featstore.errors import StoreCorruptError

SCHEMA_VERSION = 1
STATUS_PENDING, STATUS_OK, STATUS_SKIPPED = 0, 1, 2
SKIPPED_COLUMNS = ("utt_id", "path", "reason", "message")
#: Arrays that are bookkeeping, not features.
INTERNAL_ARRAYS = ("status",)
#: The per-chunk checksum the writer records (``mirage.json`` key ``checksums``) and readers check.
#: crc32c (hardware-accelerated through google-crc32c, ~9 GB/s here against zlib crc32's ~3 GB/s,
#: which cost reads 40-75%); stores written with "crc32" stay readable.
CHECKSUM_ALGORITHM = "crc32c"
CHECKSUM_ALGORITHMS = ("crc32c", "crc32")
#: Private switch for bench/load.py only, which measures what verification costs by reading
#: the same path with it off. Nothing else may turn it off.
_VERIFY_READS = True
#: A chunk file whose mtime and ctime were at least this old when it was verified is not
#: checksummed again by the same open store until its stat (inode, size, mtime, ctime) changes;
#: younger files are always rechecked, as a write within the filesystem's timestamp
#: granularity would not show in the stat (git's "racy" entries, same reasoning).
VERIFIED_SETTLE_NS = 2_000_000_000


def chunk_checksum(values: np.ndarray, algorithm: str = CHECKSUM_ALGORITHM) -> int:
    """Checksum of one chunk's values as little-endian bytes in C order (what the writer stored)."""
    a = np.asarray(values)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    if algorithm == "crc32":
        return zlib.crc32(raw) & 0xFFFFFFFF
    import google_crc32c

    c = google_crc32c.Checksum()
    c.update(raw)
    return int.from_bytes(c.digest(), "big")


def checksum_table_bytes(chunk_rows: int, arrays: dict[str, list[int]]) -> bytes:
    return json.dumps({"algorithm": CHECKSUM_ALGORITHM, "chunk_rows": int(chunk_rows),
                       "arrays": {k: [int(c) for c in v] for k, v in sorted(arrays.items())}}, sort_keys=True).encode()


def _corrupt_hint(url: str) -> str:
    return f"re-extract the store (or regenerate the shard) or run `featstore verify {url}`"


class Backend(Protocol):
    format: str

    def attrs(self) -> dict[str, Any]: ...
    def array_names(self) -> list[str]: ...
    def shape(self, name: str) -> tuple[int, ...]: ...
    def chunk_rows(self) -> int: ...
    def read(self, name: str, start: int, stop: int) -> np.ndarray: ...
    def read_blob(self, name: str) -> bytes | None: ...
    def close(self) -> None: ...


def table_to_bytes(df: pd.DataFrame) -> bytes:
    """The Parquet bytes ``df.to_parquet(index=False)`` writes (snappy, pandas schema metadata).

    Converted on the calling thread: pandas lets pyarrow convert the columns on a thread pool,
    which for tables of a few thousand rows costs more than it saves (~1 ms of a 2.2 ms write)
    and competes for the GIL with whatever else runs (the shard writers).
    """
    df = df.reset_index(drop=True)
    buf = io.BytesIO()
    if df.attrs:  # pandas stores attrs in the schema metadata; keep its own path for them
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(df, preserve_index=False, nthreads=1), buf, compression="snappy")
    return buf.getvalue()


def table_from_bytes(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


@functools.lru_cache(maxsize=1)
def tool_version() -> str:
    """The installed mirage version (read once: a metadata lookup per shard cost ~3 ms)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mirage-ser")
    except PackageNotFoundError:
        return "0+unknown"


def auto_chunk_rows(n_rows: int, row_bytes: int, *, target_bytes: int = 4 << 20, min_rows: int = 16,
                    units: int | None = 16) -> int:
    """Rows per chunk (the one home of chunk sizing): about 4 MiB of the widest array (zarr
    pays ~2 ms per chunk read, so smaller chunks cap block reads well below disk speed), a
    power of two in [``min_rows``, 4096], and small enough that a small corpus still splits
    into ~``units`` resumable units. ``units=None`` (stores written whole, e.g. synthetic
    shards: resumable units buy nothing) drops that cap and caps at ``n_rows`` instead."""
    by_bytes = max(min_rows, min(4096, 1 << max(0, int(np.log2(max(1, target_bytes // max(1, row_bytes)))))))
    if units is None:
        return int(max(1, min(by_bytes, n_rows)))
    by_count = 1 << int(np.ceil(np.log2(max(16, -(-n_rows // units)))))
    return int(min(by_bytes, by_count))


class FeatureStore:
    """Read access to a finished store. Open with :func:`featstore.store.open_store`."""

    def __init__(self, backend: Backend, url: str, storage_options: dict[str, Any] | None = None):
        self._backend = backend
        self.url = url
        self.storage_options = dict(storage_options or {})
        self.metadata: dict[str, Any] = backend.attrs()
        items = backend.read_blob("items")
        if items is None:
            raise StoreCorruptError(f"{url}: expected an item table, found none; run `featstore verify {url}`")
        self.items: pd.DataFrame = table_from_bytes(items)
        skipped = backend.read_blob("skipped")
        self.skipped: pd.DataFrame = (
            table_from_bytes(skipped) if skipped is not None else pd.DataFrame(columns=list(SKIPPED_COLUMNS))
        )
        #: chunk_rows and per-array chunk checksums; None for stores written before checksums existed.
        self._checksums: tuple[int, dict[str, list[int]]] | None = None
        if self.metadata.get("checksums"):
            self._checksums = self._load_checksums()
        self._algorithm = str(self.metadata.get("checksums") or CHECKSUM_ALGORITHM)
        #: (array, chunk) -> stat of the chunk file when it was verified (local direct reads only)
        self._verified: dict[tuple[str, int], tuple[int, int, int, int]] = {}

    # -- integrity -------------------------------------------------------------------------
    def _load_checksums(self) -> tuple[int, dict[str, list[int]]]:
        url = self.url
        algo = self.metadata.get("checksums")
        if algo not in CHECKSUM_ALGORITHMS:
            raise StoreCorruptError(f"{url}: expected chunk checksums of kind {' or '.join(CHECKSUM_ALGORITHMS)}, got {algo!r}; "
                                    "upgrade mirage or re-extract the store")
        blob = self._backend.read_blob("checksums")
        try:
            table = json.loads(blob) if blob is not None else None
            rows = int(table["chunk_rows"])
            arrays = {str(k): [int(c) for c in v] for k, v in table["arrays"].items()}
        except (ValueError, TypeError, KeyError):
            table = None
        if table is None or rows < 1:
            raise StoreCorruptError(f"{url}: its metadata records chunk checksums, but the checksum table is "
                                    f"{'missing' if blob is None else 'unreadable'}; {_corrupt_hint(url)}")
        n_chunks = -(-self.n_rows // rows)
        for name in self._backend.array_names():
            if name not in arrays or len(arrays[name]) != n_chunks:
                raise StoreCorruptError(f"{url}: expected {n_chunks} chunk checksums for array {name}, got "
                                        f"{len(arrays.get(name, []))}; {_corrupt_hint(url)}")
        return rows, arrays

    @property
    def verified(self) -> bool:
        """Whether reads are checked against recorded chunk checksums (False for older stores)."""
        return self._checksums is not None

    def _corrupt(self, name: str, chunk: int, rows: tuple[int, int], what: str) -> StoreCorruptError:
        return StoreCorruptError(f"{self.url}: array {name}, chunk {chunk} (rows {rows[0]}-{rows[1] - 1}) {what}; "
                                 f"the store is damaged — {_corrupt_hint(self.url)}")

    def _raw(self, name: str, start: int, stop: int) -> np.ndarray:
        """Backend read; a chunk the backend cannot decode (truncated file ...) becomes StoreCorruptError."""
        try:
            return self._backend.read(name, start, stop)
        except (ValueError, OSError, RuntimeError) as exc:  # zarr: reshape (no codec) or codec (zstd) errors
            from mirage.featstore.errors import MirageError
            from mirage.featstore.store.location import is_remote

            if isinstance(exc, (MirageError, FileNotFoundError, PermissionError)) or (
                    isinstance(exc, OSError) and is_remote(self.url)):
                raise
            rows = self._checksums[0] if self._checksums else self.chunk_rows
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
            for c in range(start // rows, -(-stop // rows)):  # find the chunk that fails
                a, b = c * rows, min(self.n_rows, (c + 1) * rows)
                try:
                    self._backend.read(name, a, b)
                except (ValueError, OSError, RuntimeError):
                    raise self._corrupt(name, c, (a, b), f"cannot be read ({detail})") from None
            raise StoreCorruptError(f"{self.url}: array {name}, rows {start}-{stop - 1} cannot be read ({detail}); "
                                    f"the store is damaged — {_corrupt_hint(self.url)}") from None

    def _read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of ``name``, every chunk touched checked against its checksum."""
        if self._checksums is None or not _VERIFY_READS:
            return self._raw(name, start, stop)
        rows, table = self._checksums
        crcs = table.get(name)
        n = self.n_rows
        start, stop = max(0, int(start)), min(n, int(stop))
        if crcs is None or start >= stop:
            return self._raw(name, start, max(start, stop))
        c0, c1 = start // rows, -(-stop // rows)
        lo, hi = c0 * rows, min(n, c1 * rows)
        stamp_of = getattr(self._backend, "chunk_stamp", None)
        stamps = [stamp_of(name, c) if stamp_of else None for c in range(c0, c1)]  # before the read
        block = self._raw(name, lo, hi)
        now = time.time_ns()
        for c, stamp in zip(range(c0, c1), stamps):
            a, b = c * rows, min(n, (c + 1) * rows)
            self._check_chunk(name, c, block[a - lo:b - lo], crcs[c], stamp, now)
        return block if (lo, hi) == (start, stop) else block[start - lo:stop - lo]

    def _check_chunk(self, name: str, c: int, values, crc: int, stamp, now: int) -> None:
        """Chunk ``c``'s values against its checksum, unless this file (``stamp``) was verified
        unchanged by this store before; a settled file is remembered as verified."""
        if stamp is not None and self._verified.get((name, c)) == stamp:
            return  # this file, unchanged since this store verified it
        if chunk_checksum(values, self._algorithm) != crc:
            rows = self._checksums[0]
            raise self._corrupt(name, c, (c * rows, min(self.n_rows, (c + 1) * rows)),
                                "does not match its checksum (missing, truncated or altered)")
        if stamp is not None and now - max(stamp[2], stamp[3]) >= VERIFIED_SETTLE_NS:
            self._verified[(name, c)] = stamp

    def read_rows_mapped(self, name: str, start: int, stop: int):
        """Rows [start, stop) as :meth:`read_rows` gives them, but as a
        :class:`~featstore.store.mapped.MappedRows` (views over memory-mapped chunk files, no read
        copy) where the backend maps them: a local Zarr store of plain chunks. Elsewhere, or with
        ``MIRAGE_MMAP_READS=0``, the array of :meth:`read_rows`. Each chunk touched is checked
        against its checksum first, with the same memo as :meth:`read_rows`."""
        from mirage.featstore.store.mapped import read_rows_mapped

        return read_rows_mapped(self, name, start, stop, verify=_VERIFY_READS)

    def check_chunks(self, name: str) -> list[str]:
        """Problems of every chunk of ``name`` against its checksum (empty list = all match or none recorded)."""
        if self._checksums is None:
            return []
        rows, table = self._checksums
        problems = []
        for c, crc in enumerate(table.get(name, [])):
            a, b = c * rows, min(self.n_rows, (c + 1) * rows)
            try:
                ok = chunk_checksum(self._raw(name, a, b), self._algorithm) == crc
            except StoreCorruptError:
                ok = False
            if not ok:
                problems.append(f"array {name}: chunk {c} (rows {a}-{b - 1}) does not match its checksum "
                                "(missing, truncated or altered)")
        return problems

    # -- shape -----------------------------------------------------------------------------
    @property
    def format(self) -> str:
        return self._backend.format

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_rows(self) -> int:
        return self._backend.shape("status")[0]

    @property
    def chunk_rows(self) -> int:
        return self._backend.chunk_rows()

    @property
    def array_names(self) -> list[str]:
        return sorted(n for n in self._backend.array_names() if n not in INTERNAL_ARRAYS)

    def has(self, name: str) -> bool:
        return name in self.array_names

    def dim(self, name: str) -> int | None:
        """Width of a 2-D array, None for a 1-D one (for a 3-D array: its second axis)."""
        shape = self._backend.shape(name)
        return int(shape[1]) if len(shape) > 1 else None

    def row_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one row of ``name`` (() for a 1-D array)."""
        return tuple(int(d) for d in self._backend.shape(name)[1:])

    def row_width(self, name: str) -> int:
        """Number of float32 values per row of ``name`` (a flattened row)."""
        return int(np.prod(self.row_shape(name), dtype=np.int64))

    @property
    def labels(self) -> list[str]:
        return sorted(self.items["label"].unique().tolist()) if "label" in self.items else []

    # -- data ------------------------------------------------------------------------------
    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Raw array rows [start, stop) — a cheap contiguous read; align to ``chunk_rows``.

        Every chunk touched is checked against its recorded checksum (a read is widened to
        whole chunks, checked, then sliced); a mismatch raises :class:`StoreCorruptError`."""
        return self._read(name, start, stop)

    def read(self, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Feature rows for the usable items (``items`` order by default) or given row ids."""
        rows = self.items["row"].to_numpy() if rows is None else np.asarray(rows, dtype=np.int64)
        if len(rows) == 0:
            tail = self._backend.shape(name)[1:]
            return np.zeros((0, *tail), dtype=np.float32)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        if hi - lo == len(rows) and np.all(np.diff(rows) == 1):
            return self._read(name, lo, hi)
        return self._read(name, lo, hi)[rows - lo]

    def iter_blocks(self, name: str):
        """Yield ``(start, stop, values)`` over chunk-aligned row blocks."""
        step = self.chunk_rows
        for start in range(0, self.n_rows, step):
            stop = min(self.n_rows, start + step)
            yield start, stop, self._read(name, start, stop)

    # -- identity --------------------------------------------------------------------------
    def content_hash(self) -> str:
        """SHA-256 over (utt_id, feature values) of the usable items, sorted by utt_id, and
        (version 2) over their (utt_id, label, speaker): a relabelled store hashes differently.

        Independent of write order, row order, chunking and format.
        """
        return compute_content_hash(self)

    def info(self) -> dict[str, Any]:
        meta = self.metadata
        extractors = meta.get("extractors", {})

        def _arr(kind: str) -> dict | None:
            cfg = extractors.get(kind)
            if cfg is None or not self.has(kind):
                return None
            return {"extractor": cfg.get("model") or cfg.get("extractor"), "dim": self.dim(kind), "config": cfg}

        items = self.items
        from mirage.featstore.items import labelled_mask

        labelled = labelled_mask(items["label"]) if "label" in items else np.zeros(len(items), dtype=bool)
        return {
            "path": self.url,
            "format": self.format,
            "kind": meta.get("kind", "features"),
            "corpus": meta.get("corpus"),
            "n_items": self.n_items,
            "n_skipped": len(self.skipped),
            "speakers": int(items["speaker"].nunique()) if "speaker" in items else 0,
            "labels": {str(k): int(v) for k, v in items["label"][labelled].value_counts().sort_index().items()} if "label" in items else {},
            "n_unlabelled": int((~labelled).sum()),
            "views": sorted(set(items["aug_type"].astype(str))) if "aug_type" in items else ["clean"],
            "view_specs": list(dict.fromkeys(items["view"].astype(str))) if "view" in items else ["clean"],
            "n_source_items": int(items["source_utt_id"].nunique()) if "source_utt_id" in items else self.n_items,
            "splits": {str(k): int(v) for k, v in items["split"].value_counts().sort_index().items()} if "split" in items else {},
            "audio": _arr("audio"),
            "text": _arr("text"),
            "arrays": {n: (self.dim(n) if len(self.row_shape(n)) < 2 else list(self.row_shape(n))) for n in self.array_names},
            "audio_layers": _layers_info(self, extractors.get("audio")),
            "chunk_rows": self.chunk_rows,
            "content_hash": meta.get("content_hash"),
            "schema_version": meta.get("schema_version"),
            "tool_version": meta.get("tool_version"),
            "skipped": self.skipped.to_dict(orient="records"),
        }

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeatureStore({self.url!r}, format={self.format}, n_items={self.n_items}, arrays={self.array_names})"


def _layers_info(store: FeatureStore, cfg: dict | None) -> dict | None:
    """Every hidden state kept (``--audio-layer all``): their count, width and which is ``audio``."""
    if not store.has("audio_layers"):
        return None
    n_states, dim = store.row_shape("audio_layers")
    return {"n_layers": n_states, "dim": dim, "default_layer": (cfg or {}).get("default_layer")}


# Re-exported: they lived here before the split (imports elsewhere keep working).
from mirage.featstore.store.content_hash import (  # noqa: E402,F401
    CONTENT_HASH_VERSION, IDENTITY_COLUMNS, compute_content_hash, finish_content_hash, identity_digest,
)
from mirage.featstore.store.verify import verify_store  # noqa: E402,F401
