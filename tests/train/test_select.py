"""train compare --select inner and the auto method (train.select)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.featstore.errors import ConfigError

FAST = {"max_iter": 30}


def test_inner_folds_use_outer_training_speakers_only(four_speaker_store):
    from mirage.train.dataset import load_real
    from mirage.train.folds import make_folds
    from mirage.train.select import grid, inner_folds

    real = load_real(four_speaker_store)
    speakers = real.items["speaker"].astype(str).to_numpy()
    for outer in make_folds(real.items, real.metadata, "loso"):
        inner = inner_folds(real, outer.train)
        assert len(inner) == 3
        held = np.concatenate([f.test for f in inner])
        assert sorted(held.tolist()) == sorted(outer.train.tolist())  # every training row is held out once
        for f in inner:
            assert not set(speakers[f.test]) & set(speakers[f.train])
            assert not set(speakers[f.train]) & set(outer.test_speakers)
    assert len(grid("noise")) == 4 and grid("none") == [{}]


def test_auto_and_select_inner(four_speaker_store, tmp_path):
    from mirage.train.compare import compare

    compare(four_speaker_store, str(tmp_path / "a"), methods="none,noise,auto", n="1x", seed=0, classifier_options=FAST)
    table = json.loads((tmp_path / "a" / "compare.json").read_text())
    auto = table["auto"]
    assert set(auto["chosen"]) == set(table["none"]["fold_uar"])
    assert set(auto["chosen"].values()) <= {"none", "noise"} and auto["candidates"] == ["none", "noise"]
    for fold, chosen in auto["chosen"].items():  # auto's fold is the chosen method's fold (same seeds, same setting)
        assert auto["fold_uar"][fold] == table[chosen]["fold_uar"][fold]
        scores = auto["inner_uar"][fold]
        assert chosen == "none" or scores[chosen] > scores["none"]
    assert {"uar_mean", "uar_pooled", "delta_vs_none", "p_value", "ci95"} <= set(auto)

    compare(four_speaker_store, str(tmp_path / "s"), methods="none,noise,auto", n="1x", seed=0, select="inner",
            classifier_options=FAST)
    sel = json.loads((tmp_path / "s" / "compare.json").read_text())
    cfg = json.loads((tmp_path / "s" / "config.json").read_text())
    assert cfg["select"] == "inner" and cfg["inner_folds"] == 3
    assert "select" not in json.loads((tmp_path / "a" / "config.json").read_text())
    for fold, setting in sel["noise"]["selected"].items():
        assert setting["n"] in ("1x", "4x") and setting["synthetic_weight"] in (0.5, 1.0)
        n_train = next(f["n_train_real"] for f in sel["noise"]["folds"] if f["name"] == fold)
        n_syn = next(f["n_train_synthetic"] for f in sel["noise"]["folds"] if f["name"] == fold)
        assert n_syn == n_train * int(setting["n"][0])
    assert sel["none"]["fold_uar"] == table["none"]["fold_uar"]  # none has nothing to select


def test_select_cli_and_bad_values(four_speaker_store, tmp_path):
    from mirage.cli.train import main
    from mirage.train.compare import compare

    with pytest.raises(ConfigError, match="--select"):
        compare(four_speaker_store, str(tmp_path / "x"), methods="none", select="outer")
    out = CliRunner().invoke(main, ["compare", "--store", four_speaker_store, "--methods", "none,auto",
                                    "--out", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert table["auto"]["candidates"] == ["none", "smote", "mixup", "noise"]
    assert table["none"]["p_value"] is None and len(table["auto"]["ci95"]) == 2


@pytest.mark.parametrize("uars, none_uars, clears", [
    ([0.80, 0.82, 0.84], [0.70, 0.71, 0.72], True),    # a clear gain on every inner fold
    ([0.71, 0.75, 0.69], [0.70, 0.70, 0.70], False),   # mean +0.017, but within one SE of the noise
    ([0.70, 0.70, 0.70], [0.70, 0.70, 0.70], False),   # a tie is not a gain
    ([0.69, 0.72, 0.71], [0.70, 0.71, 0.72], False),   # a loss
    ([0.72, 0.72, 0.72], [0.70, 0.70, 0.70], True),    # a constant gain: SE 0
])
def test_auto_takes_augmentation_only_beyond_one_standard_error(uars, none_uars, clears):
    from mirage.train.select import clears_none

    assert clears_none(uars, none_uars) is clears
