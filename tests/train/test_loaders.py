from __future__ import annotations

import numpy as np
import pytest

from mirage.featstore.store import FeatureStore, open_store
from mirage.train.loaders import BlockStream, Source, load_rows, make_loader, plan_blocks, row_moments
from mirage.train.shuffle import ShuffleBuffer


def _source(url, rows=None, columns=("audio",)):
    s = open_store(url)
    items = s.items.sort_values("row")
    r = items["row"].to_numpy() if rows is None else np.asarray(rows)
    return Source(url, columns, r, np.zeros(len(r), np.int64) + (r % 4))


def _row_ids(stream):
    return [xb[:, 0].numpy().astype(int).tolist() for xb, _, _ in stream]


def test_every_row_exactly_once_per_epoch(rowid_store):
    stream = BlockStream([_source(rowid_store)], batch_size=24, buffer_blocks=3, prefetch_blocks=2, seed=1, block_rows=16)
    for epoch in range(2):
        stream.set_epoch(epoch)
        batches = _row_ids(stream)
        seen = sorted(r for b in batches for r in b)
        assert seen == list(range(200))
        assert all(len(b) == 24 for b in batches[:-1])


def test_labels_and_weights_travel_with_rows(rowid_store):
    src = _source(rowid_store)
    src.weight = 0.5
    stream = BlockStream([src], batch_size=32, seed=0, block_rows=16)
    for xb, yb, wb in stream:
        assert np.array_equal(yb.numpy(), xb[:, 0].numpy().astype(int) % 4)
        assert np.all(wb.numpy() == 0.5)


def test_shuffle_is_deterministic_by_seed_and_changes_with_epoch(rowid_store):
    def order(seed, epoch):
        s = BlockStream([_source(rowid_store)], batch_size=20, seed=seed, block_rows=16, buffer_blocks=4)
        s.set_epoch(epoch)
        return [r for b in _row_ids(s) for r in b]

    a = order(3, 0)
    assert a == order(3, 0)
    assert a != order(4, 0)
    assert a != order(3, 1)
    assert a != sorted(a)


def test_reads_are_whole_chunks_only(rowid_store, monkeypatch):
    calls = []
    real_read = FeatureStore.read_rows

    def spy(self, name, start, stop):
        calls.append((name, start, stop))
        return real_read(self, name, start, stop)

    real_mapped = FeatureStore.read_rows_mapped

    def spy_mapped(self, name, start, stop):  # the streaming path maps chunk files instead of copying them
        calls.append((name, start, stop))
        return real_mapped(self, name, start, stop)

    monkeypatch.setattr(FeatureStore, "read_rows", spy)
    monkeypatch.setattr(FeatureStore, "read_rows_mapped", spy_mapped)
    store = open_store(rowid_store)
    chunk = store.chunk_rows
    n_chunks = -(-store.n_rows // chunk)
    # every row: one read per chunk
    x = load_rows(_source(rowid_store), block_rows=chunk, scheduler="sync")
    assert np.array_equal(x[:, 0].astype(int), np.arange(200))
    assert len(calls) == n_chunks
    assert all(s % chunk == 0 and (e - s == chunk or e == store.n_rows) for _, s, e in calls)
    # a sparse subset: only the chunks that hold a wanted row are read, still whole
    calls.clear()
    rows = np.array([3, 5, 40, 41, 199])
    x = load_rows(_source(rowid_store, rows, columns=("audio", "text")), block_rows=chunk, scheduler="threads")
    assert np.array_equal(x[:, 0].astype(int), rows)
    assert x.shape[1] == 32 + 16
    assert sorted({s for _, s, _ in calls}) == [0, 32, 192]
    assert len(calls) == 3 * 2  # two arrays
    # streaming: one read per chunk per epoch
    calls.clear()
    list(BlockStream([_source(rowid_store)], batch_size=50, block_rows=chunk))
    assert len(calls) == n_chunks


def test_blocks_group_whole_chunks(rowid_store):
    blocks = plan_blocks([_source(rowid_store)], block_rows=40)  # rounds up to 48 = 3 chunks
    assert [(b.start, b.stop) for b in blocks] == [(0, 48), (48, 96), (96, 144), (144, 192), (192, 200)]
    assert sum(b.hi - b.lo for b in blocks) == 200


def test_row_moments_match_numpy(real_store):
    src = _source(real_store, np.arange(0, 200, 3))
    n, s, ss = row_moments([src], block_rows=32)
    x = open_store(real_store).read("audio", np.arange(0, 200, 3)).astype(np.float64)
    assert n == len(x)
    np.testing.assert_allclose(s, x.sum(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ss, (x ** 2).sum(0), rtol=1e-6)


def test_shuffle_buffer_draws_every_row_once():
    rng = np.random.default_rng(0)
    buf = ShuffleBuffer(batch_size=7, capacity_blocks=3, rng=rng)
    out = []
    for start in range(0, 100, 10):
        ids = np.arange(start, start + 10)
        buf.add((ids.astype(np.float32)[:, None], ids))
        out += [b[1] for b in buf.batches(final=False)]
    out += [b[1] for b in buf.batches(final=True)]
    assert sorted(np.concatenate(out).tolist()) == list(range(100))
    assert all(len(b) == 7 for b in out[:-1])


def test_dataloader_workers_use_spawn(rowid_store):
    stream = BlockStream([_source(rowid_store)], batch_size=32, block_rows=16, seed=0)
    assert make_loader(stream).multiprocessing_context is None  # no workers: no processes at all
    loader = make_loader(stream, num_workers=1)
    assert loader.multiprocessing_context.get_start_method() == "spawn"
    seen = sorted(int(r) for xb, _, _ in loader for r in xb[:, 0].tolist())
    assert seen == list(range(200))


def test_workers_split_blocks_without_overlap(rowid_store, monkeypatch):
    import torch.utils.data as tud
    from types import SimpleNamespace

    stream = BlockStream([_source(rowid_store)], batch_size=32, block_rows=16, seed=0)
    seen = []
    for wid in range(3):
        monkeypatch.setattr(tud, "get_worker_info", lambda wid=wid: SimpleNamespace(id=wid, num_workers=3))
        seen += [int(r) for b in _row_ids(stream) for r in b]
    assert sorted(seen) == list(range(200))


def test_rows_must_be_ascending(rowid_store):
    with pytest.raises(ValueError):
        Source(rowid_store, ("audio",), np.array([3, 1]), np.array([0, 0]))


def test_hdf5_stores_read_the_same(rowid_store, tmp_path):
    from mirage.featstore.store import write_store

    src = open_store(rowid_store)
    items = src.items.sort_values("row").drop(columns="row").reset_index(drop=True)
    rows = src.items.sort_values("row")["row"].to_numpy()
    h5 = str(tmp_path / "copy.h5")
    write_store(h5, items=items, arrays={"audio": src.read("audio", rows), "text": src.read("text", rows)},
                metadata=src.metadata, format="hdf5", chunk_rows=16)
    want = np.arange(0, 200, 7)
    a = load_rows(_source(rowid_store, want, columns=("audio", "text")))
    b = load_rows(_source(h5, want, columns=("audio", "text")))
    assert np.array_equal(a, b)


def test_a_rewritten_store_is_reread(tmp_path):
    from tests.train.helpers import make_real_store
    from mirage.train.loaders import cached_store, store_token

    url = str(tmp_path / "s.zarr")
    first = make_real_store(url, seed=0)
    old = load_rows(Source(url, ("audio",), np.arange(5), np.zeros(5, np.int64), token=store_token(first)))
    second = make_real_store(url, seed=1)  # same path, other contents
    new = load_rows(Source(url, ("audio",), np.arange(5), np.zeros(5, np.int64), token=store_token(second)))
    assert not np.allclose(old, new)
    assert np.array_equal(new, second.read("audio", np.arange(5)))
    assert store_token(cached_store(url, token=store_token(second))) == store_token(second)
