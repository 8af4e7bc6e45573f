"""The streaming loader gathers rows from memory-mapped chunk files: the same batches, byte for
byte and in the same order per seed, as reading the blocks into memory; verification unchanged."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from mirage.featstore.errors import StoreCorruptError
from mirage.featstore.store import open_store, write_store
from mirage.featstore.store.mapped import MappedRows
from mirage.train.loaders import BlockStream, Source, clear_store_cache


def _store(tmp_path, n=203, dim=12, chunk_rows=16):
    items = pd.DataFrame({"utt_id": [f"u{i:04d}" for i in range(n)], "path": "", "speaker": "s", "label": "a",
                          "split": "train", "duration_s": 1.0, "text": ""})
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((n, dim)).astype(np.float32)
    audio[:, 0] = np.arange(n)
    text = rng.standard_normal((n, 5)).astype(np.float32)
    url = str(tmp_path / "m.zarr")
    write_store(url, items=items, arrays={"audio": audio, "text": text}, metadata={}, chunk_rows=chunk_rows).close()
    return url, audio, text


def _batches(sources, monkeypatch, mmap: bool, **kw):
    monkeypatch.setenv("MIRAGE_MMAP_READS", "1" if mmap else "0")
    clear_store_cache()
    out = []
    stream = BlockStream(sources, **kw)
    for epoch in (0, 1):
        stream.set_epoch(epoch)
        out += [tuple(t.numpy().tobytes() for t in batch) for batch in stream]
    clear_store_cache()
    return out


@pytest.mark.parametrize("rows", [None, "subset"])
@pytest.mark.parametrize("columns", [("audio",), ("audio", "text")])
@pytest.mark.parametrize("block_rows", [16, 48])
def test_same_batches_with_and_without_mapping(tmp_path, monkeypatch, rows, columns, block_rows):
    url, audio, _ = _store(tmp_path)
    ids = np.arange(len(audio)) if rows is None else np.sort(np.random.default_rng(1).choice(len(audio), 90, replace=False))
    sources = [Source(url, columns, ids, ids % 4, weight=0.5)]
    kw = dict(batch_size=17, buffer_blocks=3, seed=7, block_rows=block_rows)
    mapped, plain = _batches(sources, monkeypatch, True, **kw), _batches(sources, monkeypatch, False, **kw)
    assert mapped == plain
    seen = np.concatenate([np.frombuffer(x, np.float32).reshape(-1, audio.shape[1] + (5 if len(columns) == 2 else 0))[:, 0]
                           for x, _, _ in mapped])
    assert sorted(seen.astype(int).tolist()) == sorted(ids.tolist() * 2)  # every row once per epoch


def test_read_rows_mapped_matches_read_rows(tmp_path):
    url, audio, _ = _store(tmp_path)
    with open_store(url) as s:
        for start, stop in [(0, 16), (0, 48), (5, 37), (190, 203), (200, 203)]:
            block = s.read_rows_mapped("audio", start, stop)
            assert isinstance(block, MappedRows) and block.shape == (stop - start, audio.shape[1])
            np.testing.assert_array_equal(np.asarray(block), audio[start:stop])
            np.testing.assert_array_equal(np.asarray(block), s.read_rows("audio", start, stop))
        block = s.read_rows_mapped("audio", 0, 48)
        idx = np.array([40, 3, 17, 16, 0, 47])  # any order, across chunk files
        np.testing.assert_array_equal(block.gather(idx), audio[idx])


def test_a_corrupt_chunk_is_refused_through_the_mapping(tmp_path):
    url, audio, _ = _store(tmp_path)
    path = os.path.join(url, "audio", "c", "1", "0")
    with open(path, "r+b") as fh:  # same size, altered bytes
        fh.seek(8)
        fh.write(b"\x00\x00\x80\x7f")
    with open_store(url) as s, pytest.raises(StoreCorruptError, match="chunk 1"):
        s.read_rows_mapped("audio", 0, 48)
    with open(path, "r+b") as fh:  # truncated: the plain read names the chunk
        fh.truncate(10)
    with open_store(url) as s, pytest.raises(StoreCorruptError, match="chunk 1"):
        s.read_rows_mapped("audio", 0, 48)


def test_mapping_can_be_switched_off(tmp_path, monkeypatch):
    url, audio, _ = _store(tmp_path)
    monkeypatch.setenv("MIRAGE_MMAP_READS", "0")
    with open_store(url) as s:
        block = s.read_rows_mapped("audio", 0, 48)
    assert isinstance(block, np.ndarray)
    np.testing.assert_array_equal(block, audio[:48])
