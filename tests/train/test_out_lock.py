"""One writer per output folder: train's --out is locked while a run writes it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mirage.cli.train import main as train_cli
from mirage.featstore.errors import StoreLockedError
from mirage.featstore.store.location import Location, WriterLock
from mirage.train.fit import fit
from tests.train.helpers import make_real_store


def test_a_second_train_run_into_the_same_out_is_refused(tmp_path):
    store = make_real_store(tmp_path / "s.zarr")
    out = tmp_path / "run"
    with WriterLock(Location(str(out)), "another run"):
        with pytest.raises(StoreLockedError, match="being written"):
            fit(store.url, str(out))
        res = CliRunner().invoke(train_cli, ["fit", "--store", store.url, "--out", str(out)])
        assert res.exit_code == 1 and "being written" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (out / "metrics.json").exists()
    fit(store.url, str(out))  # once the other writer is gone
    assert (out / "metrics.json").exists() and not (out / ".lock").exists()
