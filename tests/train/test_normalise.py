"""--normalise none|global|speaker in train fit and train compare."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mirage.featstore.errors import ConfigError


def _offset_store(path, *, n_speakers=6, per_class=10, dim=16, seed=0):
    """Weak class signal under big per-speaker offsets and scales: LOSO suffers unless speakers are normalised."""
    from mirage.featstore.store import write_store

    rng = np.random.default_rng(seed)
    labels = ("angry", "happy", "neutral", "sad")
    mu = rng.standard_normal((len(labels), dim)) * 0.6
    rows, x = [], []
    for s in range(n_speakers):
        off, scale = rng.standard_normal(dim) * 4.0, np.exp(rng.normal(0, 0.5, dim))
        for c, lab in enumerate(labels):
            for i in range(per_class):
                rows.append({"utt_id": f"s{s}_{lab}_{i:02d}", "path": "", "speaker": f"s{s}", "label": lab,
                             "split": "train", "duration_s": 1.0, "text": ""})
                x.append((mu[c] + rng.standard_normal(dim)) * scale + off)
    write_store(str(path), items=pd.DataFrame(rows), arrays={"audio": np.asarray(x, np.float32)},
                metadata={"corpus": "offsets"}).close()
    return str(path)


@pytest.fixture(scope="module")
def offset_store(tmp_path_factory):
    return _offset_store(tmp_path_factory.mktemp("norm") / "off.zarr")


def test_speaker_normalisation_removes_speaker_offsets(offset_store, tmp_path):
    from mirage.train.fit import fit

    glob = fit(offset_store, str(tmp_path / "g"), seed=0)
    spk = fit(offset_store, str(tmp_path / "s"), seed=0, normalise="speaker")
    assert spk.metrics["uar_mean"] > glob.metrics["uar_mean"] + 0.15, (spk.metrics["uar_mean"], glob.metrics["uar_mean"])
    assert spk.metrics["config"]["normalise"] == "speaker"
    assert "normalise" not in glob.metrics["config"]  # the default adds no key: old outputs keep their bytes


def test_global_is_the_default_and_none_is_raw(real_store, tmp_path):
    from mirage.train.fit import fit

    default = fit(real_store, str(tmp_path / "d"), seed=0)
    explicit = fit(real_store, str(tmp_path / "e"), seed=0, normalise="global")
    assert (tmp_path / "d" / "metrics.json").read_bytes() == (tmp_path / "e" / "metrics.json").read_bytes()
    raw = fit(real_store, str(tmp_path / "n"), seed=0, normalise="none")
    assert raw.metrics["config"]["normalise"] == "none" and raw.metrics["uar_mean"] > 0.3
    assert default.metrics["uar_mean"] == explicit.metrics["uar_mean"]


def test_normalise_speakers_uses_each_speakers_own_rows(real_store):
    from mirage.train.dataset import assemble, load_real, normalise_speakers
    from mirage.train.folds import make_folds

    real = load_real(real_store)
    fold = make_folds(real.items, real.metadata, "loso")[0]
    normed = normalise_speakers(real, fold.train, fold.test)
    speakers = real.items["speaker"].astype(str).to_numpy()
    for spk in np.unique(speakers):
        rows = np.flatnonzero(speakers == spk)
        np.testing.assert_allclose(normed.h[rows].mean(0), 0.0, atol=1e-4)
        np.testing.assert_allclose(normed.h[rows].std(0), 1.0, atol=1e-3)
    # the labels of the test speaker are never read: shuffling them leaves its features unchanged
    shuffled = real.__class__(**{**real.__dict__, "y": np.random.default_rng(0).permutation(real.y)})
    np.testing.assert_array_equal(normalise_speakers(shuffled, fold.train, fold.test).h[fold.test], normed.h[fold.test])
    # the pooled statistics (for synthetic rows of no known speaker): training mean, within-speaker std
    np.testing.assert_allclose(normed.speaker_pool.mean, real.h[fold.train].mean(0), rtol=1e-4, atol=1e-4)
    assert np.all(normed.speaker_pool.scale <= real.h[fold.train].std(0) + 1e-4)
    ts = assemble(normed, fold.train, None, mode="ser", rng=np.random.default_rng(0), normalise="speaker")
    np.testing.assert_allclose(ts.x_real.mean(0), 0.0, atol=1e-4)


def test_bad_values_and_stream_are_refused(real_store, tmp_path):
    from mirage.train.compare import compare
    from mirage.train.fit import fit

    with pytest.raises(ConfigError, match="--normalise"):
        fit(real_store, str(tmp_path / "a"), normalise="per-speaker")
    with pytest.raises(ConfigError, match="--normalise"):
        fit(real_store, str(tmp_path / "b"), normalise="speaker", loader="stream")
    with pytest.raises(ConfigError, match="--normalise"):
        compare(real_store, str(tmp_path / "c"), methods="none", normalise="zscore")


def test_cli_fit_and_compare_accept_normalise_speaker(offset_store, tmp_path):
    from mirage.cli.train import main

    runner = CliRunner()
    assert "transductive" in runner.invoke(main, ["fit", "--help"]).output
    out = runner.invoke(main, ["fit", "--store", offset_store, "--normalise", "speaker", "--out", str(tmp_path / "f")])
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "f" / "metrics.json").read_text())["config"]["normalise"] == "speaker"
    out = runner.invoke(main, ["compare", "--store", offset_store, "--methods", "none,noise", "--n", "1x",
                               "--normalise", "speaker", "--out", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["normalise"] == "speaker"
    table = json.loads((tmp_path / "c" / "compare.json").read_text())
    fit_m = json.loads((tmp_path / "f" / "metrics.json").read_text())
    assert table["none"]["uar_mean"] == fit_m["uar_mean"]  # compare's none = train fit, normalised alike
    # baselines augment the normalised rows: noise anchored on z-scored rows stays near them
    assert abs(table["noise"]["uar_mean"] - table["none"]["uar_mean"]) < 0.1


def test_generators_are_fitted_in_the_speaker_normalised_space(two_speaker_store, tmp_path, monkeypatch):
    """With --normalise speaker each fold's generator sees a store of its training rows z-scored per speaker."""
    import mirage.train.compare as cmp
    from mirage.featstore.store import open_store
    from tests.train.helpers import make_shards

    seen = []

    def fake(store, out_dir, *, mode, exclude_speakers, include_utt_ids, lambda_mi, n_items, min_mi, seed,
             storage_options, generator_options, generate_options=None):
        with open_store(store) as s:
            h = s.read("audio")
            speakers = s.items.sort_values("row")["speaker"].astype(str).to_numpy()
            seen.append((sorted(set(speakers)), [float(np.abs(h[speakers == sp].mean(0)).max()) for sp in set(speakers)]))
            trained = sorted(set(speakers))
            path = make_shards(out_dir + "/shards", s, trained_speakers=trained, n_items=n_items, mi_scores=(0.9,))
        return {"manifest": path, "n_items": n_items, "n_rejected": 0}

    monkeypatch.setattr(cmp, "generate_for_fold", fake)
    cmp.compare(two_speaker_store, str(tmp_path / "c"), methods="none,cgan", n="1x", normalise="speaker")
    assert len(seen) == 2
    for speakers, max_abs_means in seen:
        assert len(speakers) == 1  # LOSO with 2 speakers: the other speaker only
        assert max(max_abs_means) < 1e-4
