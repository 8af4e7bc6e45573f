"""Generators (cgan, infogan) under ``train compare --select inner`` and as ``auto`` candidates:
inner generator jobs fitted on the inner training speakers only, cached, seeded per
(seed, method, outer fold, inner fold); the chosen setting per fold reported."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.train.test_compare import SMALL_GAN, _fake_generator

FAST = {"max_iter": 30}


@pytest.fixture(scope="module")
def three_speaker_store(tmp_path_factory):
    from tests.train.helpers import make_real_store

    path = tmp_path_factory.mktemp("three") / "r.zarr"
    make_real_store(path, n_speakers=3, per_class=4)
    return str(path)


def _calls(log):
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    log.unlink(missing_ok=True)
    return rows


def _oracle_generator(log_path):
    """A stand-in generator whose rows are near copies of *every* store row, held-out speakers'
    included (its shards record only the training speakers): on any fold it helps a lot, so
    ``auto`` must be able to pick it. For the selection logic only — a real generator never sees
    the held-out rows (see the test with the real generator below)."""
    from mirage.featstore.store import open_store
    from tests.train.helpers import make_shards

    def fake(store, out_dir, *, exclude_speakers, n_items, seed, **_):
        real = open_store(store)
        trained = sorted(set(real.items["speaker"]) - set(exclude_speakers))
        with open(log_path, "a") as fh:
            fh.write(json.dumps([out_dir.split("generators/")[1], list(exclude_speakers), seed]) + "\n")
        manifest = make_shards(f"{out_dir}/shards", real, trained_speakers=trained, n_items=n_items, seed=seed)
        return {"manifest": manifest, "n_items": n_items, "n_rejected": 0, "seconds": 0.0}

    return fake


def test_stratified_subset_keeps_the_label_shares_and_is_seeded():
    from mirage.train.methods.generative import stratified_subset

    y = np.repeat([0, 1, 2], [40, 20, 20])
    idx = stratified_subset(y, 20, seed=3)
    assert len(idx) == 20 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [10, 5, 5]
    assert np.array_equal(idx, stratified_subset(y, 20, seed=3))
    assert not np.array_equal(idx, stratified_subset(y, 20, seed=4))


def test_auto_pool_adds_the_named_generators_to_the_baselines():
    from mirage.train.methods.auto import DEFAULT_POOL
    from mirage.train.select import auto_pool

    assert auto_pool(["none", "infogan", "auto"]) == [*DEFAULT_POOL, "infogan"]
    assert auto_pool(["none", "noise", "cgan", "infogan", "auto"]) == ["noise", "cgan", "infogan"]
    assert auto_pool(["none", "auto"]) == list(DEFAULT_POOL)
    assert auto_pool(["none", "mtl-aug", "auto"]) == list(DEFAULT_POOL)


def test_select_inner_fits_a_generator_per_inner_fold_and_lambda(three_speaker_store, tmp_path, monkeypatch):
    import mirage.train.compare as cmp
    from mirage.train.dataset import load_real
    from mirage.train.folds import make_folds
    from mirage.train.methods import REGISTRY
    from mirage.train.methods.generative import INFOGAN_GRID
    from mirage.train.select import inner_folds

    four_speaker_store = three_speaker_store
    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(cmp, "generate_for_fold", _fake_generator(str(log)))
    grid = {**INFOGAN_GRID, "synthetic_weight": (1.0,)}  # the weight is classifier side only: one value keeps it fast
    monkeypatch.setattr(REGISTRY["infogan"], "grid", grid)
    kw = dict(methods="none,infogan", n="4x", seed=0, select="inner", classifier_options=FAST)
    cmp.compare(four_speaker_store, str(tmp_path / "a"), **kw)
    calls = _calls(log)
    real = load_real(four_speaker_store)
    folds = make_folds(real.items, real.metadata, "loso")
    lambdas = INFOGAN_GRID["lambda_mi"]
    # per outer fold: the outer job (λ = the run's, 4x = the grid's largest: one job), the outer λ = 0.1
    # job, and one job per inner fold and λ
    assert len(calls) == len(folds) * (2 + 2 * len(lambdas))
    by_dir = {c[0]: c for c in calls}
    for outer in folds:
        slug = outer.name.replace("=", "-")
        for inner in inner_folds(real, outer.train):
            seeds = set()
            for lam in lambdas:
                path, exclude, lam_given, _, seed = by_dir[f"infogan/_select/{slug}/{inner.name}-lambda_mi-{lam}"]
                # never the outer test speaker, never the inner held-out ones (the fake checks the included items)
                assert set(exclude) == set(outer.test_speakers) | set(inner.test_speakers)
                assert lam_given == (None if lam == 1.0 else lam)  # λ = 1 is the run's own: spelt as the run does
                seeds.add(seed)
            assert len(seeds) == 1  # one seed per (seed, method, outer, inner): λ values differ in λ only
    inner_seeds = {c[4] for c in calls if "/inner-" in c[0]}
    assert len(inner_seeds) == len(folds) * 2
    table = json.loads((tmp_path / "a" / "compare.json").read_text())
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["grids"]["infogan"] == {k: list(v) for k, v in grid.items()}
    row = table["infogan"]
    assert set(row["selected"]) == {f.name for f in folds}
    for fold, setting in row["selected"].items():
        assert setting["lambda_mi"] in lambdas and setting["n"] in ("1x", "4x")
        f = next(f for f in row["folds"] if f["name"] == fold)
        assert f["n_train_synthetic"] == f["n_train_real"] * int(setting["n"][0])  # 1x: a subset of the 4x rows
        assert isinstance(row["inner_uar"][fold], float)
    assert {"uar_mean", "uar_pooled", "delta_vs_none", "p_value", "ci95"} <= set(row)

    # a rerun reuses every fit (outer and inner) and every fold result
    res = cmp.compare(four_speaker_store, str(tmp_path / "a"), **kw)
    assert _calls(log) == [] and res.cache_stats["misses"] == {"job": 0, "fold": 0}
    assert res.cache_stats["hits"]["job"] == len(calls)
    assert json.loads((tmp_path / "a" / "compare.json").read_text()) == table
    # --select none: the outer jobs only, as before
    cmp.compare(four_speaker_store, str(tmp_path / "b"), **{**kw, "select": "none"})
    assert sorted(c[0] for c in _calls(log)) == sorted(f"infogan/{f.name.replace('=', '-')}" for f in folds)


def test_auto_can_choose_a_generator(three_speaker_store, tmp_path, monkeypatch):
    import mirage.train.compare as cmp
    from mirage.train.methods import REGISTRY

    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(cmp, "generate_for_fold", _oracle_generator(str(log)))
    small = {"n": ("1x",), "synthetic_weight": (0.5, 1.0)}
    monkeypatch.setattr(REGISTRY["infogan"], "grid", small)
    monkeypatch.setattr(REGISTRY["noise"], "grid", small)
    kw = dict(methods="none,noise,infogan,auto", n="1x", seed=0, classifier_options=FAST)
    cmp.compare(three_speaker_store, str(tmp_path / "a"), **kw)
    calls = _calls(log)
    assert sum("/inner-" in c[0] for c in calls) == 3 * 2  # --select none: the run's setting, one fit per inner fold
    table = json.loads((tmp_path / "a" / "compare.json").read_text())
    auto = table["auto"]
    assert auto["candidates"] == ["none", "noise", "infogan"]
    assert "infogan" in auto["chosen"].values()
    for fold, chosen in auto["chosen"].items():
        assert auto["fold_uar"][fold] == table[chosen]["fold_uar"][fold]
        if chosen == "infogan":
            assert auto["chosen_setting"][fold] == {}
            scores = auto["inner_uar"][fold]
            assert scores["infogan"] == max(scores.values())
    # under --select inner, auto takes infogan's selected setting
    cmp.compare(three_speaker_store, str(tmp_path / "s"), **{**kw, "select": "inner"})
    _calls(log)
    sel = json.loads((tmp_path / "s" / "compare.json").read_text())
    for fold, chosen in sel["auto"]["chosen"].items():
        if chosen == "infogan":
            assert sel["auto"]["chosen_setting"][fold] == sel["infogan"]["selected"][fold]
            assert sel["auto"]["fold_uar"][fold] == sel["infogan"]["fold_uar"][fold]
    assert "infogan" in sel["auto"]["chosen"].values()
    # generators are auto candidates only when named: no inner generator job otherwise
    cmp.compare(three_speaker_store, str(tmp_path / "n"), **{**kw, "methods": "none,noise,auto"})
    assert _calls(log) == []


def test_real_inner_generators_are_trained_on_inner_training_speakers_only(three_speaker_store, tmp_path, monkeypatch):
    """The real augment fit + generate: each inner job's shards vouch (their own self-record)
    for having been trained on the inner training speakers only."""
    from mirage.augment.vouch import read_record
    from mirage.train.compare import compare
    from mirage.train.dataset import load_real
    from mirage.train.folds import make_folds
    from mirage.train.methods import REGISTRY
    from mirage.train.select import inner_folds
    from mirage.train.synthetic import read_manifest

    monkeypatch.setattr(REGISTRY["infogan"], "grid", {"n": ("1x",), "synthetic_weight": (0.5, 1.0)})  # one fit per fold
    compare(three_speaker_store, str(tmp_path / "a"), methods="none,infogan", n="1x", seed=0, select="inner",
            classifier_options=FAST, generator_options=SMALL_GAN)
    real = load_real(three_speaker_store)
    speakers = set(real.items["speaker"].astype(str))
    checked = 0
    for outer in make_folds(real.items, real.metadata, "loso"):
        for inner in inner_folds(real, outer.train):
            shards = tmp_path / "a" / "generators" / "infogan" / "_select" / outer.name.replace("=", "-") / \
                f"{inner.name}-run" / "shards"
            rows = read_manifest(str(shards))
            expected = sorted(speakers - set(outer.test_speakers) - set(inner.test_speakers))
            for path in rows["path_abs"]:
                assert read_record(path)["trained_speakers"] == expected
                checked += 1
    assert checked >= 6
    table = json.loads((tmp_path / "a" / "compare.json").read_text())
    assert all(s["n"] == "1x" for s in table["infogan"]["selected"].values())


def test_inner_jobs_with_speaker_normalisation_use_the_outer_fold_store(three_speaker_store, tmp_path, monkeypatch):
    """--normalise speaker: inner jobs fit on the outer fold's normalised store (training speakers
    only), restricted to the inner training items, the inner held-out speakers excluded."""
    import mirage.train.compare as cmp
    from mirage.train.dataset import load_real
    from mirage.train.folds import make_folds
    from mirage.train.methods import REGISTRY
    from mirage.train.select import inner_folds

    log = tmp_path / "calls.jsonl"
    monkeypatch.setattr(cmp, "generate_for_fold", _fake_generator(str(log)))  # it checks includes vs the store's speakers
    monkeypatch.setattr(REGISTRY["cgan"], "grid", {"n": ("1x", "4x")})
    cmp.compare(three_speaker_store, str(tmp_path / "a"), methods="none,cgan", n="4x", seed=0, select="inner",
                normalise="speaker", classifier_options=FAST)
    by_dir = {c[0]: c for c in _calls(log)}
    real = load_real(three_speaker_store)
    for outer in make_folds(real.items, real.metadata, "loso"):
        slug = outer.name.replace("=", "-")
        assert (tmp_path / "a" / "generators" / "_normalised" / f"{slug}.zarr").exists()
        for inner in inner_folds(real, outer.train):
            assert by_dir[f"cgan/_select/{slug}/{inner.name}-run"][1] == list(inner.test_speakers)
        assert f"cgan/_select/{slug}/outer-run" not in by_dir  # 4x, λ 0: the outer job itself
    table = json.loads((tmp_path / "a" / "compare.json").read_text())
    assert set(table["cgan"]["selected"]) == {f.name for f in make_folds(real.items, real.metadata, "loso")}
