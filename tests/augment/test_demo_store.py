"""MI orderings and the 4x --min-mi 0.6 contract on a real (small) demo feature store."""

import pytest

from mirage.augment.checkpoint import read_config
from mirage.augment.generate import generate
from mirage.augment.shards import read_manifest
from tests.augment.conftest import SMALL


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    from mirage.featstore.corpora.demo import DemoCorpus
    from mirage.featstore.extract import extract

    tmp = tmp_path_factory.mktemp("demo")
    items = DemoCorpus(n_speakers=4, n_per_class=6).load_items(cache_dir=str(tmp / "cache"))
    store = tmp / "demo.zarr"
    extract(items, store=str(store), audio_model="logmel", text_model="none", progress=False)
    return store


@pytest.mark.slow
def test_demo_mi_orderings_and_min_mi(demo_store, tmp_path):
    from mirage.augment.fit import fit_generator

    kw = {**SMALL, "hidden": 128, "align_epochs": 60, "seed": 0, "progress": False}
    scores = {}
    for name, extra in {"trained": {"epochs": 120}, "untrained": {"epochs": 0},
                        "cgan": {"epochs": 120, "lambda_mi": 0.0}}.items():
        out = fit_generator(str(demo_store), str(tmp_path / name), **kw, **extra)
        scores[name] = read_config(str(out))["final"]["mi_score"]
    assert scores["trained"] > scores["untrained"] + 0.3, scores
    assert scores["trained"] > scores["cgan"] + 0.3, scores

    res = generate(str(tmp_path / "trained"), str(tmp_path / "synth"), n="4x", min_mi=0.6, shard_size=128,
                   progress=False)
    df = read_manifest(str(tmp_path / "synth"))
    assert res.n_items == 4 * 96 and res.complete, res.message
    assert (df["mi_score"] >= 0.6).all()
