"""End to end on the self-generated demo corpus: logmel features, LOSO, a linear classifier."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    from mirage.featstore.corpora import get_corpus
    from mirage.featstore.extract import extract

    cache = tmp_path_factory.getbasetemp() / "cache" / "mirage"
    items = get_corpus("demo", n_speakers=4, n_per_class=6).load_items(cache_dir=cache)
    url = str(tmp_path_factory.mktemp("demo") / "demo.zarr")
    extract(items, store=url, audio_model="logmel", text_model=None, progress=False)
    return url


def test_demo_store_beats_chance_clearly(demo_store, tmp_path):
    from mirage.train.fit import fit

    res = fit(demo_store, str(tmp_path / "r"), evaluation="loso")
    m = res.metrics
    assert m["n_folds"] == 4 and m["chance_uar"] == 0.25
    assert m["uar_mean"] > 0.5, m["uar_mean"]  # measured 0.75
