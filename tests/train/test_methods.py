"""The method registry of train compare (train.methods), calibrate (train.calibrate) and mtl-aug in compare."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.featstore.errors import ConfigError

FAST = {"max_iter": 30}


def test_every_method_is_one_registry_entry_and_compare_names_none_of_them():
    import ast
    import inspect
    import textwrap

    import mirage.train.compare as cmp
    from mirage.train.methods import REGISTRY, Method

    assert set(REGISTRY) == {"none", "smote", "mixup", "noise", "calibrate", "cgan", "infogan", "auto", "mtl-aug",
                             "mtl-aug+infogan"}
    assert all(isinstance(m, Method) and m.name == name for name, m in REGISTRY.items())
    src = ""
    for fn in (cmp.compare, cmp._start_jobs):
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        tree.body[0].body = [n for n in tree.body[0].body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        src += ast.unparse(tree).replace("'", '"')  # code only, no docstring
    for name in set(REGISTRY) - {"none"}:  # the runner has no per-method branch ("none" is also a --select value)
        assert f'"{name}"' not in src, name


def test_a_new_method_is_one_object(four_speaker_store, tmp_path, monkeypatch):
    """A method registered from outside runs through compare and select unchanged."""
    import dataclasses

    from mirage.train.methods import REGISTRY, Augmentation, Method

    class Duplicate(Method):
        name = "dup"
        auto_candidate = True
        grid = {"synthetic_weight": (0.5, 1.0)}

        def augment(self, ctx):
            b = ctx.base
            return Augmentation(dataclasses.replace(b, x_syn=b.x_real.copy(), y_syn=b.y_real.copy(),
                                                    combos={**b.combos, "dup": b.n_real}))

    monkeypatch.setitem(REGISTRY, "dup", Duplicate())
    from mirage.train.compare import compare

    compare(four_speaker_store, str(tmp_path / "c"), methods="none,dup,auto", select="inner", seed=0,
            classifier_options=FAST)
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert all(f["n_train_synthetic"] == f["n_train_real"] for f in table["dup"]["folds"])
    assert set(table["dup"]["selected"]) == set(table["none"]["fold_uar"])
    assert table["auto"]["candidates"] == ["none", "dup"]
    assert "delta_vs_none" in table["dup"]


def _two_class_data(rng, n=(40, 30, 25), dim=6):
    mu = np.array([[0.0] * dim, [3.0] + [0.0] * (dim - 1), [0.0, 6.0] + [0.0] * (dim - 2)])
    y = np.repeat(np.arange(len(n)), n)
    scales = [np.eye(dim)[0] * 2 + 0.1, np.eye(dim)[1] * 2 + 0.1, np.eye(dim)[2] * 2 + 0.1]
    x = mu[y] + rng.standard_normal((len(y), dim)) * np.asarray(scales)[y]
    return x.astype(np.float32), y


def test_calibrate_counts_prior_seed_and_covariance():
    from mirage.train.calibrate import calibrate, nearest_classes

    rng = np.random.default_rng(0)
    x, y = _two_class_data(rng)
    xs, ys = calibrate(x, y, 190, n_classes=3, seed=1)
    assert xs.shape == (190, 6) and xs.dtype == np.float32 and ys.dtype == np.int64
    assert np.array_equal(np.bincount(ys, minlength=3), [80, 60, 50])  # the training prior, exact total
    assert np.array_equal(xs, calibrate(x, y, 190, n_classes=3, seed=1)[0])
    assert not np.array_equal(xs, calibrate(x, y, 190, n_classes=3, seed=2)[0])
    means = np.stack([x[y == c].mean(0) for c in range(3)])
    assert nearest_classes(means, np.ones(3, bool), 1) == [[1], [0], [0]]
    # many draws: the class mean, and the covariance mixed with the k nearest classes' plus alpha * I
    big, yb = calibrate(x, y, 60000, n_classes=3, seed=3, k=1, alpha=0.2)
    for c, j in ((0, 1), (2, 0)):
        d = big[yb == c].astype(np.float64)
        np.testing.assert_allclose(d.mean(0), means[c], atol=0.05)
        want = (np.cov(x[y == c].T) + np.cov(x[y == j].T)) / 2 + 0.2 * np.eye(6)
        np.testing.assert_allclose(np.cov(d.T), want, atol=0.12)
    # k = 0, alpha = 0: a class's own spread only (draws stay in the span of its centred rows)
    own, yo = calibrate(x[:5], y[:5] * 0, 50, n_classes=3, seed=0, k=0, alpha=0.0)
    basis = np.linalg.svd(x[:5] - x[:5].mean(0), full_matrices=False)[2][:4]
    resid = (own - x[:5].mean(0)) - (own - x[:5].mean(0)) @ basis.T @ basis
    assert np.abs(resid).max() < 1e-4 and set(yo.tolist()) == {0}
    with pytest.raises(ConfigError, match="calibrate"):
        calibrate(x, y, 10, n_classes=3, seed=0, k=-1)


def test_calibrate_in_compare_with_select_inner_and_auto(four_speaker_store, tmp_path):
    from mirage.train.compare import compare

    compare(four_speaker_store, str(tmp_path / "c"), methods="none,calibrate,auto", n="1x", seed=0, select="inner",
            classifier_options=FAST, baseline_options={"calibrate": {"alpha": 0.2}})
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["grids"] == {"calibrate": {"n": ["1x", "4x"], "synthetic_weight": [0.5, 1.0], "k": [0, 2]}}
    assert cfg["baseline_options"] == {"calibrate": {"alpha": 0.2}}
    assert table["auto"]["candidates"] == ["none", "calibrate"]
    for fold, setting in table["calibrate"]["selected"].items():
        assert setting["k"] in (0, 2) and setting["n"] in ("1x", "4x")
        row = next(f for f in table["calibrate"]["folds"] if f["name"] == fold)
        assert row["n_train_synthetic"] == row["n_train_real"] * int(setting["n"][0])
    assert {"p_value", "ci95", "folds_won", "folds_lost"} <= set(table["calibrate"])


def test_cli_calibrate_options(four_speaker_store, tmp_path):
    from mirage.cli.train import main

    out = CliRunner().invoke(main, ["compare", "--store", four_speaker_store, "--methods", "none,calibrate",
                                    "--n", "1x", "--calibrate-k", "1", "--calibrate-alpha", "0.3",
                                    "--out", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    assert "| calibrate |" in out.output
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["baseline_options"]["calibrate"] == {"k": 1, "alpha": 0.3}


def test_mtl_aug_in_compare_matches_train_fit_and_needs_views(tmp_path, four_speaker_store):
    from mirage.cli.train import main
    from mirage.train.compare import compare
    from mirage.train.mtl import fit_mtl
    from tests.train.test_views_mtl_cross import make_view_store

    store = str(tmp_path / "v.zarr")
    make_view_store(store, unlabelled=1)
    opts = {"epochs": 20, "hidden": 32}
    compare(store, str(tmp_path / "c"), methods="none,mtl-aug", seed=0, baseline_options={"mtl-aug": opts})
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    fit = fit_mtl(store, str(tmp_path / "f"), seed=0, options=opts)
    assert table["mtl-aug"]["fold_uar"] == {f["name"]: f["uar"] for f in fit.metrics["folds"]}
    assert set(table["mtl-aug"]["fold_uar"]) == set(table["none"]["fold_uar"])
    assert {"delta_vs_none", "p_value", "ci95", "folds_won"} <= set(table["mtl-aug"])
    assert json.loads((tmp_path / "c" / "config.json").read_text())["mtl"]["epochs"] == 20
    with pytest.raises(ConfigError, match="augmented views"):
        compare(four_speaker_store, str(tmp_path / "x"), methods="none,mtl-aug")
    bad = CliRunner().invoke(main, ["compare", "--store", four_speaker_store, "--methods", "none,mtl-aug",
                                    "--out", str(tmp_path / "y")])
    assert bad.exit_code != 0 and "augmented views" in bad.output and "Traceback" not in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_mtl_aug_plus_infogan_trains_the_multitask_network_on_generated_rows_too(tmp_path):
    """Both seeds at once: the fold's infogan rows join mtl-aug's training rows as aug type 'generated'."""
    from mirage.train.compare import compare
    from tests.train.test_views_mtl_cross import make_view_store

    store = str(tmp_path / "v.zarr")
    make_view_store(store, n_speakers=3)
    opts = {"epochs": 10, "hidden": 16}
    gen = {"epochs": 2, "align_epochs": 2, "hidden": 16, "noise_dim": 4, "batch_size": 16}
    res = compare(store, str(tmp_path / "c"), methods="none,infogan,mtl-aug,mtl-aug+infogan", n="1x", seed=0,
                  baseline_options={"mtl-aug": opts}, generator_options=gen)
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    both, plain = table["mtl-aug+infogan"], table["mtl-aug"]
    assert set(both["fold_uar"]) == set(plain["fold_uar"]) and {"delta_vs_none", "p_value", "ci95"} <= set(both)
    metrics = json.loads((tmp_path / "c" / "mtl-aug+infogan" / "metrics.json").read_text())
    for fold in metrics["folds"]:
        assert fold["n_train_synthetic"] > 0 and fold["combinations"]["aug=generated"] == fold["n_train_synthetic"]
        # each fold's generator never saw that fold's test speaker
        assert fold["synthetic_shards"] and all("generators/infogan" in p for p in fold["synthetic_shards"])
    assert both["fold_uar"] != plain["fold_uar"]
    # one generator per fold, shared with method infogan: the same shards, a different trainer
    infogan = json.loads((tmp_path / "c" / "infogan" / "metrics.json").read_text())
    assert [f["synthetic_shards"] for f in infogan["folds"]] == [f["synthetic_shards"] for f in metrics["folds"]]
    assert res.cache_stats["misses"]["job"] == len(metrics["folds"])  # not twice as many fits
