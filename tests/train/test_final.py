"""``train fit --final`` saves a classifier; ``train predict`` labels stores and audio files with it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mirage.cli.train import main as train_cli
from mirage.featstore.errors import CheckpointError, ConfigError
from mirage.featstore.extract import extract
from mirage.featstore.store import write_store
from tests.featstore.test_extract import write_corpus
from tests.train.helpers import make_real_store
from tests.train.test_layers import make_layered_store
from mirage.train.final import load_final, predict_audio, predict_store
from mirage.train.fit import fit


def test_final_model_labels_its_store_and_is_reproducible(tmp_path):
    store = make_real_store(tmp_path / "s.zarr", separation=1.0)
    res = fit(store.url, str(tmp_path / "run"), final=True)
    assert res.metrics["final_model"] == "model"
    model = load_final(str(tmp_path / "run"))
    assert model.config["labels"] == ["angry", "happy", "neutral", "sad"] and model.config["n_train_items"] == store.n_items
    table = predict_store(str(tmp_path / "run" / "model"), store.url, str(tmp_path / "p.parquet"))
    back = pd.read_parquet(tmp_path / "p.parquet")
    assert len(back) == store.n_items and set(back["utt_id"]) == set(store.items["utt_id"])
    probs = back[[f"prob_{lab}" for lab in model.labels]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (back["pred"] == back["label"]).mean() > 0.9  # training data, well separated
    fit(store.url, str(tmp_path / "run2"), final=True)
    assert (tmp_path / "run" / "model" / "weights.safetensors").read_bytes() == \
        (tmp_path / "run2" / "model" / "weights.safetensors").read_bytes()
    assert table["pred"].tolist() == back["pred"].tolist()


def test_weighted_layer_model_predicts_from_all_layers(tmp_path):
    store = make_layered_store(tmp_path, informative=1)
    fit(store.url, str(tmp_path / "run"), layer="weighted", final=True)
    back = predict_store(str(tmp_path / "run"), store.url, str(tmp_path / "p.parquet"))
    assert (back["pred"] == back["label"]).mean() > 0.9
    w = load_final(str(tmp_path / "run")).tensors["layers.weights"].numpy()
    assert int(np.argmax(w)) == 1


def test_predict_refuses_a_store_made_with_other_extractor_settings(tmp_path):
    store = make_real_store(tmp_path / "s.zarr")
    fit(store.url, str(tmp_path / "run"), final=True)
    other_items = store.items.sort_values("row").drop(columns=["row"]).reset_index(drop=True)
    audio = store.read("audio", store.items.sort_values("row")["row"].to_numpy())
    other = write_store(str(tmp_path / "other.zarr"), items=other_items, arrays={"audio": audio},
                        metadata={"corpus": "fixture", "extractors": {"audio": {"extractor": "logmel", "dim": 32}}})
    with pytest.raises(ConfigError, match="re-extract"):
        predict_store(str(tmp_path / "run"), other.url, str(tmp_path / "p.parquet"))
    assert not (tmp_path / "p.parquet").exists()


def test_a_tampered_model_is_refused_in_one_line(tmp_path):
    store = make_real_store(tmp_path / "s.zarr")
    fit(store.url, str(tmp_path / "run"), final=True)
    weights = tmp_path / "run" / "model" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_final(str(tmp_path / "run"))
    out = CliRunner().invoke(train_cli, ["predict", "--model", str(tmp_path / "run"), "--store", store.url,
                                         "--out", str(tmp_path / "p.parquet")])
    assert out.exit_code == 1 and "Traceback" not in out.output and len(out.output.strip().splitlines()) == 1


def test_final_refuses_speaker_normalisation_and_synthetic(tmp_path):
    store = make_real_store(tmp_path / "s.zarr")
    with pytest.raises(ConfigError, match="--final"):
        fit(store.url, str(tmp_path / "run"), final=True, normalise="speaker")
    assert not (tmp_path / "run" / "model").exists()


def test_predict_from_audio_files_matches_predicting_from_their_store(tmp_path):
    table = write_corpus(tmp_path / "corpus", n=24)
    rows = pd.read_csv(table)
    rows["label"] = ["angry", "sad", "happy"] * 8
    rows.to_csv(table, index=False)
    store = extract("csv", root=str(table), store=str(tmp_path / "s.zarr"), audio_model="logmel", text_model="none",
                    progress=False).store
    runner = CliRunner()
    out = runner.invoke(train_cli, ["fit", "--store", store.url, "--out", str(tmp_path / "run"), "--final"])
    assert out.exit_code == 0, out.output
    from_store = predict_store(str(tmp_path / "run"), store.url, str(tmp_path / "a.parquet"))
    files = from_store["path"].tolist()[:3]
    res = runner.invoke(train_cli, ["predict", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "b.parquet"),
                                    *[a for f in files for a in ("--audio", f)]])
    assert res.exit_code == 0, res.output and "3 items labelled" in res.output
    from_audio = pd.read_parquet(tmp_path / "b.parquet")
    prob_cols = [c for c in from_audio.columns if c.startswith("prob_")]
    np.testing.assert_allclose(from_audio[prob_cols].to_numpy(), from_store[prob_cols].to_numpy()[:3], atol=1e-4)
    bad = runner.invoke(train_cli, ["predict", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "c.parquet")])
    assert bad.exit_code != 0 and "exactly one of --store or --audio" in bad.output
    assert json.loads((tmp_path / "run" / "model" / "model.json").read_text())["extractors"]["audio"]["extractor"] == "logmel"


def test_predict_audio_refuses_multimodal_models(tmp_path):
    store = make_real_store(tmp_path / "s.zarr")
    fit(store.url, str(tmp_path / "run"), mode="multimodal", final=True)
    with pytest.raises(ConfigError, match="--mode ser"):
        predict_audio(str(tmp_path / "run"), ["x.wav"], str(tmp_path / "p.parquet"))
