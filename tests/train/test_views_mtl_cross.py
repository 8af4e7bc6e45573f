"""Stores with augmented views and unlabelled items in training: folds, train fit (--test-views,
--train-views), --method mtl-aug, and train cross."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mirage.cli.train import main as train_cli
from mirage.featstore.errors import ConfigError
from mirage.featstore.store import open_store, write_store
from mirage.train.dataset import real_items
from mirage.train.folds import make_folds

LABELS = ("angry", "happy", "neutral", "sad")
FAST = ["--mtl-option", "epochs=40", "--mtl-option", "hidden=32"]


def make_view_store(path, *, n_speakers: int = 3, per_class: int = 6, dim: int = 16, unlabelled: int = 0,
                    snrs=(10, 0), seed: int = 0, labels=LABELS, corpus: str = "fixture", shift: float = 0.0,
                    extractor: str = "fixture"):
    """Clean rows with class-dependent Gaussian features, one noise view per SNR (more noise at lower SNR),
    and ``unlabelled`` extra items (empty label) per speaker, with their views."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((len(labels), dim)) * 1.5
    rows, feats = [], []
    for s in range(n_speakers):
        spk = f"{s + 1:02d}"
        for c, lab in enumerate([*labels, *([""] * unlabelled)]):
            for i in range(per_class if lab else 1):
                uid = f"{spk}_{lab or 'unl'}_{c}_{i:02d}"
                clean = (mu[c] if lab else rng.standard_normal(dim)) + rng.standard_normal(dim) + shift
                base = {"path": f"/nowhere/{uid}.wav", "speaker": spk, "label": lab, "split": "train",
                        "duration_s": 1.0, "text": "", "source_utt_id": uid}
                rows.append({**base, "utt_id": uid, "view": "clean", "aug_type": "clean", "aug_params": "{}"})
                feats.append(clean)
                for snr in snrs:
                    spec = f"noise:snr={snr}"
                    rows.append({**base, "utt_id": f"{uid}#{spec}", "view": spec, "aug_type": "noise",
                                 "aug_params": json.dumps({"snr": snr})})
                    feats.append(clean + rng.standard_normal(dim) * (3.0 / (1 + snr / 5)))
    items = pd.DataFrame(rows)
    meta = {"corpus": corpus, "extractors": {"audio": {"extractor": extractor}, "text": None}}
    return write_store(str(path), items=items, arrays={"audio": np.asarray(feats, np.float32)}, metadata=meta, chunk_rows=16)


@pytest.fixture(scope="module")
def view_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "v.zarr"
    make_view_store(path, unlabelled=2)
    return str(path)


def test_folds_keep_views_with_speaker_and_test_clean_labelled(view_store):
    store = open_store(view_store)
    items = store.items.sort_values("row").reset_index(drop=True)
    folds = make_folds(items, store.metadata, "loso")
    assert len(folds) == 3
    spk = items["speaker"].to_numpy()
    for f in folds:
        assert set(spk[f.test]) == set(f.test_speakers) and not set(spk[f.train]) & set(f.test_speakers)
        assert set(items["aug_type"].iloc[f.test]) == {"clean"}
        assert (items["label"].iloc[f.test] != "").all()
        assert set(items["aug_type"].iloc[f.train]) == {"clean", "noise"}
        assert (items["label"].iloc[f.train] == "").any()  # unlabelled rows stay in training (mtl-aug uses them)
    info = store.info()
    assert info["n_unlabelled"] == 3 * 2 * 3 and info["n_source_items"] == 3 * (24 + 2)


def test_real_items_leaves_unlabelled_out(view_store):
    items, labels, y = real_items(open_store(view_store))
    assert labels == list(LABELS) and (items["label"] != "").all() and len(y) == len(items) == 3 * 24 * 3


def test_fit_trains_on_views_tests_clean_and_reports_uar_by_view(view_store, tmp_path):
    from mirage.train.fit import fit

    res = fit(view_store, str(tmp_path / "r"), test_views="noise:snr=10,0")
    m = res.metrics
    assert set(m["uar_by_view"]) == {"clean", "noise:snr=10", "noise:snr=0"}
    assert m["uar_by_view"]["clean"] == m["uar_mean"]
    assert m["uar_by_view"]["clean"] >= m["uar_by_view"]["noise:snr=0"]
    f0 = m["folds"][0]
    assert f0["n_test"] == 24 and f0["n_train_real"] == 2 * 24 * 3  # all views of the training speakers
    assert set(f0["uar_by_view"]) == {"noise:snr=10", "noise:snr=0"}
    assert os.path.isfile(tmp_path / "r" / "uar_by_view.png")
    clean_only = fit(view_store, str(tmp_path / "c"), train_views="clean", test_views="noise:snr=0").metrics
    assert clean_only["folds"][0]["n_train_real"] == 2 * 24 and clean_only["config"]["train_views"] == "clean"
    # same seed, same bytes
    again = fit(view_store, str(tmp_path / "r2"), test_views="noise:snr=10,0")
    assert open(again.metrics_path).read() == open(res.metrics_path).read()


def test_test_views_missing_in_store_is_one_line(view_store, tmp_path):
    r = CliRunner().invoke(train_cli, ["fit", "--store", view_store, "--out", str(tmp_path / "r"),
                                       "--test-views", "noise:snr=10,5"])
    assert r.exit_code == 1
    assert "noise:snr=5, which it lacks" in r.output and "re-extract with --views clean,noise:snr=10,noise:snr=0,noise:snr=5" in r.output
    assert len(r.output.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="expected a comma-separated view list"):
        from mirage.train.fit import fit

        fit(view_store, str(tmp_path / "x"), test_views="loud")


def test_mtl_aug_cli_writes_uar_mean_and_is_deterministic(view_store, tmp_path):
    out = tmp_path / "mtl"
    r = CliRunner().invoke(train_cli, ["fit", "--store", view_store, "--method", "mtl-aug", "--eval", "loso",
                                       "--out", str(out), "--test-views", "noise:snr=0", *FAST])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= m["uar_mean"] <= 1.0 and m["n_folds"] == 3 and m["config"]["method"] == "mtl-aug"
    assert m["config"]["aug_types"] == ["clean", "noise"] and m["config"]["n_unlabelled"] == 3 * 2 * 3
    combos = m["folds"][0]["combinations"]
    assert combos["unlabelled"] == 2 * 2 * 3 and combos["labelled"] == 2 * 24 * 3
    assert set(m["uar_by_view"]) == {"clean", "noise:snr=0"}
    assert m["uar_mean"] > 0.5  # separable classes: well above chance (0.25)
    out2 = tmp_path / "mtl2"
    CliRunner().invoke(train_cli, ["fit", "--store", view_store, "--method", "mtl-aug", "--out", str(out2),
                                   "--test-views", "noise:snr=0", *FAST])
    assert (out2 / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()


def test_mtl_aug_ablations_and_settings(view_store, tmp_path):
    from mirage.train.mtl import MtlConfig, fit_mtl

    res = fit_mtl(view_store, str(tmp_path / "a"), options={"epochs": 4, "hidden": 16}, ablations=True)
    doc = json.loads((tmp_path / "a" / "ablations.json").read_text())
    assert list(doc["variants"]) == ["mtl-aug", "no-aug-task", "no-recon-task", "single-task"] or \
        set(doc["variants"]) == {"mtl-aug", "no-aug-task", "no-recon-task", "single-task"}
    assert doc["variants"]["single-task"]["w_aug"] == 0 and doc["variants"]["single-task"]["w_recon"] == 0
    assert doc["variants"]["mtl-aug"]["uar_mean"] == res.metrics["uar_mean"]
    assert os.path.isfile(tmp_path / "a" / "ablations.png")
    with pytest.raises(ConfigError, match="--mtl-option: expected settings among"):
        MtlConfig.from_kwargs(w_fancy=1)
    with pytest.raises(ConfigError, match="w_emotion=0"):
        MtlConfig.from_kwargs(w_emotion=0)


def test_mtl_aug_on_plain_store(real_store, tmp_path):
    """No views, no unlabelled items: one aug type (head skipped), decoder reconstructs the row."""
    from mirage.train.mtl import fit_mtl

    m = fit_mtl(real_store, str(tmp_path / "p"), options={"epochs": 4, "hidden": 16}).metrics
    assert m["n_folds"] == 5 and m["config"]["aug_types"] == ["clean"] and 0 <= m["uar_mean"] <= 1


def test_fit_does_not_crash_on_unlabelled_items(tmp_path):
    from mirage.train.fit import fit

    path = tmp_path / "u.zarr"
    make_view_store(path, snrs=(), unlabelled=3)
    m = fit(str(path), str(tmp_path / "r")).metrics
    assert m["folds"][0]["n_train_real"] == 2 * 24 and m["labels"] == list(LABELS)


# -- train cross -------------------------------------------------------------------------------

def test_cross_maps_labels_standardises_on_train_and_writes_metrics(tmp_path):
    a = make_view_store(tmp_path / "a.zarr", snrs=(), labels=("angry", "happy", "neutral", "sad"), seed=0, corpus="a")
    b = make_view_store(tmp_path / "b.zarr", snrs=(), labels=("angry", "happy", "neutral", "sad"), seed=0, corpus="b",
                        shift=0.1)
    # the test corpus names its labels differently, has an extra one, and keeps the class means of a/b
    c = make_view_store(tmp_path / "c.zarr", snrs=(), labels=("angry", "happy", "neutral", "sad"), seed=0, corpus="c")
    items = c.items.copy()
    items["label"] = items["label"].map({"angry": "anger", "happy": "happiness", "neutral": "neutral", "sad": "boredom"})
    write_store(str(tmp_path / "c2.zarr"), items=items.drop(columns="row"), arrays={"audio": c.read("audio")},
                metadata={"corpus": "c", "extractors": {"audio": {"extractor": "fixture"}, "text": None}}, chunk_rows=16)
    out = tmp_path / "x"
    r = CliRunner().invoke(train_cli, ["cross", "--train", f"{a.url},{b.url}", "--test", str(tmp_path / "c2.zarr"),
                                       "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["labels"] == ["angry", "happy", "neutral"]  # anger/happiness canonical; boredom/sad not shared
    assert m["dropped"][str(tmp_path / "c2.zarr")] == {"boredom": 18}
    assert m["n_train"] == 2 * 3 * 18 and m["n_test"] == 3 * 18 and m["uar"] > 0.6
    assert os.path.isfile(out / "confusion.png")
    # --label-map: boredom counts as sad
    lm = tmp_path / "map.json"
    lm.write_text(json.dumps({"boredom": "sad"}))
    out2 = tmp_path / "y"
    r = CliRunner().invoke(train_cli, ["cross", "--train", a.url, "--test", str(tmp_path / "c2.zarr"), "--out", str(out2),
                                       "--label-map", str(lm)])
    assert r.exit_code == 0, r.output
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["labels"] == list(LABELS) and m2["n_test"] == 4 * 18 and not m2["dropped"]


def test_cross_standardises_on_training_corpora_only(tmp_path, monkeypatch):
    import mirage.train.cross as C

    a = make_view_store(tmp_path / "a.zarr", snrs=(), seed=0)
    c = make_view_store(tmp_path / "c.zarr", snrs=(), seed=0, shift=5.0)
    seen = []
    real_fit = C.Standardizer.fit

    def spy(x):
        seen.append(len(x))
        return real_fit(x)

    monkeypatch.setattr(C.Standardizer, "fit", staticmethod(spy))
    m = C.cross(a.url, c.url, str(tmp_path / "o")).metrics
    assert seen == [m["n_train"]]  # only the training rows
    # per-corpus z-scoring removes the shift
    m_corpus = C.cross(a.url, c.url, str(tmp_path / "o2"), normalise="corpus").metrics
    assert m_corpus["uar"] > m["uar"]


@pytest.mark.parametrize("case, match", [
    ("labels", "expected at least 2 emotion labels common"),
    ("dim", "expected stores of one feature space"),
    ("map", "--label-map: expected a JSON object"),
])
def test_cross_errors_are_one_line(tmp_path, case, match):
    a = make_view_store(tmp_path / "a.zarr", snrs=(), labels=("angry", "sad"))
    if case == "labels":
        c = make_view_store(tmp_path / "c.zarr", snrs=(), labels=("happy", "neutral"))
    elif case == "dim":
        c = make_view_store(tmp_path / "c.zarr", snrs=(), labels=("angry", "sad"), dim=8)
    else:
        c = make_view_store(tmp_path / "c.zarr", snrs=(), labels=("angry", "sad"))
    args = ["cross", "--train", a.url, "--test", c.url, "--out", str(tmp_path / "o")]
    if case == "map":
        (tmp_path / "m.json").write_text("[1, 2]")
        args += ["--label-map", str(tmp_path / "m.json")]
    r = CliRunner().invoke(train_cli, args)
    assert r.exit_code == 1 and match in r.output and len(r.output.strip().splitlines()) == 1


# -- --attack ----------------------------------------------------------------------------------

def test_parse_attacks():
    from mirage.train.attack import parse_attacks

    assert [a.spec for a in parse_attacks("fgsm:eps=0.1,0.5")] == ["fgsm:eps=0.1", "fgsm:eps=0.5"]
    assert parse_attacks("pgd:eps=0.2")[0].steps == 10
    for bad, match in (("fgsm", "expected eps"), ("boom:eps=1", "expected attacks such as"),
                       ("fgsm:eps=-1", "expected eps >= 0"), ("fgsm:steps=3:eps=1", "parameters among eps")):
        with pytest.raises(ConfigError, match=match):
            parse_attacks(bad)


def test_attack_lowers_uar_monotonically_fit_and_mtl(view_store, tmp_path):
    from mirage.train.fit import fit
    from mirage.train.mtl import fit_mtl

    m = fit(view_store, str(tmp_path / "f"), attack="fgsm:eps=0,0.5,2,pgd:eps=2:steps=5").metrics
    u = m["uar_under_attack"]
    assert u["none"] == m["uar_mean"] == u["fgsm:eps=0"]
    assert u["fgsm:eps=0.5"] <= u["none"] and u["fgsm:eps=2"] < u["fgsm:eps=0.5"]
    assert u["pgd:eps=2:steps=5"] <= u["fgsm:eps=2"] + 1e-9
    assert "uar_under_attack" in m["folds"][0]
    mm = fit_mtl(view_store, str(tmp_path / "m"), options={"epochs": 10, "hidden": 16}, attack="fgsm:eps=2").metrics
    assert mm["uar_under_attack"]["fgsm:eps=2"] < mm["uar_mean"]


@pytest.mark.parametrize("args, message", [
    (["--method", "mtl-aug", "--layer", "2"], "--method mtl-aug: expected --mode ser, --normalise global and no "
                                              "--synthetic/--layer/--final, got --layer"),
    (["--method", "mtl-aug", "--final", "--normalise", "speaker"], "got --normalise speaker, --final"),
    (["--mtl-ablations"], "--mtl-option/--mtl-ablations: expected --method mtl-aug, got --method linear-probe"),
])
def test_method_clashes_are_refused_by_the_library_in_one_line(view_store, tmp_path, args, message):
    r = CliRunner().invoke(train_cli, ["fit", "--store", view_store, "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 1 and message in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
