"""The small public API at ``mirage``: each call is the library function behind its command."""

from __future__ import annotations

import mirage
from tests.train.helpers import make_real_store


def test_api_names_and_a_fit_through_it(tmp_path):
    for name in mirage.__all__:
        assert callable(getattr(mirage, name)), name
    store = make_real_store(tmp_path / "s.zarr", separation=1.0)
    res = mirage.fit(store.url, str(tmp_path / "run"), evaluation="loso", final=True)
    assert res.metrics["uar_mean"] > 0.6
    table = mirage.predict(str(tmp_path / "run"), store.url, str(tmp_path / "p.parquet"))
    assert len(table) == store.n_items
