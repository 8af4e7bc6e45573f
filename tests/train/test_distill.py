"""Synthetic rows as their own loss term (--synthetic-loss distill) and hard-but-correct selection (--keep-*)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.cli.train import main
from mirage.featstore.errors import ConfigError
from mirage.featstore.store import open_store
from mirage.featstore.standardize import Standardizer
from mirage.train.classifier import ClassifierConfig, fit_in_memory, predict
from mirage.train.dataset import TrainingSet
from mirage.train.distill import fit_fold, nearest_distance, select_rows
from tests.train.helpers import make_shards


def _blobs(seed: int, n_per_class: int = 40, k: int = 3, dim: int = 8):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((k, dim)) * 2.0
    y = np.repeat(np.arange(k), n_per_class)
    return (mu[y] + rng.standard_normal((len(y), dim))).astype(np.float32), y


def _set(x_real, y_real, x_syn, y_syn) -> TrainingSet:
    return TrainingSet(x_real, y_real, x_syn, y_syn, Standardizer.fit(x_real))


def _acc(model, x, y) -> float:
    return float((predict(model, x) == y).mean())


def test_default_is_the_weighted_fit_and_records_no_new_settings():
    x, y = _blobs(0)
    xs, ys = _blobs(1)
    cfg = ClassifierConfig.from_kwargs(synthetic_weight=0.5)
    model, n_syn = fit_fold(_set(x, y, xs, ys), n_classes=3, cfg=cfg, seed=4)
    ref = fit_in_memory(np.concatenate([x, xs]), np.concatenate([y, ys]),
                        np.concatenate([np.ones(len(x)), np.full(len(xs), 0.5)]).astype(np.float32), n_classes=3, cfg=cfg, seed=4)
    assert n_syn == len(xs)
    assert torch_equal(model, ref)
    assert "synthetic_loss" not in cfg.to_json() and "keep_margin" not in cfg.to_json()
    distill = ClassifierConfig.from_kwargs(synthetic_loss="distill", keep_margin="0,0.9")
    assert distill.to_json()["synthetic_loss"] == "distill" and distill.to_json()["keep_margin"] == [0.0, 0.9]


def torch_equal(a, b) -> bool:
    return all(np.array_equal(p.detach().numpy(), q.detach().numpy()) for p, q in zip(a.parameters(), b.parameters()))


def test_distillation_resists_mislabelled_synthetic_rows():
    x, y = _blobs(0)
    x_test, y_test = _blobs(0, n_per_class=60)  # same class means (seed 0), fresh rows
    x_test = x_test + np.random.default_rng(9).standard_normal(x_test.shape).astype(np.float32) * 0.1
    # synthetic rows on top of the real ones, every label wrong: a weighted fit learns the wrong classes
    xs = np.concatenate([x, x])
    ys = (np.concatenate([y, y]) + 1) % 3
    ts = _set(x, y, xs, ys)
    weighted, _ = fit_fold(ts, n_classes=3, cfg=ClassifierConfig.from_kwargs(), seed=0)
    distilled, n_syn = fit_fold(ts, n_classes=3, seed=0, cfg=ClassifierConfig.from_kwargs(
        synthetic_loss="distill", distill_weight=1.0, synthetic_hard_weight=0.0))
    teacher = fit_in_memory(x, y, None, n_classes=3, cfg=ClassifierConfig.from_kwargs(), seed=0)
    assert n_syn == len(xs)
    assert _acc(teacher, x_test, y_test) > 0.9
    assert _acc(distilled, x_test, y_test) >= _acc(teacher, x_test, y_test) - 0.05
    assert _acc(weighted, x_test, y_test) < _acc(distilled, x_test, y_test) - 0.3


def test_keep_margin_drops_misplaced_rows_and_nn_quantile_drops_far_rows():
    x, y = _blobs(0)
    teacher = fit_in_memory(x, y, None, n_classes=3, cfg=ClassifierConfig.from_kwargs(), seed=0)
    right, wrong = x[:30], x[30:60]
    xs = np.concatenate([right, wrong, x[:10] + 50.0])
    ys = np.concatenate([y[:30], (y[30:60] + 1) % 3, y[:10]])
    keep = select_rows(x, xs, ys, teacher=teacher, n_classes=3,
                       cfg=ClassifierConfig.from_kwargs(keep_margin="0,1"))
    assert keep[:30].mean() > 0.9 and not keep[30:60].any()
    near = select_rows(x, xs, ys, teacher=None, n_classes=3, cfg=ClassifierConfig.from_kwargs(keep_nn_quantile=0.9))
    assert near[:60].all() and not near[60:].any()  # copies of real rows sit at distance 0
    band = select_rows(x, xs[:30], ys[:30], teacher=teacher, n_classes=3,
                       cfg=ClassifierConfig.from_kwargs(keep_margin="-1,0.5"))
    assert band.sum() < 30  # confidently placed rows are above the band's top
    # the fit reports the rows it kept
    _, n_syn = fit_fold(_set(x, y, xs, ys), n_classes=3, seed=0, cfg=ClassifierConfig.from_kwargs(keep_margin="0,1"))
    assert n_syn == int(keep.sum())


def test_nearest_distance_matches_brute_force_across_blocks():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2100, 5)), rng.standard_normal((40, 5))
    brute = np.sqrt(((a[:, None, :] - b[None]) ** 2).sum(-1)).min(1)
    assert np.allclose(nearest_distance(a, b), brute, atol=1e-6)
    self_brute = np.sqrt(((b[:, None, :] - b[None]) ** 2).sum(-1) + np.diag(np.full(40, np.inf))).min(1)
    assert np.allclose(nearest_distance(b, b, exclude_self=True), self_brute, atol=1e-6)


@pytest.mark.parametrize("kwargs, flag", [({"synthetic_loss": "soft"}, "--synthetic-loss"),
                                          ({"keep_margin": "a,b"}, "--keep-margin"),
                                          ({"keep_margin": "0.5,0.1"}, "--keep-margin"),
                                          ({"keep_nn_quantile": 1.5}, "--keep-nn-quantile"),
                                          ({"distill_temperature": 0.0}, "--distill-temperature"),
                                          ({"distill_weight": -1.0}, "--distill-weight")])
def test_bad_settings_are_config_errors(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        ClassifierConfig.from_kwargs(**kwargs)


def test_fit_and_compare_cli_take_the_flags(two_speaker_store, tmp_path):
    manifest = make_shards(tmp_path / "syn", open_store(two_speaker_store), trained_speakers=["99"], mi_scores=(0.9,))
    out = CliRunner().invoke(main, ["fit", "--store", two_speaker_store, "--synthetic", manifest, "--out", str(tmp_path / "f"),
                                    "--synthetic-loss", "distill", "--keep-nn-quantile", "0.99"])
    assert out.exit_code == 0, out.output
    m = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert m["config"]["classifier"]["synthetic_loss"] == "distill"
    assert all(0 < f["n_train_synthetic"] <= 40 for f in m["folds"])
    out = CliRunner().invoke(main, ["compare", "--store", two_speaker_store, "--methods", "none,noise", "--n", "1x",
                                    "--out", str(tmp_path / "c"), "--keep-margin", "0,0.99", "--synthetic-loss", "distill"])
    assert out.exit_code == 0, out.output
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert all(f["n_train_synthetic"] <= 32 for f in table["noise"]["folds"])
    bad = CliRunner().invoke(main, ["fit", "--store", two_speaker_store, "--out", str(tmp_path / "b"),
                                    "--keep-margin", "x"])
    assert bad.exit_code != 0 and "--keep-margin" in bad.output and "Traceback" not in bad.output


def test_mix_speakers_moves_rows_by_a_mixture_of_two_other_speaker_offsets():
    from mirage.train.distill import mix_speakers

    rng = np.random.default_rng(0)
    centres = {"a": np.array([3.0, 0.0]), "b": np.array([-3.0, 0.0]), "c": np.array([0.0, 6.0])}
    speakers = np.repeat(list(centres), 20)
    x_real = np.concatenate([c + 0.1 * rng.standard_normal((20, 2)) for c in centres.values()]).astype(np.float32)
    x_syn = np.zeros((500, 2), np.float32)
    moved = mix_speakers(x_real, speakers, x_syn, seed=7)
    offsets = np.stack([x_real[speakers == s].mean(0) for s in centres]) - x_real.mean(0)
    # every moved row lies on a segment between two distinct speakers' offsets (a novel speaker)
    on_segment = 0
    for row in moved:
        for i in range(3):
            for j in range(3):
                if i != j:
                    d, v = offsets[j] - offsets[i], row - offsets[i]
                    t = float(np.dot(v, d) / np.dot(d, d))
                    on_segment += 0 <= t <= 1 and np.allclose(offsets[i] + t * d, row, atol=1e-4)
    assert on_segment >= len(moved)
    assert moved.std(axis=0).min() > 1.0  # the rows now spread over the speakers' range
    np.testing.assert_array_equal(moved, mix_speakers(x_real, speakers, x_syn, seed=7))  # seeded
    assert not np.array_equal(moved, mix_speakers(x_real, speakers, x_syn, seed=8))
    np.testing.assert_array_equal(mix_speakers(x_real, np.array(["a"] * 60), x_syn, seed=7), x_syn)  # one speaker: no-op


def test_synthetic_speakers_option_is_validated_and_left_out_of_default_configs():
    from mirage.train.classifier import ClassifierConfig

    assert "synthetic_speakers" not in ClassifierConfig().to_json()
    assert ClassifierConfig.from_kwargs(synthetic_speakers="mix").to_json()["synthetic_speakers"] == "mix"
    with pytest.raises(ConfigError, match="--synthetic-speakers: expected one of none, mix"):
        ClassifierConfig.from_kwargs(synthetic_speakers="swap")


def test_synthetic_speakers_mix_through_train_fit(tmp_path):
    from tests.train.helpers import make_real_store

    store = make_real_store(tmp_path / "three.zarr", n_speakers=3, per_class=6)
    manifest = make_shards(tmp_path / "syn", store, trained_speakers=["99"], mi_scores=(0.9,))
    runs = {}
    for mode in ("none", "mix"):
        out = CliRunner().invoke(main, ["fit", "--store", store.url, "--synthetic", manifest,
                                        "--out", str(tmp_path / mode), "--synthetic-speakers", mode])
        assert out.exit_code == 0, out.output
        runs[mode] = json.loads((tmp_path / mode / "metrics.json").read_text())
    assert runs["mix"]["config"]["classifier"]["synthetic_speakers"] == "mix"
    assert "synthetic_speakers" not in runs["none"]["config"]["classifier"]  # the default keeps the old bytes
    # same rows, moved: every synthetic row is still used
    assert [f["n_train_synthetic"] for f in runs["mix"]["folds"]] == [f["n_train_synthetic"] for f in runs["none"]["folds"]]


def test_fit_fold_trains_on_the_moved_rows():
    """fit_fold applies --synthetic-speakers mix before fitting: the classifier sees moved rows."""
    rng = np.random.default_rng(0)
    offsets = {"a": np.array([4.0, 0.0, 0.0]), "b": np.array([-4.0, 0.0, 0.0]), "c": np.array([0.0, 4.0, 0.0])}
    x_real = np.concatenate([o + rng.standard_normal((30, 3)) for o in offsets.values()]).astype(np.float32)
    y_real = np.tile(np.repeat([0, 1, 2], 10), 3)
    speakers = np.repeat(list(offsets), 30)
    x_syn = rng.standard_normal((60, 3)).astype(np.float32)
    ts = TrainingSet(x_real, y_real, x_syn, np.repeat([0, 1, 2], 20), Standardizer.fit(x_real), {}, speakers)
    weights = {}
    for mode in ("none", "mix"):
        cfg = ClassifierConfig.from_kwargs(synthetic_speakers=mode)
        model, used = fit_fold(ts, n_classes=3, cfg=cfg, seed=0)
        assert used == 60
        weights[mode] = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    assert not np.allclose(weights["none"], weights["mix"])
    with pytest.raises(ConfigError, match="--synthetic-speakers mix: expected the real rows' speakers"):
        fit_fold(TrainingSet(x_real, y_real, x_syn, np.repeat([0, 1, 2], 20), ts.scaler, {}), n_classes=3,
                 cfg=ClassifierConfig.from_kwargs(synthetic_speakers="mix"), seed=0)
