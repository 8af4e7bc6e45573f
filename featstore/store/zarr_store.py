"""Zarr v3 backend: a folder (local or fsspec URL) holding the arrays, ``mirage.json``
(the metadata, written atomically), ``items.parquet`` and ``skipped.parquet``."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from mirage.featstore.store.location import Location, fs_options, is_remote

META_NAME = "mirage.json"
BLOB_NAMES = {"items": "items.parquet", "skipped": "skipped.parquet", "plan": "plan.parquet",
              "checksums": "checksums.json"}


def zarr_store(url: str, storage_options: dict[str, Any] | None, *, read_only: bool):
    import zarr

    if is_remote(url):
        return zarr.storage.FsspecStore.from_url(url, storage_options=fs_options(url, storage_options) or None, read_only=read_only)
    return zarr.storage.LocalStore(url, read_only=read_only)


def compressors():
    # None: float32 embeddings shrink ~5% under blosc/lz4, while decoding halves read speed.
    return None


class ZarrBackend:
    format = "zarr"

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None, *, read_only: bool = True):
        import zarr

        self.loc = Location(url, storage_options)
        self.group = zarr.open_group(zarr_store(self.loc.url, storage_options, read_only=read_only), mode="r" if read_only else "r+")
        self._arrays: dict[str, Any] = {}
        self._attrs: dict[str, Any] | None = None
        #: per array: (folder, encode_chunk_key, chunk_rows, row shape, dtype) for direct chunk-file reads, or None
        self._direct: dict[str, Any] = {}
        self._read_only = read_only

    @staticmethod
    def is_store(loc: Location) -> bool:
        return loc.exists(META_NAME)

    def attrs(self) -> dict[str, Any]:
        if self._attrs is None:
            self._attrs = json.loads(self.loc.read_bytes(META_NAME))
        return self._attrs

    def _array(self, name: str):
        if name not in self._arrays:
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    def array_names(self) -> list[str]:
        # From our metadata, not a listing: zarr warns about every non-zarr file it lists.
        return sorted([*self.attrs().get("arrays", {}), "status"])

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._array(name).shape)

    def chunk_rows(self) -> int:
        return int(self._array("status").chunks[0])

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        direct = self._direct_layout(name)
        if direct is not None:
            out = _read_raw_chunks(direct, start, stop)
            if out is not None:
                return out
        return np.asarray(self._array(name)[start:stop])

    def read_mapped(self, name: str, start: int, stop: int):
        """(chunk, read-only view) per chunk file of rows [start, stop), memory-mapped; None when
        the array is not read directly or a chunk file is missing (see featstore.store.mapped)."""
        direct = self._direct_layout(name)
        if direct is None:
            return None
        from mirage.featstore.store.mapped import map_raw_chunks

        return map_raw_chunks(direct, start, stop)

    def _direct_layout(self, name: str):
        """How to read ``name``'s chunk files straight into one buffer, when that is what zarr would
        do anyway: a local, read-only store, chunks of whole rows, the plain little-endian bytes
        codec (no compressor, filter or sharding). Otherwise None (zarr reads it)."""
        if name in self._direct:
            return self._direct[name]
        layout = None
        if self._read_only and not is_remote(self.loc.url):
            try:
                from zarr.codecs import BytesCodec

                arr = self._array(name)
                meta = arr.metadata
                codecs = tuple(getattr(meta, "codecs", ()))
                dtype = np.dtype(arr.dtype)
                if (getattr(meta, "zarr_format", None) == 3 and len(codecs) == 1 and isinstance(codecs[0], BytesCodec)
                        and (dtype.itemsize == 1 or str(getattr(codecs[0].endian, "value", codecs[0].endian)) == "little")
                        and dtype.kind in "fiub" and tuple(arr.chunks[1:]) == tuple(arr.shape[1:]) and arr.chunks[0] > 0):
                    folder = os.path.join(self.loc.url, name)
                    layout = (folder, meta.encode_chunk_key, int(arr.chunks[0]), tuple(arr.shape), dtype.newbyteorder("<"))
            except Exception:  # noqa: BLE001 — any surprise: let zarr read it
                layout = None
        self._direct[name] = layout
        return layout

    def chunk_stamp(self, name: str, chunk: int) -> tuple[int, int, int, int] | None:
        """(inode, size, mtime_ns, ctime_ns) of a chunk file read directly, else None: what the
        store's verified-chunk memo is keyed by (a changed file is checked again)."""
        layout = self._direct_layout(name)
        if layout is None:
            return None
        folder, encode_key, _, shape, _ = layout
        path = os.path.join(folder, *encode_key((int(chunk), *(0,) * (len(shape) - 1))).split("/"))
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def read_blob(self, name: str) -> bytes | None:
        try:
            return self.loc.read_bytes(BLOB_NAMES[name])
        except FileNotFoundError:
            return None

    def close(self) -> None:
        self._arrays.clear()


def _read_raw_chunks(layout, start: int, stop: int) -> np.ndarray | None:
    """Rows [start, stop) read from the chunk files into one array (each file opened once,
    only the rows wanted read, no intermediate copies); None when a chunk file is missing
    (zarr then returns its fill value). A chunk file of the wrong size raises ValueError, as
    zarr's own decode does."""
    folder, encode_key, chunk, shape, dtype = layout
    n = shape[0]
    start, stop = max(0, int(start)), min(n, int(stop))
    row_shape = shape[1:]
    row_bytes = dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
    out = np.empty((max(0, stop - start), *row_shape), dtype=dtype)
    if stop <= start:
        return out
    view = memoryview(out.reshape(-1).view(np.uint8))
    zeros = (0,) * len(row_shape)
    chunk_bytes = chunk * row_bytes
    for c in range(start // chunk, -(-stop // chunk)):
        a, b = max(start, c * chunk), min(stop, (c + 1) * chunk)
        path = os.path.join(folder, *encode_key((c, *zeros)).split("/"))
        try:
            fh = open(path, "rb", buffering=0)
        except FileNotFoundError:
            return None
        with fh:
            if os.fstat(fh.fileno()).st_size != chunk_bytes:
                raise ValueError(f"chunk file {path}: expected {chunk_bytes} bytes, got {os.fstat(fh.fileno()).st_size}")
            if a != c * chunk:
                fh.seek((a - c * chunk) * row_bytes)
            dst = view[(a - start) * row_bytes:(b - start) * row_bytes]
            got = 0
            while got < len(dst):
                k = fh.readinto(dst[got:])
                if not k:
                    raise ValueError(f"chunk file {path}: ended early")
                got += k
    return out
