"""augment fit: files, config, MI orderings, text-free mode, divergence, refusal to mix stores."""

import json

import numpy as np
import pandas as pd
import pytest

from mirage.augment.checkpoint import load_checkpoint, read_config
from mirage.augment.fit import fit_generator
from mirage.featstore.errors import ConfigError, StoreCorruptError, StoreExistsError, TrainingDivergedError
from tests.augment.conftest import SMALL, fit_small, make_store


def test_fit_writes_checkpoint_files(trained_model, store_path):
    files = sorted(p.name for p in trained_model.iterdir())
    assert files == ["codes.parquet", "config.json", "history.csv", "history.png", "weights.safetensors"]
    cfg = json.loads((trained_model / "config.json").read_text())
    assert cfg["dims"] == {"audio": 32, "text": 16}
    assert cfg["labels"] == ["angry", "happy", "neutral", "sad"]
    assert cfg["latent"]["noise_dim"] == SMALL["noise_dim"]
    assert cfg["lambda_mi"] == 1.0 and cfg["tau"] == 0.1 and cfg["seed"] == 0
    assert cfg["speakers"] == ["s01", "s02", "s03", "s04"]
    from mirage.featstore.store import open_store

    with open_store(str(store_path)) as s:
        assert cfg["source"]["content_hash"] == s.metadata["content_hash"]
    assert len(cfg["fingerprint"]) == 16
    assert (trained_model / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_logs_losses_and_both_mi_bounds(trained_model):
    h = pd.read_csv(trained_model / "history.csv")
    gan = h[h.stage == "gan"]
    assert len(gan) == 26  # epoch 0 (untrained G) + 25 epochs
    for col in ("loss_d", "loss_g_adv", "loss_g_mi_y", "loss_g_mi_t", "mi_y_nats", "mi_t_nats", "mi_score",
                "batch_mi_y_nats", "batch_mi_t_nats"):
        assert col in gan.columns, col
    assert gan["mi_y_nats"].notna().all()  # small fits are scored every epoch
    assert (h[h.stage == "align"]["loss"].notna()).all()


def test_checkpoint_loads_without_pickle(trained_model, monkeypatch):
    import pickle

    def _no_pickle(*a, **k):
        raise AssertionError("checkpoint loading must not unpickle")

    monkeypatch.setattr(pickle, "loads", _no_pickle)
    monkeypatch.setattr(pickle, "load", _no_pickle)
    b = load_checkpoint(str(trained_model))
    assert b.use_text and b.tensors["text_codes"].shape == (192, 16)
    assert b.tensors["audio_mean"].shape == (32,)


def test_trained_generator_scores_above_untrained(trained_model, untrained_model):
    trained = read_config(str(trained_model))["final"]["mi_score"]
    untrained = read_config(str(untrained_model))["final"]["mi_score"]
    assert trained > untrained + 0.3, (trained, untrained)


def test_lambda_mi_scores_above_cgan(trained_model, cgan_model):
    with_mi = read_config(str(trained_model))["final"]
    without = read_config(str(cgan_model))["final"]
    assert with_mi["mi_score"] > without["mi_score"] + 0.3, (with_mi, without)
    assert with_mi["mi_y_nats"] > without["mi_y_nats"]
    assert read_config(str(cgan_model))["lambda_mi"] == 0.0


def test_fit_is_deterministic(store_path, tmp_path):
    kw = {"epochs": 3, "align_epochs": 3}
    a = fit_small(store_path, tmp_path / "a", **kw)
    b = fit_small(store_path, tmp_path / "b", **kw)
    for name in ("weights.safetensors", "codes.parquet", "config.json", "history.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_text_free_mode(textfree_store_path, ser_model):
    cfg = read_config(str(ser_model))
    assert cfg["use_text"] is False and cfg["dims"]["text"] is None
    assert cfg["final"]["mi_t_nats"] is None
    b = load_checkpoint(str(ser_model))
    assert "text_codes" not in b.tensors


def test_text_conditioning_is_opt_in_for_ser(store_path, tmp_path):
    out = fit_small(store_path, tmp_path / "g", epochs=2, align_epochs=2)
    assert read_config(str(out))["dims"]["text"] is None  # ser: c = y
    out = fit_small(store_path, tmp_path / "gt", use_text=True, epochs=2, align_epochs=2)
    cfg = read_config(str(out))
    assert cfg["dims"]["text"] == 16 and cfg["mode"] == "ser" and cfg["use_text"] is True
    with pytest.raises(ConfigError, match="multimodal"):
        fit_small(store_path, tmp_path / "g2", mode="multimodal", use_text=False, epochs=1, align_epochs=1)


def test_text_flag_needs_text(textfree_store_path, tmp_path):
    with pytest.raises(ConfigError, match="--text"):
        fit_small(textfree_store_path, tmp_path / "g", use_text=True)


def test_multimodal_needs_text(textfree_store_path, tmp_path):
    with pytest.raises(ConfigError, match="text embeddings"):
        fit_small(textfree_store_path, tmp_path / "g", mode="multimodal")


def test_exclude_speakers_and_items(store_path, tmp_path):
    out = fit_small(store_path, tmp_path / "g", exclude_speakers="s02,s04", epochs=1, align_epochs=1)
    cfg = read_config(str(out))
    assert cfg["speakers"] == ["s01", "s03"] and cfg["excluded_speakers"] == ["s02", "s04"]
    assert cfg["n_train_items"] == 96
    ids = [f"s01_angry_{i:02d}" for i in range(12)] + [f"s03_sad_{i:02d}" for i in range(12)]
    out = fit_small(store_path, tmp_path / "g2", include_utt_ids=ids, epochs=1, align_epochs=1)
    cfg = read_config(str(out))
    assert cfg["n_train_items"] == 24 and cfg["speakers"] == ["s01", "s03"]
    assert cfg["labels"] == ["angry", "happy", "neutral", "sad"]  # the store's label set, for fixed dims
    assert cfg["label_prior"] == [0.5, 0.0, 0.0, 0.5]


def test_divergence_raises_and_writes_no_checkpoint(store_path, tmp_path):
    out = tmp_path / "g"
    with pytest.raises(TrainingDivergedError, match="no checkpoint was written"):
        fit_small(store_path, out, lr_g=1e7, lr_d=1e7, epochs=20, align_epochs=1, max_loss=1e3)
    assert not (out / "config.json").exists() and not (out / "weights.safetensors").exists()
    assert (out / "history.csv").exists()  # the curves up to the failure are kept


def test_nan_features_are_refused(tmp_path):
    store = make_store(tmp_path / "nan.zarr", nan_rows=3)
    store.close()
    with pytest.raises(StoreCorruptError, match="NaN"):
        fit_small(tmp_path / "nan.zarr", tmp_path / "g")


def test_store_without_labels(tmp_path):
    make_store(tmp_path / "nolab.zarr", with_labels=False).close()
    with pytest.raises(ConfigError, match="labels"):
        fit_small(tmp_path / "nolab.zarr", tmp_path / "g")


def test_refuses_to_replace_a_model_of_another_store(store_path, tmp_path):
    out = fit_small(store_path, tmp_path / "g", epochs=1, align_epochs=1)
    other = make_store(tmp_path / "other.zarr", audio_dim=24, text_dim=8, seed=3)
    other.close()
    with pytest.raises(StoreExistsError, match="another store"):
        fit_small(tmp_path / "other.zarr", out, epochs=1, align_epochs=1)
    fit_small(tmp_path / "other.zarr", out, epochs=1, align_epochs=1, overwrite=True)
    assert read_config(str(out))["dims"]["audio"] == 24


@pytest.mark.parametrize("kw,match", [({"lambda_mi": -1}, "lambda-mi"), ({"epochs": -2}, "epochs"),
                                      ({"bogus": 1}, "unknown setting"), ({"mode": "video"}, "--mode"),
                                      ({"batch_size": 1}, "batch-size"), ({"lambda_warmup": 2.0}, "warmup")])
def test_bad_settings(store_path, tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        fit_generator(str(store_path), str(tmp_path / "g"), progress=False, **kw)


def test_levers_run(store_path, tmp_path):
    """λ warm-up, mode seeking, moment matching, CE margin and a projection D all train."""
    out = fit_small(store_path, tmp_path / "g", epochs=4, align_epochs=2, lambda_warmup=0.5, diversity=0.5,
                    moment=1.0, ce_margin_nats=0.1, cond_d=True)
    h = pd.read_csv(out / "history.csv")
    gan = h[h.stage == "gan"]
    assert np.allclose(gan["lam"].to_numpy()[1:], [0.5, 1.0, 1.0, 1.0])
    assert gan["loss_mode_seeking"].notna().iloc[1:].all() and gan["loss_moment"].notna().iloc[1:].all()


def test_check_fit_options():
    from mirage.augment.fit import check_fit_options

    check_fit_options(use_text=False, lambda_mi=0.5, moment=1.0, overwrite=True)
    with pytest.raises(ConfigError, match="unknown setting"):
        check_fit_options(lamda_mi=1.0)
    with pytest.raises(ConfigError, match="--mode"):
        check_fit_options(mode="audio")
