"""Fits and generations fix numpy's BLAS threads as well as torch's: a generator fitted in a Dask
worker (which starts with OPENBLAS_NUM_THREADS=1) has the bytes of the same fit in-process."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info

from mirage.featstore.threads import fixed_threads


def _blas_threads() -> set[int]:
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_fixed_threads_with_blas_limits_and_restores_numpy_blas():
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    before = _blas_threads()
    with fixed_threads(1, blas=True):
        assert _blas_threads() == {1}
    assert _blas_threads() == before
    with fixed_threads(1):  # torch only: BLAS left as it is (cheap enough per batch)
        assert _blas_threads() == before


def test_fit_generator_reads_and_trains_under_the_blas_limit(four_speaker_store, tmp_path, monkeypatch):
    import mirage.augment.fit as fit_mod

    seen = []
    real_load = fit_mod.load_training_data

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return real_load(*args, **kwargs)

    monkeypatch.setattr(fit_mod, "load_training_data", spy)
    fit_mod.fit_generator(four_speaker_store, tmp_path / "g", progress=False, epochs=1, align_epochs=1, hidden=16,
                          noise_dim=4, batch_size=16, num_threads=1)
    assert seen == [{1}]
