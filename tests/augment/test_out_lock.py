"""One writer per output folder: augment fit's --out is locked while a fit writes it."""

from __future__ import annotations

import pytest

from mirage.featstore.errors import StoreLockedError
from mirage.featstore.store.location import Location, WriterLock


def test_a_second_generator_fit_into_the_same_out_is_refused(tmp_path, store_path):
    from tests.augment.conftest import fit_small

    out = tmp_path / "gen"
    with WriterLock(Location(str(out)), "another fit"):
        with pytest.raises(StoreLockedError):
            fit_small(store_path, out)
    assert not (out / "config.json").exists()
    fit_small(store_path, out)
    assert (out / "config.json").exists() and not (out / ".lock").exists()
