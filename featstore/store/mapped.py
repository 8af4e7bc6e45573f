"""Rows of a local Zarr store as views over memory-mapped chunk files (no read copy).

A streaming reader that gathers rows from a block anyway (the training loader's shuffle
buffer) gains nothing from first copying the block out of the page cache: reading it costs
as much CPU as the gather itself. :class:`MappedRows` holds read-only views over the chunk
files of rows ``[start, stop)`` and gathers straight from them (``take``), so each row is
copied once, into its batch. Integrity is unchanged: :meth:`FeatureStore.read_rows_mapped`
checks every chunk against its checksum (with the same memo) before handing the rows out.

Only local, read-only stores with plain little-endian uncompressed chunks of whole rows are
mapped (what :meth:`ZarrBackend._direct_layout` already reads directly); anything else, or
``MIRAGE_MMAP_READS=0``, reads as before. A chunk file must not be truncated while it is
mapped (the stores are immutable once complete; a rewrite replaces files, which leaves the
mapping on the old, consistent data).
"""

from __future__ import annotations

import mmap
import os
import time

import numpy as np


def mmap_reads_enabled() -> bool:
    """Whether streaming readers may map chunk files (``MIRAGE_MMAP_READS=0`` turns it off)."""
    return os.environ.get("MIRAGE_MMAP_READS", "1").strip().lower() not in ("0", "false", "no", "off")


class MappedRows:
    """Consecutive row ranges (``parts``, each an ndarray view) read as one block of rows."""

    def __init__(self, parts: list[np.ndarray]):
        if not parts:
            raise ValueError("expected at least one part")
        self.parts = parts
        self.bounds = np.cumsum([0] + [len(p) for p in parts])
        self.shape = (int(self.bounds[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def reshape(self, n: int, width: int = -1) -> "MappedRows":
        """Rows flattened to ``width`` values each (``reshape(len(block), -1)``, as for arrays)."""
        if n != len(self):
            raise ValueError(f"expected {len(self)} rows, got {n}")
        return MappedRows([p.reshape(len(p), width) for p in self.parts])

    def take(self, idx: np.ndarray, out: np.ndarray, *, ascending: bool = False) -> np.ndarray:
        """Rows ``idx`` into ``out``; ``ascending`` promises sorted ``idx`` (the shuffle buffer's)."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(self.parts) == 1:
            return np.take(self.parts[0], idx, axis=0, out=out, mode="clip")
        if not ascending and len(idx) > 1 and np.any(idx[1:] < idx[:-1]):
            order = np.argsort(idx, kind="stable")
            tmp = np.empty_like(out)
            self.take(idx[order], tmp)
            out[order] = tmp
            return out
        cuts = np.searchsorted(idx, self.bounds)
        for k, part in enumerate(self.parts):
            a, b = int(cuts[k]), int(cuts[k + 1])
            if b > a:
                np.take(part, idx[a:b] - self.bounds[k], axis=0, out=out[a:b], mode="clip")
        return out

    def gather(self, idx: np.ndarray | None = None) -> np.ndarray:
        """A private float array of rows ``idx`` (all rows when None): one copy out of the mapping."""
        if idx is None:
            return np.concatenate(self.parts, axis=0) if len(self.parts) > 1 else np.array(self.parts[0])
        out = np.empty((len(idx), *self.shape[1:]), dtype=self.dtype)
        return self.take(idx, out)

    def __array__(self, dtype=None, copy=None):
        a = self.gather()
        return a if dtype is None else a.astype(dtype, copy=False)


def map_chunk(path: str, chunk_bytes: int, dtype: np.dtype, chunk_shape: tuple[int, ...]) -> np.ndarray | None:
    """A read-only view over one chunk file; None when it is missing (zarr's fill value).
    A file of the wrong size raises ValueError, as the direct read and zarr's decode do."""
    try:
        fh = open(path, "rb", buffering=0)
    except FileNotFoundError:
        return None
    with fh:
        size = os.fstat(fh.fileno()).st_size
        if size != chunk_bytes:
            raise ValueError(f"chunk file {path}: expected {chunk_bytes} bytes, got {size}")
        if hasattr(mmap, "MAP_POPULATE"):  # Linux: page tables filled here, on the read thread, not by the gather
            m = mmap.mmap(fh.fileno(), 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)
        else:
            m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(m, dtype=dtype).reshape(chunk_shape)  # the array keeps the mapping alive


def map_raw_chunks(layout, start: int, stop: int) -> list[tuple[int, np.ndarray]] | None:
    """(chunk index, view of that chunk's rows within [start, stop)) for every chunk touched;
    None when a chunk file is missing. ``layout`` as :meth:`ZarrBackend._direct_layout` makes it."""
    folder, encode_key, chunk, shape, dtype = layout
    n = shape[0]
    start, stop = max(0, int(start)), min(n, int(stop))
    row_shape = tuple(shape[1:])
    chunk_bytes = chunk * dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    zeros = (0,) * len(row_shape)
    parts = []
    for c in range(start // chunk, -(-stop // chunk)):
        a, b = max(start, c * chunk), min(stop, (c + 1) * chunk)
        view = map_chunk(os.path.join(folder, *encode_key((c, *zeros)).split("/")), chunk_bytes, dtype,
                         (chunk, *row_shape))
        if view is None:
            return None
        parts.append((c, view[a - c * chunk: b - c * chunk]))
    return parts


def read_rows_mapped(store, name: str, start: int, stop: int, *, verify: bool = True):
    """:meth:`FeatureStore.read_rows_mapped` (``store``): map, check each chunk, slice."""
    n = store.n_rows
    start, stop = max(0, int(start)), min(n, int(stop))
    mapper = getattr(store._backend, "read_mapped", None)
    checks = store._checksums if verify else None
    if (mapper is None or start >= stop or not mmap_reads_enabled()
            or (checks is not None and (checks[0] != store.chunk_rows or name not in checks[1]))):
        return store._read(name, start, stop)
    rows = store.chunk_rows
    c0, c1 = start // rows, -(-stop // rows)
    hi = min(n, c1 * rows)
    stamp_of = getattr(store._backend, "chunk_stamp", None)
    stamps = [stamp_of(name, c) if stamp_of else None for c in range(c0, c1)]  # before the mapping
    try:
        parts = mapper(name, c0 * rows, hi)
    except (ValueError, OSError):
        parts = None
    if parts is None:  # a missing or odd chunk file: the plain read says what is wrong
        return store._read(name, start, stop)
    if checks is not None:
        now = time.time_ns()
        for (c, view), stamp in zip(parts, stamps):
            store._check_chunk(name, c, view, checks[1][name][c], stamp, now)
    views = [view for _, view in parts]
    views[-1] = views[-1][: len(views[-1]) - (hi - stop)]
    views[0] = views[0][start - c0 * rows:]
    return MappedRows([v for v in views if len(v)])
