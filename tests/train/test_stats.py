"""Paired fold-wise statistics of train compare (train.stats) and their place in compare.json / compare.md."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mirage.train.stats import bootstrap_ci, paired_vs_none, wilcoxon_p


def _folds(values):
    return {f"speaker-{i:02d}": float(v) for i, v in enumerate(values)}


def test_none_itself_and_an_identical_method_have_no_p_and_zero_delta():
    base = _folds([0.5, 0.6, 0.7, 0.55, 0.65])
    ref = paired_vs_none(base, base, seed=0, is_none=True)
    assert ref["p_value"] is None and "none itself" in ref["p_value_note"]
    same = paired_vs_none(dict(base), base, seed=0)
    assert same["delta_vs_none"] == 0.0 and same["ci95"] == [0.0, 0.0]
    assert same["p_value"] is None and "zero" in same["p_value_note"]
    assert (same["folds_won"], same["folds_lost"], same["folds_tied"]) == (0, 0, 5)


def test_a_strongly_harmful_method_is_significant_with_enough_folds():
    rng = np.random.default_rng(0)
    none = rng.uniform(0.5, 0.8, size=12)
    worse = none - rng.uniform(0.03, 0.08, size=12)
    st = paired_vs_none(_folds(worse), _folds(none), seed=3)
    assert st["p_value"] < 0.05
    assert st["folds_lost"] == 12 and st["folds_won"] == 0
    lo, hi = st["ci95"]
    assert lo <= st["delta_vs_none"] <= hi < 0
    np.testing.assert_allclose(st["delta_vs_none"], np.mean(worse - none), atol=1e-6)


def test_noise_around_zero_is_not_significant_and_the_ci_covers_zero():
    rng = np.random.default_rng(1)
    none = rng.uniform(0.5, 0.8, size=10)
    other = none + rng.normal(0, 0.02, size=10)
    st = paired_vs_none(_folds(other), _folds(none), seed=0)
    assert st["p_value"] > 0.05
    assert st["ci95"][0] < 0 < st["ci95"][1]
    assert st["folds_won"] + st["folds_lost"] + st["folds_tied"] == 10


def test_bootstrap_is_deterministic_per_seed():
    d = np.random.default_rng(0).normal(0.01, 0.03, size=12)
    a, b, c = bootstrap_ci(d, seed=7), bootstrap_ci(d, seed=7), bootstrap_ci(d, seed=8)
    assert a == b and a != c and a[0] < d.mean() < a[1]
    assert wilcoxon_p(np.zeros(4)) == (None, "every paired fold difference is zero")


def test_compare_json_md_carry_the_statistics(tmp_path):
    from tests.train.helpers import make_real_store
    from mirage.train.compare import compare

    store = tmp_path / "r.zarr"
    make_real_store(store, n_speakers=4, per_class=6)
    res = compare(str(store), str(tmp_path / "c"), methods="none,noise,mixup", n="1x", seed=0)
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    for m, row in table.items():
        assert {"uar_mean", "uar_pooled", "wa", "macro_f1", "delta_vs_none", "p_value", "ci95",
                "folds_won", "folds_lost", "fold_uar", "folds"} <= set(row), m
        assert len(row["ci95"]) == 2 and row["ci95"][0] <= row["ci95"][1]
        assert row["folds_won"] + row["folds_lost"] + row["folds_tied"] == 4
        assert row["delta_vs_none"] == pytest.approx(row["uar_mean"] - table["none"]["uar_mean"], abs=1e-6)
    assert table["none"]["p_value"] is None and table["none"]["delta_vs_none"] == 0.0
    assert table["noise"]["p_value"] is None or 0.0 < table["noise"]["p_value"] <= 1.0
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "Wilcoxon p" in md and "95% CI" in md and "pooled UAR" in md and md == res.markdown + "\n"
    # the same seed gives the same bytes
    compare(str(store), str(tmp_path / "c2"), methods="none,noise,mixup", n="1x", seed=0)
    assert (tmp_path / "c2" / "compare.json").read_bytes() == (tmp_path / "c" / "compare.json").read_bytes()
