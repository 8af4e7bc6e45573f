from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.cli.train import main
from mirage.featstore.errors import ConfigError, LeakageError
from mirage.featstore.store import open_store
from tests.train.helpers import LABELS, make_real_store, make_shards
from mirage.train.dataset import assemble, load_real
from mirage.train.fit import fit
from mirage.train.folds import make_folds
from mirage.train.synthetic import load_synthetic, read_manifests

KEYS = {"uar_mean", "uar_std", "folds", "wa", "macro_f1", "confusion", "labels", "chance_uar", "config"}
FOLD_KEYS = {"test_speakers", "uar", "n_train_real", "n_train_synthetic"}


def test_fit_beats_chance_and_writes_metrics(real_store, tmp_path):
    res = fit(real_store, str(tmp_path / "r1"))
    m = json.loads((tmp_path / "r1" / "metrics.json").read_text())
    assert KEYS <= set(m) and all(FOLD_KEYS <= set(f) for f in m["folds"])
    assert m["chance_uar"] == 0.25 and m["labels"] == list(LABELS)
    assert m["uar_mean"] > 0.5, m["uar_mean"]
    assert [f["test_speakers"] for f in m["folds"]] == [[f"{s:02d}"] for s in range(1, 6)]
    assert all(f["n_train_real"] == 160 and f["n_train_synthetic"] == 0 for f in m["folds"])
    assert np.asarray(m["confusion"]).sum() == 200
    assert (tmp_path / "r1" / "confusion.png").stat().st_size > 1000
    assert res.metrics == m and "UAR" in res.message


def test_same_seed_same_bytes(two_speaker_store, tmp_path):
    manifest = make_shards(tmp_path / "syn", open_store(two_speaker_store), trained_speakers=["99"], mi_scores=(0.9, 0.8))
    for run in ("a", "b"):
        fit(two_speaker_store, str(tmp_path / run), synthetic=[manifest], classifier="mlp", seed=3,
            classifier_options={"steps": 60})
    a, b = ((tmp_path / r / "metrics.json").read_bytes() for r in "ab")
    assert a == b
    assert json.loads(a)["folds"][0]["n_train_synthetic"] == 80


def test_standardisation_uses_training_rows_only(real_store):
    real = load_real(real_store)
    fold = make_folds(real.items, real.metadata, "loso")[0]
    ts = assemble(real, fold.train, None, mode="ser", rng=np.random.default_rng(0))
    np.testing.assert_allclose(ts.scaler.mean, real.h[fold.train].mean(0), rtol=1e-5, atol=1e-5)
    assert not np.allclose(ts.scaler.mean, real.h.mean(0), atol=1e-4)
    np.testing.assert_allclose(ts.x_real.mean(0), 0, atol=1e-4)


def test_multimodal_trains_on_four_combinations(real_store, tmp_path):
    manifest = make_shards(tmp_path / "syn", open_store(real_store), trained_speakers=["99"], n_items=30, text_source=True)
    res = fit(real_store, str(tmp_path / "mm"), synthetic=[manifest], mode="multimodal")
    fold = res.metrics["folds"][0]
    assert fold["combinations"] == {"h+t": 160, "hhat+t": 30, "hhat+t_pred": 30, "h+t_pred": 30}
    assert fold["n_train_synthetic"] == 90
    assert res.metrics["uar_mean"] > 0.5
    # without t' only (ĥ, t) joins the real pairs
    plain = make_shards(tmp_path / "syn2", open_store(real_store), trained_speakers=["99"], n_items=30, text_pred=False)
    real = load_real(real_store, mode="multimodal")
    _, kept = read_manifests([plain])
    synth = load_synthetic(kept, real.labels, mode="multimodal", audio_dim=real.audio_dim)
    ts = assemble(real, np.arange(40, 200), synth, mode="multimodal", rng=np.random.default_rng(0))
    assert ts.combos == {"h+t": 160, "hhat+t": 30} and ts.x_syn.shape == (30, 48)


def test_min_mi_skips_shards_without_opening_them(real_store, tmp_path, monkeypatch):
    manifest = make_shards(tmp_path / "syn", open_store(real_store), trained_speakers=["99"], n_items=20,
                           mi_scores=(0.3, 0.7, 0.5))
    opened = []
    import mirage.featstore.store as fs_store

    orig = fs_store.open_store

    def spy(url, **kw):
        opened.append(str(url))
        return orig(url, **kw)

    monkeypatch.setattr(fs_store, "open_store", spy)
    res = fit(real_store, str(tmp_path / "mi"), synthetic=[manifest], min_mi=0.6)
    assert all(f["n_train_synthetic"] == 20 for f in res.metrics["folds"])
    assert not any("shard-00000" in u or "shard-00002" in u for u in opened)
    assert any("shard-00001" in u for u in opened)


def test_leakage_is_refused(real_store, tmp_path):
    manifest = make_shards(tmp_path / "syn", open_store(real_store), trained_speakers=["01", "02", "03", "04", "05"])
    with pytest.raises(LeakageError):
        fit(real_store, str(tmp_path / "x"), synthetic=[manifest])
    result = CliRunner().invoke(main, ["fit", "--store", real_store, "--synthetic", manifest, "--out", str(tmp_path / "y")])
    assert result.exit_code != 0
    lines = [ln for ln in result.output.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "exclude-speakers" in lines[0], result.output
    assert not (tmp_path / "y" / "metrics.json").exists()
    # a generator that saw only speaker 01 may serve the fold that tests on 01 ... and on no other fold
    only = make_shards(tmp_path / "syn1", open_store(real_store), trained_speakers=["02", "03", "04", "05"])
    with pytest.raises(LeakageError, match="speaker=02"):
        fit(real_store, str(tmp_path / "z"), synthetic=[only])


def test_official_split_and_cli_fit(tmp_path):
    url = str(tmp_path / "official.zarr")
    make_real_store(url, splits={"05": "test"})
    manifest = make_shards(tmp_path / "syn", open_store(url), trained_speakers=["01", "02", "03", "04"])
    result = CliRunner().invoke(main, ["fit", "--store", url, "--eval", "official", "--synthetic", manifest,
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert [f["test_speakers"] for f in m["folds"]] == [["05"]] and m["folds"][0]["n_train_synthetic"] == 40


def test_streamed_training_beats_chance(real_store, two_speaker_store, tmp_path):
    manifest = make_shards(tmp_path / "syn", open_store(real_store), trained_speakers=["99"], n_items=40)
    res = fit(real_store, str(tmp_path / "s"), synthetic=[manifest], loader="stream",
              classifier_options={"batch_size": 32, "stream_epochs": 6})
    assert res.metrics["config"]["loader"] == "stream"
    assert res.metrics["folds"][0]["n_train_synthetic"] == 40
    assert res.metrics["uar_mean"] > 0.45
    manifest2 = make_shards(tmp_path / "syn2", open_store(two_speaker_store), trained_speakers=["99"], n_items=20)
    mm = fit(two_speaker_store, str(tmp_path / "m"), synthetic=[manifest2], loader="stream", mode="multimodal",
             classifier_options={"batch_size": 64, "stream_epochs": 1})
    assert mm.metrics["folds"][0]["combinations"] == {"h+t": 32, "hhat+t": 20, "hhat+t_pred": 20}


def test_bad_inputs_are_config_errors(real_store, tmp_path):
    with pytest.raises(ConfigError, match="--mode"):
        fit(real_store, str(tmp_path / "a"), mode="video")
    bad = make_shards(tmp_path / "syn", open_store(real_store), trained_speakers=["99"], labels=("joy",))
    with pytest.raises(ConfigError, match="joy"):
        fit(real_store, str(tmp_path / "b"), synthetic=[bad])
    result = CliRunner().invoke(main, ["fit", "--store", str(tmp_path / "missing.zarr"), "--out", str(tmp_path / "c")])
    assert result.exit_code != 0 and "featstore extract" in result.output


def test_h_t_pred_pairs_use_the_conditioning_item_when_it_is_in_the_fold(real_store):
    from mirage.train.dataset import _paired_real
    from mirage.train.synthetic import SyntheticData

    real = load_real(real_store, mode="multimodal")
    train_idx = np.arange(40, 200)  # speaker 01 (rows 0..39) held out
    src = real.items["utt_id"].to_numpy()[[50, 60, 5]]  # the last one is a test item
    synth = SyntheticData(h=np.zeros((3, 32), np.float32), y=real.y[[50, 60, 5]], text_source=src)
    pair = _paired_real(real, train_idx, synth, np.random.default_rng(0))
    assert pair[:2].tolist() == [50, 60]
    assert pair[2] in train_idx and real.y[pair[2]] == real.y[5]


def test_fixture_shards_are_what_augment_writes(real_store, tmp_path):
    """The helpers write shard sets with augment's own writers: augment's readers and checks accept them."""
    from mirage.augment.shards import COLUMNS, read_manifest_run
    from mirage.augment.vouch import check_rows
    from mirage.featstore import kinds

    manifest = make_shards(tmp_path / "syn", open_store(real_store), trained_speakers=["99"], mi_scores=(0.9, 0.5))
    df, run = read_manifest_run(manifest)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS) and run["generator"] == df["generator"].iloc[0]
    check_rows(df, run)  # every row matches the shard's own record
    assert kinds.detect_kind(str(tmp_path / "syn")) == kinds.SHARD_SET
    assert kinds.detect_kind(df["path_abs"].iloc[0]) == kinds.SHARD
