"""HDF5 backend: one ``.h5`` file with the arrays, the item tables as Parquet blobs and the
metadata as a JSON attribute. Written in one go from a finished Zarr staging store and
renamed into place, so an interrupted extraction never leaves a broken HDF5 file."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from typing import Any

import numpy as np

from mirage.featstore.store.location import Location, filesystem, is_object_store, is_remote

BLOB_PREFIX = "_blob_"


class Hdf5Backend:
    format = "hdf5"

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        import h5py

        self.url = url
        self._fh = None
        try:
            if is_remote(url):
                fs, path = filesystem(url, storage_options)
                self._fh = fs.open(path, "rb")
                self.file = h5py.File(self._fh, "r")
            else:
                self.file = h5py.File(url, "r")
        except OSError as exc:
            if self._fh is not None:
                self._fh.close()
            if isinstance(exc, (FileNotFoundError, PermissionError)) or (is_remote(url) and not _is_format_error(exc)):
                raise
            raise _not_hdf5(url, exc) from None

    def attrs(self) -> dict[str, Any]:
        from mirage.featstore.errors import StoreCorruptError, StoreNotFoundError

        try:
            raw = self.file.attrs["mirage"]
        except KeyError:
            raise StoreNotFoundError(f"{self.url}: expected a feature store, got an HDF5 file without mirage metadata; "
                                     "pass the path of a store written by `featstore extract`") from None
        except OSError as exc:
            raise StoreCorruptError(f"{self.url}: the HDF5 file cannot be read ({_first_line(exc)}); it is damaged — "
                                    "re-extract the store") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise StoreCorruptError(f"{self.url}: expected JSON metadata in the HDF5 file, got unreadable content; "
                                    "re-extract the store") from None

    def array_names(self) -> list[str]:
        return sorted(k for k in self.file.keys() if not k.startswith(BLOB_PREFIX))

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.file[name].shape)

    def chunk_rows(self) -> int:
        chunks = self.file["status"].chunks
        return int(chunks[0]) if chunks else int(self.file["status"].shape[0])

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        return self.file[name][start:stop]

    def read_blob(self, name: str) -> bytes | None:
        key = BLOB_PREFIX + name
        return self.file[key][()].tobytes() if key in self.file else None

    def close(self) -> None:
        self.file.close()
        if self._fh is not None:
            self._fh.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def _is_format_error(exc: OSError) -> bool:
    text = str(exc).lower()
    return "signature" in text or "truncated" in text or "unable to" in text


def _not_hdf5(url: str, exc: OSError):
    """The typed error for a file h5py cannot open: not HDF5 at all, or a damaged one."""
    from mirage.featstore.errors import StoreCorruptError, StoreNotFoundError

    if "signature" in str(exc).lower():
        return StoreNotFoundError(f"{url}: expected a feature store (a .zarr folder or an HDF5 file), got a file that "
                                  "is neither; pass the path of a store written by `featstore extract`")
    return StoreCorruptError(f"{url}: the HDF5 file cannot be opened ({_first_line(exc)}); it is truncated or damaged — "
                             "re-extract the store")


def write_hdf5_from(source, url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Copy a finished store (any backend, as a FeatureStore) into an HDF5 file at ``url``."""
    import h5py

    loc_dir = os.path.dirname(url) if not is_remote(url) else None
    fd, tmp = tempfile.mkstemp(suffix=".h5.tmp", dir=loc_dir or None)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["mirage"] = json.dumps({**source.metadata, "format": "hdf5"}, sort_keys=True)
            backend = source._backend
            rows = backend.chunk_rows()
            for name in backend.array_names():
                shape = backend.shape(name)
                chunks = (min(rows, max(1, shape[0])), *shape[1:])
                ds = f.create_dataset(name, shape=shape, dtype=backend.read(name, 0, 0).dtype, chunks=chunks if shape[0] else None)
                for start in range(0, shape[0], rows):
                    # through the store: chunks are checked against their checksums on the way
                    ds[start : start + rows] = source.read_rows(name, start, min(shape[0], start + rows))
            for blob in ("items", "skipped", "checksums"):
                data = backend.read_blob(blob)
                if data is not None:
                    f.create_dataset(BLOB_PREFIX + blob, data=np.frombuffer(data, dtype=np.uint8))
        if is_remote(url):
            fs, path = filesystem(url, storage_options)
            if is_object_store(url):  # an upload becomes visible whole, never half-written
                fs.put_file(tmp, path)
            else:
                part = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
                fs.put(tmp, part)
                fs.mv(part, path)
        else:
            os.replace(tmp, url)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def is_hdf5(loc: Location) -> bool:
    return loc.fs.isfile(loc.path)
