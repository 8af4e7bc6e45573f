"""``train fit --layer K|mean|weighted`` on stores that keep every hidden state."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.cli.train import main as train_cli
from mirage.featstore.errors import ConfigError
from mirage.featstore.store import open_store, write_store
from tests.train.helpers import make_real_store
from mirage.train.fit import fit
from mirage.train.layers import fit_layer_weights, weighted_view


def make_layered_store(tmp_path, informative: int = 2, n_states: int = 4):
    """A store whose ``audio_layers`` state ``informative`` carries the labels and the others
    are noise; ``audio`` is state 0 (noise), as if the default layer were a poor one."""
    base = open_store(str(make_real_store(tmp_path / "base.zarr", separation=1.0, audio_dim=16).url))
    items = base.items.sort_values("row").reset_index(drop=True).drop(columns=["row"])
    signal = base.read("audio", base.items.sort_values("row")["row"].to_numpy())
    rng = np.random.default_rng(1)
    layers = rng.standard_normal((len(items), n_states, signal.shape[1])).astype(np.float32)
    layers[:, informative] = signal
    meta = {"corpus": "fixture", "extractors": {"audio": {"extractor": "fixture", "default_layer": 0}}}
    return write_store(str(tmp_path / "layers.zarr"), items=items,
                       arrays={"audio": layers[:, 0].copy(), "audio_layers": layers}, metadata=meta, chunk_rows=16)


def test_layer_k_reads_that_hidden_state(tmp_path):
    store = make_layered_store(tmp_path)
    plain = fit(store.url, str(tmp_path / "plain"), evaluation="loso").metrics
    good = fit(store.url, str(tmp_path / "k2"), evaluation="loso", layer=2).metrics
    noise = fit(store.url, str(tmp_path / "k1"), evaluation="loso", layer=1).metrics
    assert good["uar_mean"] > 0.8 > 0.45 > max(plain["uar_mean"], noise["uar_mean"])
    assert good["config"]["layer"] == 2 and "layer" not in plain["config"]
    same = fit(store.url, str(tmp_path / "k0"), evaluation="loso", layer=0).metrics
    assert same["folds"] == plain["folds"]  # state 0 is the store's audio here


def test_weighted_layers_are_learned_per_training_fold_and_find_the_informative_state(tmp_path):
    store = make_layered_store(tmp_path, informative=3)
    m = fit(store.url, str(tmp_path / "w"), evaluation="loso", layer="weighted").metrics
    assert m["uar_mean"] > 0.8
    weights = m["config"]["layer_weights"]
    assert set(weights) == {f["name"] for f in m["folds"]}
    for w in weights.values():
        assert len(w) == 4 and abs(sum(w) - 1) < 1e-4 and int(np.argmax(w)) == 3
    again = fit(store.url, str(tmp_path / "w2"), evaluation="loso", layer="weighted").metrics
    assert again == m  # deterministic


def test_weighted_view_uses_only_the_rows_it_was_fitted_on():
    rng = np.random.default_rng(0)
    layers = rng.standard_normal((60, 3, 5)).astype(np.float32)
    y = np.repeat(np.arange(3), 20)
    layers[:, 1, 0] += 3 * y
    w, mean, scale = fit_layer_weights(layers[:40], y[:40], 3, seed=0)
    moved = layers.copy()
    moved[40:] += 100.0  # "test rows" that are wildly different must not change the fit
    w2, mean2, scale2 = fit_layer_weights(moved[:40], y[:40], 3, seed=0)
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(weighted_view(layers[:40], w, mean, scale), weighted_view(moved[:40], w2, mean2, scale2))


@pytest.mark.parametrize("args,needle", [
    (["--layer", "9"], "0..3"),
    (["--layer", "top"], "--layer"),
    (["--layer", "mean", "--loader", "stream"], "--loader"),
])
def test_bad_layer_settings_are_one_line_errors(tmp_path, args, needle):
    store = make_layered_store(tmp_path)
    out = CliRunner().invoke(train_cli, ["fit", "--store", store.url, "--out", str(tmp_path / "r"), *args])
    assert out.exit_code != 0 and "Traceback" not in out.output and needle in out.output
    assert out.output.strip().splitlines()[-1].startswith("Error:")  # click's usage lines, then one error line


def test_layer_needs_a_store_with_every_layer(tmp_path):
    store = make_real_store(tmp_path / "plain.zarr")
    with pytest.raises(ConfigError, match="--audio-layer all"):
        fit(store.url, str(tmp_path / "r"), layer="mean")
    out = CliRunner().invoke(train_cli, ["fit", "--store", store.url, "--out", str(tmp_path / "r"), "--layer", "mean"])
    assert out.exit_code == 1 and out.output.strip().count("\n") == 0 and "audio_layers" in out.output
