"""Speaker-aware InfoGAN (--speaker-dims): the code s, the Q_s head, novel-speaker generation."""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest
from safetensors.numpy import load_file

from mirage.featstore.errors import ConfigError

from .conftest import SPEAKERS, fit_small

QUICK = {"epochs": 8, "align_epochs": 8}


@pytest.fixture(scope="module")
def speaker_model(textfree_store_path, tmp_path_factory):
    return fit_small(textfree_store_path, tmp_path_factory.mktemp("gen_spk") / "gen", speaker_dims=2, **QUICK)


def _weights(model) -> dict[str, np.ndarray]:
    return load_file(str(pathlib.Path(model) / "weights.safetensors"))


def _shard_bytes(out) -> dict[str, str]:
    root = pathlib.Path(out)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "audio" in p.parts}


def test_speaker_flag_adds_codes_and_q_head(speaker_model):
    cfg = json.loads((pathlib.Path(speaker_model) / "config.json").read_text())
    w = _weights(speaker_model)
    assert cfg["speaker_code"]["speakers"] == list(SPEAKERS)
    assert cfg["model_dims"]["speaker"] == 2 and cfg["latent"]["speaker_dim"] == 2
    assert w["data.speaker_codes"].shape == (len(SPEAKERS), 2)
    # Q_s: a regression head from the working space to the code, with its Gaussian variance
    assert w["data.speaker_q_weight"].shape == (cfg["model_dims"]["audio"], 2) and (w["data.speaker_q_var"] > 0).all()
    # G's first layer takes z, one-hot y and s
    first = w["generator.net.0.weight"]
    assert first.shape[1] == cfg["latent"]["noise_dim"] + len(cfg["labels"]) + 2
    # the MI term and its bound are logged; Q_s explains speaker variance on real rows
    history = (pathlib.Path(speaker_model) / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss_g_mi_s", "mi_s_nats", "r2_s"} <= set(history)
    assert cfg["speaker_code"]["real"]["r2_s"] > 0.3 and cfg["final"]["mi_s_nats"] is not None


def test_speaker_dims_capped_by_training_speakers(textfree_store_path, tmp_path):
    m = fit_small(textfree_store_path, tmp_path / "gen", speaker_dims=9, epochs=1, align_epochs=1)
    cfg = json.loads((pathlib.Path(m) / "config.json").read_text())
    assert cfg["speaker_code"]["dims"] == len(SPEAKERS) - 1 and cfg["speaker_code"]["requested_dims"] == 9


def test_off_by_default_leaves_the_fit_unchanged(textfree_store_path, tmp_path, ser_model):
    cfg = json.loads((pathlib.Path(ser_model) / "config.json").read_text())
    assert "speaker_code" not in cfg and "speaker" not in cfg["model_dims"]
    assert not {"speaker_dims", "lambda_speaker", "speaker_mix_train"} & set(cfg["hyper"])
    assert not any(k.startswith("data.speaker") for k in _weights(ser_model))
    # the lever's other settings do nothing while it is off: same fingerprint as the default fit
    off = fit_small(textfree_store_path, tmp_path / "off", speaker_dims=0, lambda_speaker=5.0, speaker_mix_train=1.0)
    assert json.loads((pathlib.Path(off) / "config.json").read_text())["fingerprint"] == cfg["fingerprint"]


def test_novel_speaker_generation_is_deterministic(speaker_model, tmp_path):
    from mirage.augment.generate import generate

    a = generate(speaker_model, tmp_path / "a", n=96, seed=4, shard_size=50, progress=False)
    b = generate(speaker_model, tmp_path / "b", n=96, seed=4, shard_size=50, progress=False)
    c = generate(speaker_model, tmp_path / "c", n=96, seed=5, shard_size=50, progress=False)
    assert a.n_items == 96 and _shard_bytes(tmp_path / "a") == _shard_bytes(tmp_path / "b")
    assert _shard_bytes(tmp_path / "a") != _shard_bytes(tmp_path / "c")
    from mirage.augment import shards
    from mirage.featstore.store.location import Location

    _, run = shards.raw_rows(Location(str(tmp_path / "a")))
    assert run["speaker_codes"] == {"codes": "novel", "mix": 2, "extrapolate": 0.25}
    # resuming with other speaker settings is refused: the manifest records them
    with pytest.raises(ConfigError, match="speaker_codes"):
        generate(speaker_model, tmp_path / "a", n=96, seed=4, shard_size=50, progress=False, speaker_mix=3)


def test_novel_codes_differ_from_every_training_speaker(speaker_model):
    from mirage.augment.checkpoint import load_checkpoint
    from mirage.augment.sampler import FittedGenerator
    from mirage.augment.speakers import SpeakerCodes

    train = SpeakerCodes.from_bundle(load_checkpoint(str(speaker_model))).codes
    gen = FittedGenerator(speaker_model)
    s1, s2 = gen.sample(200, seed=3), gen.sample(200, seed=3)
    assert np.array_equal(s1.audio, s2.audio) and np.array_equal(s1.speaker_code, s2.speaker_code)
    dist = np.linalg.norm(s1.speaker_code[:, None, :] - train[None], axis=2)
    assert dist.min() > 0.05
    # they spread over the training speakers' range, and a little beyond it (extrapolation)
    assert s1.speaker_code.std(axis=0).min() > 0.3
    lo, hi = train.min(axis=0), train.max(axis=0)
    assert ((s1.speaker_code < lo) | (s1.speaker_code > hi)).any()
    # --speaker-codes train: exactly the training speakers' codes
    own = gen.sample(50, seed=3, speaker_codes="train").speaker_code
    assert np.linalg.norm(own[:, None, :] - train[None], axis=2).min(axis=1).max() < 1e-6


def test_novel_codes_mix_distinct_speakers_then_stretch():
    from mirage.augment.speakers import n_uniforms, novel_codes

    codes = np.eye(5, dtype=np.float32)  # one axis per speaker: a convex code's entries are its weights
    u = np.random.default_rng(0).random((500, n_uniforms(5, 2)))
    convex = novel_codes(codes, u, k=2, extrapolate=0.0)
    assert np.allclose(convex.sum(axis=1), 1) and (convex >= -1e-7).all() and ((convex > 1e-7).sum(axis=1) == 2).all()
    assert convex.max() <= 0.9 + 1e-6   # every mixed speaker keeps at least a 10% share
    stretched = novel_codes(codes, u, k=2, extrapolate=0.5)
    centre = codes.mean(axis=0)
    ratio = np.linalg.norm(stretched - centre, axis=1) / np.linalg.norm(convex - centre, axis=1)
    assert ratio.min() >= 1 - 1e-6 and ratio.max() <= 1.5 + 1e-6 and ratio.max() > 1.4


@pytest.mark.parametrize("kw, flag", [({"speaker_dims": -1}, "--speaker-dims"), ({"speaker_dims": 1.5}, "--speaker-dims"),
                                      ({"lambda_speaker": -0.1}, "--lambda-speaker"),
                                      ({"speaker_mix_train": 1.5}, "--speaker-mix-train")])
def test_bad_fit_settings(textfree_store_path, tmp_path, kw, flag):
    with pytest.raises(ConfigError) as e:
        fit_small(textfree_store_path, tmp_path / "gen", **kw)
    assert str(e.value).startswith(flag) and "\n" not in str(e.value)


@pytest.mark.parametrize("kw, flag", [({"speaker_mix": 1}, "--speaker-mix"), ({"speaker_mix": 5}, "--speaker-mix"),
                                      ({"speaker_extrapolate": -1.0}, "--speaker-extrapolate"),
                                      ({"speaker_codes": "all"}, "--speaker-codes")])
def test_bad_generate_settings(speaker_model, tmp_path, kw, flag):
    from mirage.augment.generate import generate

    with pytest.raises(ConfigError) as e:
        generate(speaker_model, tmp_path / "syn", n=10, progress=False, **kw)
    assert str(e.value).startswith(flag) and "\n" not in str(e.value)


def test_one_training_speaker_is_refused(textfree_store_path, tmp_path):
    with pytest.raises(ConfigError, match="^--speaker-dims: expected training data from at least 2 speakers"):
        fit_small(textfree_store_path, tmp_path / "gen", speaker_dims=2, exclude_speakers=",".join(SPEAKERS[1:]))


def test_cli_flags(textfree_store_path, tmp_path):
    from click.testing import CliRunner

    from mirage.cli.augment import main

    res = CliRunner().invoke(main, ["fit", "--store", str(textfree_store_path), "--out", str(tmp_path / "g"),
                                    "--speaker-dims", "-2", "--quiet"])
    assert res.exit_code != 0 and "--speaker-dims" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["fit", "--store", str(textfree_store_path), "--out", str(tmp_path / "g"), "--quiet",
                                    "--speaker-dims", "2", "--epochs", "2", "--align-epochs", "2", "--hidden", "32"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["generate", "--model", str(tmp_path / "g"), "--out", str(tmp_path / "s"), "--n", "20",
                                    "--speaker-mix", "3", "--speaker-extrapolate", "0", "--quiet"])
    assert res.exit_code == 0, res.output


def test_compare_passes_speaker_dims_to_the_fold_generator(textfree_store_path, tmp_path):
    """``train compare --gen-option speaker_dims=N`` reaches the fold's fit (via generate_for_fold)."""
    from mirage.augment.fit import check_fit_options
    from mirage.train.compare import generate_for_fold

    check_fit_options(speaker_dims=3, lambda_speaker=0.5, num_threads=1)
    from mirage.featstore.store import open_store

    fs = open_store(str(textfree_store_path))
    utts = fs.items.loc[fs.items["speaker"] != "s04", "utt_id"].astype(str).tolist()
    fs.close()
    res = generate_for_fold(str(textfree_store_path), str(tmp_path / "fold"), mode="ser", exclude_speakers=["s04"],
                            include_utt_ids=utts, lambda_mi=None, n_items=40, min_mi=0.0, seed=1, storage_options=None,
                            generator_options={"speaker_dims": 3, "epochs": 2, "align_epochs": 2, "hidden": 32})
    cfg = json.loads((tmp_path / "fold" / "model" / "config.json").read_text())
    assert res["n_items"] == 40 and cfg["speaker_code"]["speakers"] == ["s01", "s02", "s03"]
