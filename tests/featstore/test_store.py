"""Store conformance: every backend passes the same class (zarr-python's habit)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from mirage.featstore.errors import (
    StoreCorruptError, StoreExistsError, StoreIncompleteError, StoreLockedError, StoreNotFoundError,
)
from mirage.featstore.store import StoreWriter, open_store, verify, verify_store, write_store
from mirage.featstore.store.base import STATUS_OK, STATUS_SKIPPED, auto_chunk_rows


def make_items(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "utt_id": [f"u{i:04d}" for i in range(n)], "path": [f"/x/{i}.wav" for i in range(n)],
        "speaker": [f"s{i % 3}" for i in range(n)], "label": [["angry", "sad"][i % 2] for i in range(n)],
        "split": "train", "duration_s": 1.0, "text": "",
    })


def make_arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"audio": rng.normal(size=(n, 12)).astype("f4"), "text": rng.normal(size=(n, 5)).astype("f4"),
            "score": rng.random(n).astype("f4")}


class StoreConformance:
    format = ""
    suffix = ""

    def url(self, tmp_path, name="s"):
        return str(tmp_path / f"{name}{self.suffix}")

    def test_roundtrip(self, tmp_path):
        items, arrays = make_items(70), make_arrays(70)
        s = write_store(self.url(tmp_path), items=items, arrays=arrays, metadata={"kind": "test"}, format=self.format, chunk_rows=16)
        s = open_store(s.url)
        assert s.format == self.format and s.n_items == 70 and s.chunk_rows == 16
        assert s.array_names == ["audio", "score", "text"] and s.dim("audio") == 12 and s.dim("score") is None
        for name, arr in arrays.items():
            np.testing.assert_array_equal(s.read(name), arr)
        np.testing.assert_array_equal(s.read_rows("audio", 16, 32), arrays["audio"][16:32])
        np.testing.assert_array_equal(s.read("audio", rows=np.array([3, 40, 5])), arrays["audio"][[3, 40, 5]])
        assert s.items["utt_id"].tolist() == items["utt_id"].tolist()
        assert verify_store(s) == []
        info = s.info()
        assert info["n_items"] == 70 and info["speakers"] == 3 and info["labels"] == {"angry": 35, "sad": 35}

    def test_content_hash_ignores_order_and_chunking(self, tmp_path):
        items, arrays = make_items(50), make_arrays(50)
        a = write_store(self.url(tmp_path, "a"), items=items, arrays=arrays, metadata={}, format=self.format, chunk_rows=16)
        perm = np.random.default_rng(1).permutation(50)
        b = write_store(self.url(tmp_path, "b"), items=items.iloc[perm], arrays={k: v[perm] for k, v in arrays.items()},
                        metadata={}, format=self.format, chunk_rows=32)
        assert a.content_hash() == b.content_hash() == a.metadata["content_hash"]
        arrays["audio"][7, 3] += 1e-3
        c = write_store(self.url(tmp_path, "c"), items=items, arrays=arrays, metadata={}, format=self.format, chunk_rows=16)
        assert c.content_hash() != a.content_hash()

    def test_same_input_same_bytes(self, tmp_path):
        items, arrays = make_items(40), make_arrays(40)
        urls = [self.url(tmp_path, n) for n in ("x", "y")]
        for u in urls:
            write_store(u, items=items, arrays=arrays, metadata={"kind": "test"}, format=self.format)

        def digest(path):
            if os.path.isfile(path):
                import h5py

                with h5py.File(path) as f:
                    return {k: f[k][()].tobytes() for k in f}, f.attrs["mirage"]
            return {os.path.relpath(os.path.join(r, f), path): open(os.path.join(r, f), "rb").read()
                    for r, _, fs in os.walk(path) for f in fs}
        assert digest(urls[0]) == digest(urls[1])

    def test_skipped_rows_are_not_items(self, tmp_path):
        items = make_items(20)
        with StoreWriter(self.url(tmp_path), plan=items, arrays={"audio": 4}, metadata={}, format=self.format, chunk_rows=16) as w:
            for start, stop in w.pending_units():
                status = np.full(stop - start, STATUS_OK, dtype=np.uint8)
                skipped = []
                if start == 0:
                    status[2] = STATUS_SKIPPED
                    skipped = [{"utt_id": "u0002", "path": "/x/2.wav", "reason": "silent", "message": "peak below"}]
                w.write_unit(start, stop, {"audio": np.ones((stop - start, 4))}, status, skipped)
            s = w.finalize()
        assert s.n_items == 19 and "u0002" not in set(s.items["utt_id"])
        assert s.skipped.to_dict(orient="records")[0]["reason"] == "silent"
        assert verify_store(s) == [] and s.info()["n_skipped"] == 1

    def test_resume_after_interruption(self, tmp_path):
        items, arrays = make_items(64), make_arrays(64)
        url = self.url(tmp_path)
        kw = dict(plan=items, arrays={"audio": 12}, metadata={"extractors": {"audio": {"x": 1}}}, format=self.format, chunk_rows=16)
        with StoreWriter(url, **kw) as w:
            s, e = w.pending_units()[1]
            w.write_unit(s, e, {"audio": arrays["audio"][s:e]}, np.full(e - s, STATUS_OK))
        with pytest.raises(StoreIncompleteError):
            open_store(url)
        report = verify(url)
        assert report["state"] == "incomplete" and report["rows_written"] == 16 and report["problems"] == []
        with StoreWriter(url, **kw) as w:
            pending = w.pending_units()
            assert (16, 32) not in pending and len(pending) == 3
            for s, e in pending:
                w.write_unit(s, e, {"audio": arrays["audio"][s:e]}, np.full(e - s, STATUS_OK))
            store = w.finalize()
        np.testing.assert_array_equal(store.read("audio"), arrays["audio"])
        full = write_store(self.url(tmp_path, "full"), items=items, arrays={"audio": arrays["audio"]}, metadata={}, format=self.format)
        assert store.content_hash() == full.content_hash()

    def test_other_settings_refused_without_overwrite(self, tmp_path):
        url = self.url(tmp_path)
        write_store(url, items=make_items(10), arrays=make_arrays(10), metadata={}, format=self.format, overwrite=False)
        with pytest.raises(StoreExistsError, match="--overwrite"):
            write_store(url, items=make_items(11), arrays=make_arrays(11), metadata={}, format=self.format, overwrite=False)
        s = write_store(url, items=make_items(11), arrays=make_arrays(11), metadata={}, format=self.format, overwrite=True)
        assert s.n_items == 11

    def test_second_writer_refused(self, tmp_path):
        kw = dict(plan=make_items(10), arrays={"audio": 3}, metadata={}, format=self.format)
        with StoreWriter(self.url(tmp_path), **kw):
            with pytest.raises(StoreLockedError, match="being written by process"):
                StoreWriter(self.url(tmp_path), **kw).open()

    def test_lock_of_dead_process_is_taken_over(self, tmp_path):
        kw = dict(plan=make_items(10), arrays={"audio": 3}, metadata={}, format=self.format)
        w = StoreWriter(self.url(tmp_path), **kw)
        w.open()
        lock = w.staging.child(".lock")
        data = json.loads(open(lock).read())
        data["pid"] = 2**22 + 12345  # no such process
        open(lock, "w").write(json.dumps(data))
        w.lock.held = False
        with StoreWriter(self.url(tmp_path), **kw) as w2:
            assert len(w2.pending_units()) == 1

    def test_missing_store(self, tmp_path):
        with pytest.raises(StoreNotFoundError, match="featstore extract"):
            open_store(self.url(tmp_path, "nope"))


class TestZarr(StoreConformance):
    format, suffix = "zarr", ".zarr"


class TestHdf5(StoreConformance):
    format, suffix = "hdf5", ".h5"

    def test_no_half_written_file(self, tmp_path):
        url = self.url(tmp_path)
        with StoreWriter(url, plan=make_items(40), arrays={"audio": 3}, metadata={}, format="hdf5", chunk_rows=16) as w:
            w.write_unit(0, 16, {"audio": np.ones((16, 3))}, np.full(16, STATUS_OK))
        assert not os.path.exists(url)  # staged as zarr until complete
        assert os.path.isdir(url + ".partial.zarr")


def test_auto_chunk_rows_scales():
    assert auto_chunk_rows(100_000, 768 * 4) == 1024
    assert auto_chunk_rows(535, 768 * 4) == 64
    assert auto_chunk_rows(10, 4) == 16


# -- integrity: every read checks the chunks it touches --------------------------------------

def _chunk_span(url: str, name: str, chunk: int) -> tuple[str, int, int]:
    """(file, byte offset, byte size) of one chunk of ``name`` in a Zarr folder or HDF5 file."""
    if os.path.isdir(url):
        import zarr

        ndim = zarr.open_array(os.path.join(url, name), mode="r").ndim
        path = os.path.join(url, name, "c", str(chunk), *(["0"] * (ndim - 1)))
        return path, 0, os.path.getsize(path)
    import h5py

    with h5py.File(url, "r") as f:
        ds = f[name]
        info = ds.id.get_chunk_info_by_coord((chunk * ds.chunks[0],) + (0,) * (ds.ndim - 1))
        return url, int(info.byte_offset), int(info.size)


def _flip_byte(url, name, chunk):
    path, off, size = _chunk_span(url, name, chunk)
    with open(path, "r+b") as fh:
        fh.seek(off + size // 2)
        b = fh.read(1)
        fh.seek(off + size // 2)
        fh.write(bytes([b[0] ^ 0x40]))


def _zero_chunk(url, name, chunk):
    """Zarr: delete the chunk file (zarr then returns the fill value). HDF5: zero its bytes."""
    path, off, size = _chunk_span(url, name, chunk)
    if os.path.isdir(url):
        os.remove(path)
        return
    with open(path, "r+b") as fh:
        fh.seek(off)
        fh.write(b"\0" * size)


def _truncate_chunk(url, name, chunk):
    path, off, size = _chunk_span(url, name, chunk)
    with open(path, "r+b") as fh:
        fh.truncate(off + size // 2)


def _readers(s):
    """Every way of reading an array of a store: each must refuse a damaged chunk."""
    return {
        "read_rows": lambda: s.read_rows("audio", 0, s.n_rows),
        "read_rows_inside_chunk": lambda: s.read_rows("audio", 20, 21),
        "read": lambda: s.read("audio"),
        "read_rows_ids": lambda: s.read("audio", rows=np.array([30, 2])),
        "iter_blocks": lambda: [b for _, _, b in s.iter_blocks("audio")],
        "content_hash": lambda: s.content_hash(),
    }


class CorruptionConformance:
    """Flip a byte, truncate, delete a chunk: every reader refuses in one line naming store, array and chunk."""

    format = ""
    suffix = ""

    def _store(self, tmp_path, n=70):
        url = str(tmp_path / f"s{self.suffix}")
        write_store(url, items=make_items(n), arrays=make_arrays(n), metadata={"kind": "test"}, format=self.format,
                    chunk_rows=16)
        return url

    def _assert_refused(self, url, chunk=1, array="audio"):
        with open_store(url) as s:
            assert s.verified
            for what, read in _readers(s).items():
                with pytest.raises(StoreCorruptError) as e:
                    read()
                msg = str(e.value)
                assert "\n" not in msg, what
                assert url in msg and f"array {array}" in msg and f"chunk {chunk}" in msg, (what, msg)
                assert "featstore verify" in msg and "re-extract" in msg
            report = verify(url)
            assert any(f"array {array}: chunk {chunk}" in p for p in report["problems"]), report

    def test_clean_store_is_verified_and_healthy(self, tmp_path):
        url = self._store(tmp_path)
        with open_store(url) as s:
            assert s.verified and s.metadata["checksums"] == "crc32c"
            for read in _readers(s).values():
                read()
            np.testing.assert_array_equal(s.read_rows("audio", 20, 21), make_arrays(70)["audio"][20:21])
            np.testing.assert_array_equal(s.read("audio", rows=np.array([69, 0])), make_arrays(70)["audio"][[69, 0]])
        assert verify(url)["problems"] == []

    def test_flipped_byte(self, tmp_path):
        url = self._store(tmp_path)
        _flip_byte(url, "audio", 1)
        self._assert_refused(url)

    def test_deleted_chunk(self, tmp_path):
        url = self._store(tmp_path)
        _zero_chunk(url, "audio", 1)
        self._assert_refused(url)

    def test_untouched_chunks_still_read(self, tmp_path):
        url = self._store(tmp_path)
        _flip_byte(url, "audio", 3)
        with open_store(url) as s:
            np.testing.assert_array_equal(s.read_rows("audio", 0, 32), make_arrays(70)["audio"][:32])
            with pytest.raises(StoreCorruptError, match="chunk 3"):
                s.read_rows("audio", 60, 61)

    def test_damaged_status_chunk(self, tmp_path):
        url = self._store(tmp_path)
        _flip_byte(url, "status", 0)
        with open_store(url) as s, pytest.raises(StoreCorruptError, match="array status, chunk 0"):
            s.read_rows("status", 0, s.n_rows)
        assert any("array status: chunk 0" in p for p in verify(url)["problems"])

    def test_same_content_same_hash_as_before(self, tmp_path):
        items, arrays = make_items(40), make_arrays(40)
        s = write_store(str(tmp_path / f"h{self.suffix}"), items=items, arrays=arrays, metadata={}, format=self.format)
        assert s.metadata["content_hash"] == s.content_hash()


class TestZarrCorruption(CorruptionConformance):
    format, suffix = "zarr", ".zarr"

    def test_truncated_chunk(self, tmp_path):
        url = self._store(tmp_path)
        _truncate_chunk(url, "audio", 1)
        self._assert_refused(url)

    def test_store_without_checksums_reads_unverified(self, tmp_path):
        """Stores written before checksums existed: read as before; a truncated chunk is still one line."""
        url = self._store(tmp_path)
        meta = json.loads(open(os.path.join(url, "mirage.json")).read())
        del meta["checksums"]
        open(os.path.join(url, "mirage.json"), "w").write(json.dumps(meta))
        os.remove(os.path.join(url, "checksums.json"))
        with open_store(url) as s:
            assert not s.verified
            np.testing.assert_array_equal(s.read("audio"), make_arrays(70)["audio"])
        assert verify(url)["problems"] == []
        _truncate_chunk(url, "audio", 2)
        with open_store(url) as s, pytest.raises(StoreCorruptError) as e:
            s.read("audio")
        assert "chunk 2" in str(e.value) and "\n" not in str(e.value)

    def test_missing_checksum_table(self, tmp_path):
        url = self._store(tmp_path)
        os.remove(os.path.join(url, "checksums.json"))
        with pytest.raises(StoreCorruptError, match="checksum table is missing"):
            open_store(url)


class TestHdf5Corruption(CorruptionConformance):
    format, suffix = "hdf5", ".h5"

    def test_truncated_file(self, tmp_path):
        url = self._store(tmp_path)
        _truncate_chunk(url, "audio", 1)
        with pytest.raises(StoreCorruptError) as e:
            with open_store(url) as s:
                s.read("audio")
        assert url in str(e.value) and "\n" not in str(e.value)

    def test_not_an_hdf5_file(self, tmp_path):
        path = tmp_path / "x.h5"
        path.write_bytes(b"not a store")
        with pytest.raises(StoreNotFoundError, match="expected a feature store"):
            open_store(str(path))


def test_write_store_hashes_from_memory_the_value_read_back(tmp_path):
    """write_store's in-memory content hash (content_hash_of) equals compute_content_hash of the
    written store: mixed utt_id lengths, unsorted ids, 1-D/2-D/3-D arrays, float64 input, both formats."""
    import pandas as pd

    from mirage.featstore.store import open_store, write_store
    from mirage.featstore.store.base import compute_content_hash
    from mirage.featstore.store.writer import content_hash_of

    rng = np.random.default_rng(0)
    for n in (1, 300):
        ids = [f"u{i}" * (1 + i % 3) for i in range(n)][::-1]
        items = pd.DataFrame({"utt_id": ids, "path": "", "speaker": "s", "label": "a", "split": "train",
                              "duration_s": 1.0, "text": ""})
        arrays = {"audio": rng.standard_normal((n, 13)), "mi": rng.standard_normal(n).astype(np.float32),
                  "lay": rng.standard_normal((n, 3, 5)).astype(np.float32)}
        for fmt in ("zarr", "hdf5"):
            url = str(tmp_path / f"s{n}.{fmt}")
            written = write_store(url, items=items, arrays=arrays, metadata={"corpus": "x"}, format=fmt, chunk_rows=64)
            assert written.metadata["content_hash"] == compute_content_hash(open_store(url)) == content_hash_of(ids, arrays, identity=items)


def test_stores_checksummed_with_zlib_crc32_stay_verified(tmp_path):
    """Stores written while checksums were zlib crc32 (before crc32c) keep being checked."""
    import json
    import zlib

    from mirage.featstore.store.base import chunk_checksum

    x = np.arange(64, dtype=np.float32).reshape(16, 4)
    assert chunk_checksum(x, "crc32") == zlib.crc32(x.tobytes()) & 0xFFFFFFFF
    assert chunk_checksum(x) != chunk_checksum(x, "crc32")
    url = str(tmp_path / "old.zarr")
    write_store(url, items=make_items(40), arrays=make_arrays(40), metadata={"corpus": "t"}, chunk_rows=16)
    store = open_store(url)
    table = {"algorithm": "crc32", "chunk_rows": 16, "arrays": {}}
    for name in [*store.array_names, "status"]:
        table["arrays"][name] = [chunk_checksum(store.read_rows(name, s, min(40, s + 16)), "crc32") for s in (0, 16, 32)]
    store.close()
    (tmp_path / "old.zarr" / "checksums.json").write_text(json.dumps(table))
    meta = json.loads((tmp_path / "old.zarr" / "mirage.json").read_text())
    (tmp_path / "old.zarr" / "mirage.json").write_text(json.dumps({**meta, "checksums": "crc32"}))
    old = open_store(url)
    assert old.verified and old.read("audio").shape[0] == 40
    old.close()
    _flip_byte(url, "audio", 1)
    with pytest.raises(StoreCorruptError, match="chunk 1"):
        open_store(url).read("audio")


def test_content_hash_covers_labels_and_speakers_and_old_stores_keep_their_version(tmp_path):
    import json

    from mirage.featstore.store.base import compute_content_hash

    items, arrays = make_items(40), make_arrays(40)
    a = write_store(str(tmp_path / "a.zarr"), items=items, arrays=arrays, metadata={"corpus": "t"})
    relabelled = items.copy()
    relabelled.loc[3, "label"] = "other" if relabelled.loc[3, "label"] != "other" else "else"
    b = write_store(str(tmp_path / "b.zarr"), items=relabelled, arrays=arrays, metadata={"corpus": "t"})
    moved = items.copy()
    moved.loc[5, "speaker"] = "nobody"
    c = write_store(str(tmp_path / "c.zarr"), items=moved, arrays=arrays, metadata={"corpus": "t"})
    assert len({a.content_hash(), b.content_hash(), c.content_hash()}) == 3
    assert a.metadata["content_hash"] == a.content_hash() and a.metadata["content_hash_version"] == 2
    # a store written before version 2 (no version recorded) is checked with the old hash
    meta_path = tmp_path / "a.zarr" / "mirage.json"
    meta = json.loads(meta_path.read_text())
    v1 = compute_content_hash(open_store(str(tmp_path / "a.zarr")), 1)
    meta.pop("content_hash_version")
    meta_path.write_text(json.dumps({**meta, "content_hash": v1}))
    old = open_store(str(tmp_path / "a.zarr"))
    assert old.content_hash() == v1 != a.metadata["content_hash"]
    assert verify_store(old) == []


def test_table_bytes_are_those_pandas_to_parquet_writes():
    """table_to_bytes converts on the calling thread, and writes the bytes df.to_parquet(index=False)
    writes: string/float/int/bool/list columns with NaN/None, a non-default index, an empty table, attrs."""
    import io

    import pandas as pd

    from mirage.featstore.store.base import table_from_bytes, table_to_bytes

    n = 700
    frames = [
        pd.DataFrame({"utt_id": [f"u{i}" for i in range(n)], "label": ["a", None] * (n // 2),
                      "duration_s": np.where(np.arange(n) % 7, np.arange(n) / 3.0, np.nan), "row": np.arange(n),
                      "ok": np.arange(n) % 2 == 0, "n_list": [[1, 2]] * n}, index=np.arange(n)[::-1] * 2),
        pd.DataFrame([], columns=["utt_id", "reason"]),
    ]
    with_attrs = frames[0].iloc[:5, :3].copy()
    with_attrs.attrs = {"source": "test"}
    frames.append(with_attrs)
    for df in frames:
        buf = io.BytesIO()
        df.reset_index(drop=True).to_parquet(buf, index=False)
        assert table_to_bytes(df) == buf.getvalue()
        pd.testing.assert_frame_equal(table_from_bytes(table_to_bytes(df)), df.reset_index(drop=True), check_dtype=False)
