"""Fixtures shared by the train tests: one small real store per session (read-only)."""

from __future__ import annotations

import pytest

from tests.train.helpers import make_real_store


@pytest.fixture(scope="session")
def real_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "real.zarr"
    make_real_store(path)
    return str(path)


@pytest.fixture(scope="session")
def rowid_store(tmp_path_factory):
    """Audio feature 0 = row number; 200 rows in chunks of 16."""
    path = tmp_path_factory.mktemp("train") / "rowid.zarr"
    make_real_store(path, row_ids=True)
    return str(path)


@pytest.fixture(scope="session")
def two_speaker_store(tmp_path_factory):
    """2 speakers x 4 classes x 8 items: two LOSO folds, for the slower end-to-end paths."""
    path = tmp_path_factory.mktemp("train") / "two.zarr"
    make_real_store(path, n_speakers=2, per_class=8)
    return str(path)


@pytest.fixture(scope="session")
def four_speaker_store(tmp_path_factory):
    """4 speakers x 4 classes x 5 items: the compare, selection and cache tests' store (read only)."""
    path = tmp_path_factory.mktemp("four") / "r.zarr"
    make_real_store(path, n_speakers=4, per_class=5)
    return str(path)


@pytest.fixture(autouse=True)
def _fresh_store_cache():
    from mirage.train.loaders import clear_store_cache

    clear_store_cache()
    yield
    clear_store_cache()
