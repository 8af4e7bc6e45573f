"""Augmented views (featstore.views): parsing, signal operations, extraction, resume, info."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from click.testing import CliRunner

from mirage.cli.featstore import main as featstore_cli
from mirage.featstore import views as V
from mirage.featstore.errors import ConfigError
from mirage.featstore.extract import extract
from mirage.featstore.store import open_store, verify

SR = 16000


def _tone(seed: int, seconds: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    return (0.3 * np.sin(2 * np.pi * (120 + 15 * seed) * t) + 0.01 * rng.standard_normal(t.size)).astype("f4")


def write_corpus(root: Path, n: int = 12, unlabelled: int = 0) -> Path:
    """n short tones of 3 speakers x 2 labels (csv table); the last ``unlabelled`` items have no label."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        sf.write(root / f"u{i:02d}.wav", _tone(i), SR, subtype="PCM_16")
        label = "" if i >= n - unlabelled else ("happy" if i % 2 else "sad")
        rows.append({"path": f"u{i:02d}.wav", "label": label, "speaker": f"s{i % 3}"})
    pd.DataFrame(rows).to_csv(root / "items.csv", index=False)
    return root / "items.csv"


# -- parsing -----------------------------------------------------------------------------------

def test_parse_views_canonical_specs():
    specs = V.parse_views("clean,noise:snr=10,speed:0.9,pitch:2,reverb")
    assert [v.spec for v in specs] == ["clean", "noise:snr=10", "speed:factor=0.9", "pitch:semitones=2", "reverb"]
    assert [v.name for v in specs] == ["clean", "noise", "speed", "pitch", "reverb"]
    # a bare number repeats the previous view with its main parameter
    assert [v.spec for v in V.parse_views("noise:snr=20,10,5,0")] == [f"noise:snr={s}" for s in (20, 10, 5, 0)]
    assert V.parse_views("noise:5:kind=babble")[0].spec == "noise:snr=5:kind=babble"
    assert V.parse_views("reverb:rt60=0.5")[0].param_dict == {"rt60": 0.5}
    assert V.parse_views("noise")[0].spec == "noise:snr=10"


@pytest.mark.parametrize("text, match", [
    ("", "expected a comma-separated view list"),
    ("clean,,noise", "expected a comma-separated view list"),
    ("echo", r"expected a comma-separated view list .* got 'echo'"),
    ("clean,5", r"got '5'"),
    ("noise:snr=loud", "expected a number for noise snr"),
    ("noise:kind=violet", "expected noise kind one of white, pink, brown, babble, got 'violet'"),
    ("speed:9", r"expected a speed factor in \[0.25, 4\]"),
    ("pitch:fast=1", "expected parameters of pitch among semitones, got 'fast'"),
    ("clean,clean", "expected each view once"),
])
def test_parse_views_errors_are_one_line(text, match):
    with pytest.raises(ConfigError, match=match) as info:
        V.parse_views(text)
    assert "\n" not in str(info.value)


# -- signal operations ---------------------------------------------------------------------------

def test_noise_hits_the_requested_snr():
    wave = _tone(0, 1.0)
    for kind in ("white", "pink", "brown"):
        noise = V.coloured_noise(len(wave), kind, np.random.default_rng(1))
        noisy = V.add_noise(wave, noise, 10.0)
        snr = 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) / np.mean((noisy - wave) ** 2))
        assert snr == pytest.approx(10.0, abs=1e-6), kind
    # coloured noise: pink and brown put more power in the low band than white
    spec = {k: np.abs(np.fft.rfft(V.coloured_noise(16000, k, np.random.default_rng(2)))) ** 2 for k in ("white", "pink", "brown")}
    low = {k: s[1:800].sum() / s.sum() for k, s in spec.items()}
    assert low["white"] < low["pink"] < low["brown"]


def test_speed_pitch_reverb_shapes_and_determinism():
    wave = _tone(3, 0.5)
    assert len(V.speed(wave, SR, 0.9)) == pytest.approx(len(wave) / 0.9, abs=2)
    assert len(V.speed(wave, SR, 1.1)) == pytest.approx(len(wave) / 1.1, abs=2)
    shifted = V.pitch(wave, SR, 2)
    assert shifted.shape == wave.shape and not np.allclose(shifted, wave)
    rev = V.reverb(wave, SR, 0.4, 7)
    assert rev.shape == wave.shape
    assert np.mean(rev.astype(np.float64) ** 2) == pytest.approx(np.mean(wave.astype(np.float64) ** 2), rel=1e-6)
    np.testing.assert_array_equal(V.reverb(wave, SR, 0.4, 7), rev)
    h = V.room_impulse_response(SR, 0.5, np.random.default_rng(0))
    env = np.abs(h[int(0.05 * SR):])
    assert env[: len(env) // 4].mean() > 10 * env[-len(env) // 4:].mean()  # decays


def test_params_sampled_first_then_applied_deterministically():
    items = pd.DataFrame({"utt_id": ["a", "b", "c"], "path": ["/x/a.wav", "/x/b.wav", "/x/c.wav"],
                          "speaker": ["s1", "s2", "s3"], "label": ["sad"] * 3})
    specs = V.parse_views("clean,noise:snr=10:kind=babble,reverb")
    plan = V.expand_plan(items, specs, seed=3)
    assert plan["utt_id"].tolist() == ["a", "a#noise:snr=10:kind=babble", "a#reverb", "b", "b#noise:snr=10:kind=babble",
                                       "b#reverb", "c", "c#noise:snr=10:kind=babble", "c#reverb"]
    assert plan["source_utt_id"].tolist() == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    babble = json.loads(plan["aug_params"].iloc[1])
    assert {t["utt_id"] for t in babble["babble"]} == {"b", "c"}  # other speakers' utterances
    assert 0.2 <= json.loads(plan["aug_params"].iloc[2])["rt60"] <= 0.8
    again = V.expand_plan(items, specs, seed=3)
    pd.testing.assert_frame_equal(plan, again)
    assert not V.expand_plan(items, specs, seed=4)["aug_params"].equals(plan["aug_params"])
    wave = _tone(1)
    loads = lambda p: _tone(ord(Path(p).stem))  # noqa: E731
    one = V.apply_view(wave, SR, "noise", plan["aug_params"].iloc[1], load=loads)
    two = V.apply_view(wave, SR, "noise", plan["aug_params"].iloc[1], load=loads)
    assert one.tobytes() == two.tobytes() and one.dtype == np.float32 and not np.allclose(one, wave)


# -- extraction ----------------------------------------------------------------------------------

def test_extract_with_views_rows_columns_info_and_resume(tmp_path):
    table = write_corpus(tmp_path / "corpus")
    store = str(tmp_path / "s.zarr")
    views = "clean,noise:snr=10,speed:0.9,pitch:2,reverb"
    res = extract("csv", root=str(table), store=store, audio_model="logmel", text_model="none", views=views, seed=1,
                  chunk_rows=16, progress=False)
    s = res.store
    items = s.items
    assert s.n_items == 12 * 5
    assert set(items["aug_type"]) == {"clean", "noise", "speed", "pitch", "reverb"}
    clean = items[items["aug_type"] == "clean"]
    assert (clean["utt_id"] == clean["source_utt_id"]).all()
    noisy = items[items["aug_type"] == "noise"].iloc[0]
    assert noisy["utt_id"] == noisy["source_utt_id"] + "#noise:snr=10"
    assert json.loads(noisy["aug_params"])["snr"] == 10
    # views share speaker and label with their source
    by_src = items.groupby("source_utt_id")
    assert (by_src["speaker"].nunique() == 1).all() and (by_src["label"].nunique() == 1).all()
    a = s.read("audio")
    first = items["source_utt_id"] == items["source_utt_id"].iloc[0]
    rows = a[first.to_numpy()]
    assert len({r.tobytes() for r in rows}) == 5  # every view embeds differently
    info = s.info()
    assert info["n_items"] == 60 and info["n_source_items"] == 12
    assert info["views"] == ["clean", "noise", "pitch", "reverb", "speed"]
    assert info["view_specs"] == ["clean", "noise:snr=10", "speed:factor=0.9", "pitch:semitones=2", "reverb"]
    assert s.metadata["views"] == {"specs": info["view_specs"], "seed": 1}
    assert verify(store)["problems"] == []
    # same settings: nothing to do; same seed elsewhere: the same bytes
    assert extract("csv", root=str(table), store=store, audio_model="logmel", text_model="none", views=views, seed=1,
                   chunk_rows=16, progress=False).already_complete
    twin = extract("csv", root=str(table), store=str(tmp_path / "t.zarr"), audio_model="logmel", text_model="none",
                   views=views, seed=1, chunk_rows=16, progress=False).store
    assert twin.content_hash() == s.content_hash()
    # the views are part of the plan fingerprint: other views (or seed) refuse to resume into the store
    from mirage.featstore.errors import StoreExistsError

    with pytest.raises(StoreExistsError):
        extract("csv", root=str(table), store=store, audio_model="logmel", text_model="none", views="clean,reverb",
                seed=1, chunk_rows=16, progress=False)


def test_extract_views_resume_after_partial_run(tmp_path, monkeypatch):
    """A run that dies half way resumes to the same store as an uninterrupted one."""
    import mirage.featstore.extract as E

    table = write_corpus(tmp_path / "corpus", n=12)
    kw = dict(root=str(table), audio_model="logmel", text_model="none", views="clean,noise:snr=5", seed=2,
              chunk_rows=16, progress=False)
    full = extract("csv", store=str(tmp_path / "full.zarr"), **kw).store
    real_write = E.StoreWriter.write_unit
    calls = {"n": 0}

    def dying(self, *a, **k):
        if calls["n"] == 1:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real_write(self, *a, **k)

    monkeypatch.setattr(E.StoreWriter, "write_unit", dying)
    with pytest.raises(KeyboardInterrupt):
        extract("csv", store=str(tmp_path / "part.zarr"), **kw)
    monkeypatch.setattr(E.StoreWriter, "write_unit", real_write)
    res = extract("csv", store=str(tmp_path / "part.zarr"), **kw)
    assert 0 < res.n_units_done_now < res.n_units_total
    assert res.store.content_hash() == full.content_hash()


def test_cli_extract_views_and_unlabelled_info(tmp_path):
    table = write_corpus(tmp_path / "corpus", n=9, unlabelled=3)
    store = str(tmp_path / "s.zarr")
    runner = CliRunner()
    r = runner.invoke(featstore_cli, ["extract", "--corpus", "csv", "--root", str(table), "--store", store,
                                      "--audio-model", "logmel", "--text-model", "none", "--views", "clean,noise:snr=10",
                                      "--seed", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(featstore_cli, ["info", store, "--json"])
    info = json.loads(r.output)
    assert info["n_items"] == 18 and info["n_source_items"] == 9
    assert info["views"] == ["clean", "noise"] and info["n_unlabelled"] == 6
    assert "" not in info["labels"] and sum(info["labels"].values()) == 12
    r = runner.invoke(featstore_cli, ["info", store])
    assert "views      clean, noise:snr=10 (9 source items)" in r.output and "(+6 unlabelled)" in r.output
    bad = runner.invoke(featstore_cli, ["extract", "--corpus", "csv", "--root", str(table), "--store", str(tmp_path / "x"),
                                        "--audio-model", "logmel", "--text-model", "none", "--views", "clean,echo"])
    assert bad.exit_code != 0 and "expected a comma-separated view list" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


def test_info_without_views(tmp_path):
    table = write_corpus(tmp_path / "corpus", n=6)
    s = extract("csv", root=str(table), store=str(tmp_path / "s.zarr"), audio_model="logmel", text_model="none",
                progress=False).store
    info = s.info()
    assert info["n_source_items"] == info["n_items"] == 6 and info["views"] == ["clean"] and info["n_unlabelled"] == 0
    assert "aug_type" not in s.items.columns


@pytest.mark.realdata
def test_emodb_views_contract(tmp_path):
    from tests.conftest import shared_corpus

    root = shared_corpus("emodb")
    store = str(tmp_path / "emodb.zarr")
    r = CliRunner().invoke(featstore_cli, ["extract", "--corpus", "emodb", "--root", str(root), "--store", store,
                                           "--audio-model", "logmel", "--text-model", "none",
                                           "--views", "clean,noise:snr=10", "--quiet"])
    assert r.exit_code == 0, r.output
    info = json.loads(CliRunner().invoke(featstore_cli, ["info", store, "--json"]).output)
    assert info["n_items"] == 1070 and info["n_source_items"] == 535
    assert {"clean", "noise"} <= set(info["views"])


def test_cli_views_store_feeds_train_fit_test_views_and_mtl(tmp_path):
    """featstore extract --views clean,noise:snr=10,noise:snr=0 -> train fit --test-views noise:snr=10,0 and mtl-aug."""
    from mirage.cli.train import main as train_cli

    table = write_corpus(tmp_path / "corpus", n=12)
    store = str(tmp_path / "s.zarr")
    runner = CliRunner()
    r = runner.invoke(featstore_cli, ["extract", "--corpus", "csv", "--root", str(table), "--store", store,
                                      "--audio-model", "logmel", "--text-model", "none",
                                      "--views", "clean,noise:snr=10,noise:snr=0", "--quiet"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(train_cli, ["fit", "--store", store, "--test-views", "noise:snr=10,0", "--out", str(tmp_path / "R")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "R" / "metrics.json").read_text())
    assert set(m["uar_by_view"]) == {"clean", "noise:snr=10", "noise:snr=0"} and m["n_folds"] == 3
    r = runner.invoke(train_cli, ["fit", "--store", store, "--method", "mtl-aug", "--eval", "loso", "--out",
                                  str(tmp_path / "M"), "--mtl-option", "epochs=3", "--mtl-option", "hidden=16"])
    assert r.exit_code == 0, r.output
    assert "uar_mean" in json.loads((tmp_path / "M" / "metrics.json").read_text())
