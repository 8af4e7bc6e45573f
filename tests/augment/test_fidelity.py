"""augment.fidelity: precision/recall, density/coverage and per-class Fréchet distance; in augment inspect."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.augment.fidelity import fidelity_scores, frechet_distance, kth_radius, prdc


def test_prdc_of_the_same_distribution_is_high_and_of_a_collapsed_or_shifted_set_is_not():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((400, 8))
    same = prdc(real, rng.standard_normal((400, 8)))
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and same["coverage"] > 0.8
    assert 0.7 < same["density"] < 1.3
    # mode collapse: every generated row near one real row -> precise, but no recall or coverage
    collapsed = prdc(real, real[:1] + 0.01 * rng.standard_normal((400, 8)))
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.05 and collapsed["coverage"] < 0.05
    far = prdc(real, rng.standard_normal((400, 8)) + 10.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_kth_radius_matches_brute_force():
    x = np.random.default_rng(1).standard_normal((1500, 3))  # more rows than one distance block
    d = np.sqrt(((x[:200, None] - x[None]) ** 2).sum(-1))
    d[np.arange(200), np.arange(200)] = np.inf
    assert np.allclose(kth_radius(x, 5)[:200], np.sort(d, axis=1)[:, 4])


def test_frechet_is_near_zero_for_one_distribution_and_grows_with_the_shift_even_above_n():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((60, 128)), rng.standard_normal((60, 128))  # dim > rows: shrinkage keeps it defined
    base = frechet_distance(a, b)
    assert np.isfinite(base) and base < frechet_distance(a, b + 0.5) < frechet_distance(a, b + 1.0)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # the mean term alone: ||shift||^2 = 128 * 1.0
    assert frechet_distance(a, a + 1.0) == pytest.approx(128.0, rel=1e-6)


def test_fidelity_scores_per_class_seeded_and_refuses_too_few_rows():
    rng = np.random.default_rng(3)
    real, lab = rng.standard_normal((300, 6)), np.repeat(["a", "b", "c"], 100)
    gen = real + 0.1 * rng.standard_normal(real.shape)
    gen[lab == "c"] += 4.0
    res, why = fidelity_scores(real, lab, gen, lab, rng=np.random.default_rng(0))
    assert why is None and set(res["frechet_by_class"]) == {"a", "b", "c"}
    assert res["frechet_by_class"]["c"] > 10 * res["frechet_by_class"]["a"]
    assert fidelity_scores(real, lab, gen, lab, rng=np.random.default_rng(0))[0] == res
    assert fidelity_scores(real[:4], lab[:4], gen, lab, rng=np.random.default_rng(0))[0] == {}
    assert "widths" in fidelity_scores(real, lab, gen[:, :3], lab, rng=np.random.default_rng(0))[1]


@pytest.fixture(scope="module")
def synth(ser_model, tmp_path_factory):
    from mirage.augment.generate import generate

    out = tmp_path_factory.mktemp("fidelity") / "synth"
    generate(ser_model, out, n=120, shard_size=60, seed=0, progress=False)
    return out


def test_inspect_reports_fidelity_beside_mi_and_c2st(synth):
    from mirage.augment.inspect import inspect_shards

    info = inspect_shards(synth)
    for shard in info["shards"]:
        assert {"mi_score", "c2st_acc", "precision", "recall", "density", "coverage", "frechet"} <= set(shard)
        assert 0.0 <= shard["precision"] <= 1.0 and 0.0 <= shard["coverage"] <= 1.0 and shard["frechet"] >= 0.0
    assert info["precision_mean"] is not None and info["frechet_mean"] is not None
    assert inspect_shards(synth)["shards"] == info["shards"]
    bare = inspect_shards(synth, c2st=False, fidelity=False)
    assert "precision" not in bare["shards"][0] and "c2st_acc" not in bare["shards"][0]


def test_inspect_cli_json_has_the_scores(synth):
    from mirage.cli.augment import main

    out = CliRunner().invoke(main, ["inspect", str(synth), "--json", "--no-c2st"])
    assert out.exit_code == 0, out.output
    info = json.loads(out.output)
    assert "c2st_acc" not in info["shards"][0] and info["shards"][0]["recall"] is not None
