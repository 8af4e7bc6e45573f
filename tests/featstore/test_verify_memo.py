"""Each open store checksums a chunk file the first time it reads it and again whenever the
file's stat changes; files written moments ago are always rechecked (a write within the
filesystem's timestamp granularity would not show in the stat)."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

from mirage.featstore.errors import StoreCorruptError
from mirage.featstore.store import base, open_store, write_store


def _store(tmp_path, fmt="zarr"):
    n = 70
    items = pd.DataFrame({"utt_id": [f"u{i:03d}" for i in range(n)], "path": "", "speaker": "s", "label": "a",
                          "split": "train", "duration_s": 1.0, "text": ""})
    arrays = {"audio": np.arange(n * 8, dtype=np.float32).reshape(n, 8)}
    url = str(tmp_path / ("s.zarr" if fmt == "zarr" else "s.h5"))
    write_store(url, items=items, arrays=arrays, metadata={}, format=fmt, chunk_rows=16).close()
    return url, arrays["audio"]


@pytest.fixture
def count_checksums(monkeypatch):
    calls = []
    real = base.chunk_checksum

    def counting(values, algorithm=base.CHECKSUM_ALGORITHM):
        calls.append(len(values))
        return real(values, algorithm)

    monkeypatch.setattr(base, "chunk_checksum", counting)
    return calls


def _age(url):
    """Chunk files as if written long ago (mtime; ctime cannot be set, so the clock is moved on)."""
    past = time.time() - 3600
    for root, _, files in os.walk(os.path.join(url, "audio")):
        for f in files:
            os.utime(os.path.join(root, f), (past, past))


def test_unchanged_old_chunks_are_checked_once_per_open_store(tmp_path, count_checksums, monkeypatch):
    url, audio = _store(tmp_path)
    _age(url)
    real_ns = time.time_ns
    monkeypatch.setattr(base.time, "time_ns", lambda: real_ns() + 10 * base.VERIFIED_SETTLE_NS)
    with open_store(url) as s:
        np.testing.assert_array_equal(s.read("audio"), audio)
        assert len(count_checksums) == 5  # 70 rows in chunks of 16
        np.testing.assert_array_equal(s.read("audio"), audio)
        assert len(count_checksums) == 5  # memoised: the files did not change
        path = os.path.join(url, "audio", "c", "2", "0")
        with open(path, "r+b") as fh:  # altered in place: a new mtime/ctime, so checked again
            fh.seek(3)
            fh.write(b"\x7f")
        with pytest.raises(StoreCorruptError, match="chunk 2"):
            s.read("audio")
    with open_store(url) as s:  # a new store object starts with no memo
        before = len(count_checksums)
        s.read_rows("audio", 0, 16)
        assert len(count_checksums) == before + 1


def test_recently_written_chunks_are_checked_on_every_read(tmp_path, count_checksums):
    url, audio = _store(tmp_path)
    before = len(count_checksums)
    with open_store(url) as s:
        s.read("audio")
        s.read("audio")
    assert len(count_checksums) - before == 10


def test_hdf5_chunks_are_checked_on_every_read(tmp_path, count_checksums):
    url, audio = _store(tmp_path, "hdf5")
    before = len(count_checksums)  # writing an HDF5 store reads its staged chunks through the checks
    with open_store(url) as s:
        s.read("audio")
        s.read("audio")
    assert len(count_checksums) - before == 10


def test_verify_always_rechecks(tmp_path, monkeypatch):
    url, _ = _store(tmp_path)
    _age(url)
    real_ns = time.time_ns
    monkeypatch.setattr(base.time, "time_ns", lambda: real_ns() + 10 * base.VERIFIED_SETTLE_NS)
    with open_store(url) as s:
        s.read("audio")
        path = os.path.join(url, "audio", "c", "1", "0")
        st = os.stat(path)
        with open(path, "r+b") as fh:
            fh.seek(0)
            fh.write(b"\x01\x02")
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with its mtime put back
        assert any("chunk 1" in p for p in s.check_chunks("audio"))
