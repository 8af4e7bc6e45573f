"""One home per shared helper (featstore.seeds, featstore.apportion, featstore.threads): the
values are those the earlier copies in augment and train produced, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from mirage.featstore.apportion import apportion, largest_remainder
from mirage.featstore.seeds import derive_seed
from mirage.featstore.threads import fixed_threads


def test_both_seed_widths_keep_their_old_values():
    # computed with augment/seeding.py and train/seeds.py as of 7064c2b
    assert [derive_seed(0, "codes", 3, 0, 1), derive_seed(2**40 + 7, "z"), derive_seed(5)] == \
        [1671393400877433735, 5903909447307233520, 3408106289409078375]
    assert [derive_seed(0, "classifier", "01", bits=31), derive_seed(3, "blocks", 2, bits=31), derive_seed(7, bits=31)] == \
        [1464648470, 1058475028, 459866745]
    from mirage.augment.seeding import derive_seed as augment_seed
    from mirage.train.seeds import derive_seed as train_seed

    assert augment_seed(9, "x") == derive_seed(9, "x") and train_seed(9, "x") == derive_seed(9, "x", bits=31) < 2**31
    with pytest.raises(ValueError):
        derive_seed(0, bits=32)


def _old_apportion(counts, total):  # train/baselines.py as of 7064c2b
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        return np.zeros(len(counts), dtype=np.int64)
    exact = counts / counts.sum() * total
    out = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: total - int(out.sum())]] += 1
    return out


def _old_exact_counts(n, p):  # augment/sampling.py as of 7064c2b
    raw = n * np.asarray(p, dtype=np.float64)
    counts = np.floor(raw).astype(np.int64)
    rest = n - int(counts.sum())
    if rest > 0:
        order = np.lexsort((np.arange(len(p)), -(raw - counts)))
        counts[order[:rest]] += 1
    return counts


def test_largest_remainder_equals_both_old_copies():
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(1, 9))
        counts = rng.integers(0, 20, size=k) * (rng.random(k) < 0.8)
        total = int(rng.integers(0, 200))
        np.testing.assert_array_equal(apportion(counts, total), _old_apportion(counts, total))
        if counts.sum():
            p = counts / counts.sum()
            got = largest_remainder(total, p)
            np.testing.assert_array_equal(got, _old_exact_counts(total, p))
            assert got.sum() == total
    np.testing.assert_array_equal(largest_remainder(4, [1 / 3] * 3), [2, 1, 1])  # ties to the lower index
    np.testing.assert_array_equal(apportion([0, 0], 5), [0, 0])


def test_fixed_threads_restores_the_count_even_on_error():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with pytest.raises(RuntimeError):
        with fixed_threads(target):
            assert torch.get_num_threads() == target
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with fixed_threads(None):
        assert torch.get_num_threads() == before


def test_shard_chunk_sizing_is_auto_chunk_rows_with_its_old_values():
    from mirage.augment.shard_write import shard_chunk_rows

    def old(n_rows, dim, target_bytes=4 << 20):  # augment's own copy as of 7064c2b
        by_bytes = 1 << int(np.log2(max(1, target_bytes // (4 * max(1, dim)))))
        return max(1, min(int(min(4096, max(64, by_bytes))), n_rows))

    for n in [*range(0, 130), 1000, 4096, 5000, 10**6]:
        for dim in (0, 1, 3, 32, 100, 512, 768, 1024, 4096, 20000, 10**6):
            assert shard_chunk_rows(n, dim) == old(n, dim), (n, dim)


def test_opened_closes_only_what_it_opened(tmp_path):
    from mirage.featstore.store import open_store, opened
    from tests.train.helpers import make_real_store

    url = str(tmp_path / "s.h5")
    make_real_store(url, n_speakers=1, per_class=2, format="hdf5")
    rows = np.arange(4)
    with opened(url) as fs:
        first = fs.read("audio", rows)
    with pytest.raises(Exception):
        fs.read("audio", rows)  # opened from a URL: closed after the block
    mine = open_store(url)
    with opened(mine) as fs:
        assert fs is mine
    np.testing.assert_array_equal(mine.read("audio", rows), first)  # the caller's store stays open
    mine.close()
