"""``train cross --methods``: augmentation methods across corpora, paired over the test corpus's speakers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.cli.train import main as train_cli
from mirage.featstore.errors import ConfigError
from mirage.featstore.store import open_store
from mirage.train.cross import cross
from mirage.train.cross_methods import parse_cross_methods
from tests.train.test_views_mtl_cross import make_view_store


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross")
    a = make_view_store(root / "a.zarr", snrs=(), seed=0, corpus="a", n_speakers=3)
    b = make_view_store(root / "b.zarr", snrs=(), seed=0, corpus="b", n_speakers=4, shift=0.2)
    return a.url, b.url


def test_methods_rows_keep_none_as_the_headline_and_pair_over_test_speakers(corpora, tmp_path):
    a, b = corpora
    plain = cross(a, b, str(tmp_path / "plain")).metrics
    m = cross(a, b, str(tmp_path / "m"), methods="smote,calibrate,noise", n="1x").metrics
    assert m["uar"] == plain["uar"] and m["confusion"] == plain["confusion"]  # --methods never changes the headline
    rows = m["methods"]
    assert list(rows) == ["none", "smote", "calibrate", "noise"]
    assert rows["none"]["uar"] == plain["uar"] and rows["none"]["p_value"] is None
    assert rows["none"]["n_train_synthetic"] == 0 and rows["smote"]["n_train_synthetic"] == m["n_train"]
    for name in ("smote", "calibrate", "noise"):
        r = rows[name]
        assert sorted(r["speaker_uar"]) == ["01", "02", "03", "04"]  # the test corpus's speakers
        assert r["speakers_won"] + r["speakers_lost"] + r["speakers_tied"] == 4
        assert len(r["ci95"]) == 2 and r["ci95"][0] <= r["delta_vs_none"] <= r["ci95"][1]
        assert r["delta_uar_vs_none"] == pytest.approx(r["uar"] - plain["uar"], abs=2e-6)
    # the same seed gives the same numbers
    again = cross(a, b, str(tmp_path / "m2"), methods="smote,calibrate,noise", n="1x").metrics
    assert again["methods"] == rows


def test_generator_in_cross_mode_is_fitted_on_the_training_corpora_only(corpora, tmp_path):
    a, b = corpora
    out = tmp_path / "g"
    r = CliRunner().invoke(train_cli, ["cross", "--train", a, "--test", b, "--out", str(out), "--methods", "infogan",
                                       "--n", "1x"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["methods"]["infogan"]["n_train_synthetic"] > 0 and m["config"]["methods"] == ["none", "infogan"]
    train_store = open_store(str(out / "work" / "train.zarr"))
    assert len(train_store.items) == m["n_train"]
    assert all(s.startswith("0:a/") for s in train_store.items["speaker"])  # no test-corpus speaker
    assert np.isfinite(m["methods"]["infogan"]["uar"])


def test_unknown_or_fold_only_methods_are_refused():
    assert parse_cross_methods("smote") == ["none", "smote"]
    for bad in ("auto", "mtl-aug", "bogus", ""):
        with pytest.raises(ConfigError, match="--methods: expected a comma-separated subset"):
            parse_cross_methods(bad)


def test_cross_writes_nothing_into_the_test_or_training_stores(corpora, tmp_path):
    import os

    def tree(url):
        return sorted(os.path.relpath(os.path.join(d, f), url) for d, _, fs in os.walk(url) for f in fs)

    a, b = corpora
    before = (tree(a), tree(b))
    cross(a, b, str(tmp_path / "o"))
    assert (tree(a), tree(b)) == before  # the run's lock lives in --out, never in an input store
