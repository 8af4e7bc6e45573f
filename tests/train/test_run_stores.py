"""Each run owns its store cache: two runs in one process (nested, or in two threads) do not
close each other's stores, and a store rewritten between runs is reread."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mirage.train.fit import fit
from mirage.train.loaders import Source, cached_store, load_rows
from mirage.train.stores import current_stores, process_stores, run_stores
from tests.train.helpers import make_real_store


@pytest.fixture(scope="module")
def h5_store(tmp_path_factory):
    """An HDF5 store: closing it really closes the file, so a closed store cannot be read."""
    path = tmp_path_factory.mktemp("stores") / "real.h5"
    make_real_store(path, n_speakers=2, per_class=6, format="hdf5")
    return str(path)


def _read_all(store) -> np.ndarray:
    return store.read("audio", store.items["row"].to_numpy())


def test_a_fit_inside_another_run_leaves_its_stores_open(h5_store, tmp_path):
    with run_stores() as outer:
        store = cached_store(h5_store)
        before = _read_all(store)
        fit(h5_store, str(tmp_path / "inner"), seed=0)  # a run of its own, on the same store
        assert current_stores() is outer and cached_store(h5_store) is store
        np.testing.assert_array_equal(_read_all(store), before)  # still open
        rows = np.sort(store.items["row"].to_numpy())[:5]
        np.testing.assert_array_equal(load_rows(Source(h5_store, ("audio",), rows, np.zeros(5))),
                                      store.read("audio", rows))  # the loaders read through the outer cache
        assert len(outer) == 1
    assert current_stores() is process_stores()
    with pytest.raises(Exception):
        _read_all(store)  # the run closed its own store when it ended
    assert len(outer) == 0


def test_two_fits_in_two_threads_equal_sequential_fits(h5_store, tmp_path):
    want = [fit(h5_store, str(tmp_path / f"seq{seed}"), seed=seed).metrics for seed in (0, 1)]
    got, errors = {}, []

    def run(seed):
        try:
            got[seed] = fit(h5_store, str(tmp_path / f"thr{seed}"), seed=seed).metrics
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert [got[0], got[1]] == want
    assert len(process_stores()) == 0  # neither run used (or left anything in) the process cache


def test_a_store_rewritten_between_runs_is_reread(tmp_path):
    path = str(tmp_path / "s.zarr")
    make_real_store(path, n_speakers=2, per_class=4, seed=0)
    first = fit(path, str(tmp_path / "a"), seed=0).metrics
    make_real_store(path, n_speakers=2, per_class=4, seed=1, separation=3.0)
    second = fit(path, str(tmp_path / "b"), seed=0).metrics
    assert first["config"]["store_content_hash"] != second["config"]["store_content_hash"]


def test_a_run_cache_sent_to_another_process_becomes_that_process_cache():
    import pickle

    with run_stores() as cache:
        assert pickle.loads(pickle.dumps(cache)) is process_stores()  # what a Dask worker unpickles
