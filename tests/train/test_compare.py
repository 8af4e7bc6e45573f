from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.cli.train import main
from mirage.featstore.errors import ConfigError
from mirage.train.baselines import anchor_indices, apportion, augment_baseline
from mirage.train.compare import compare, parse_methods


SMALL_GAN = {"hidden": 32, "proj_dim": 16, "noise_dim": 8, "batch_size": 32, "eval_samples": 64,
             "epochs": 2, "align_epochs": 2}


def test_baselines_make_the_asked_count_and_keep_the_prior():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [30, 20, 10])
    x = rng.standard_normal((60, 8)).astype(np.float32) + y[:, None]
    for method in ("smote", "mixup", "noise"):
        xs, ys = augment_baseline(method, x, y, 240, n_classes=3, seed=1)
        assert xs.shape == (240, 8) and xs.dtype == np.float32
        hard = ys.argmax(1) if ys.ndim == 2 else ys
        assert np.array_equal(np.bincount(hard, minlength=3), [120, 80, 40]), method
        again = augment_baseline(method, x, y, 240, n_classes=3, seed=1)[0]
        assert np.array_equal(xs, again)
    _, soft = augment_baseline("mixup", x, y, 50, n_classes=3, seed=0)
    np.testing.assert_allclose(soft.sum(1), 1.0, rtol=1e-6)
    assert np.all(soft.max(1) >= 0.5)
    assert np.array_equal(apportion(np.array([3, 1]), 5), [4, 1])
    assert sorted(np.bincount(anchor_indices(4, 10, rng)).tolist()) == [2, 2, 3, 3]


def test_compare_baselines(two_speaker_store, tmp_path):
    res = compare(two_speaker_store, str(tmp_path / "cmp"), methods="none,smote,mixup,noise", n="2x", seed=0)
    table = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert list(table) == sorted(["none", "smote", "mixup", "noise"])
    for m, row in table.items():
        assert {"uar_mean", "uar_std", "fold_uar", "delta_vs_none"} <= set(row)
        assert len(row["fold_uar"]) == 2 and row["uar_mean"] > 0.35, (m, row)
        assert all(f["n_train_synthetic"] == (0 if m == "none" else 64) for f in row["folds"])
        assert (tmp_path / "cmp" / m / "metrics.json").exists()
    assert table["none"]["delta_vs_none"] == 0.0
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert md.startswith("| method |") and "smote" in md and md == res.markdown + "\n"
    assert (tmp_path / "cmp" / "compare.png").exists()
    # `none` is exactly `train fit` without synthetic data (same folds, same classifier seeds)
    from mirage.train.fit import fit

    plain = fit(two_speaker_store, str(tmp_path / "fit"), seed=0)
    assert plain.metrics["uar_mean"] == table["none"]["uar_mean"]


def test_compare_cli_and_bad_methods(two_speaker_store, tmp_path):
    with pytest.raises(ConfigError):
        parse_methods("none,gan")
    out = CliRunner().invoke(main, ["compare", "--store", two_speaker_store, "--methods", "none,mixup", "--n", "1x",
                                    "--mixup-pairs", "same",
                                    "--out", str(tmp_path / "c")])
    assert out.exit_code == 0, out.output
    assert "| mixup |" in out.output
    cfg = json.loads((tmp_path / "c" / "config.json").read_text())
    assert cfg["baseline_options"] == {"mixup": {"pairs": "same"}}
    bad = CliRunner().invoke(main, ["compare", "--store", two_speaker_store, "--methods", "none", "--n", "lots",
                                    "--out", str(tmp_path / "d")])
    assert bad.exit_code != 0 and "--n" in bad.output


def _fake_generator(log_path):
    """Stands in for augment fit + generate: fixture shards from a 'generator' trained without the excluded speakers.

    Calls are logged to a file: Dask serialises the task, so a list would be filled in a copy."""
    from mirage.featstore.store import open_store
    from tests.train.helpers import make_shards

    def fake(store, out_dir, *, mode, exclude_speakers, include_utt_ids, lambda_mi, n_items, min_mi, seed,
             storage_options, generator_options, generate_options=None):
        real = open_store(store)
        trained = sorted(set(real.items["speaker"]) - set(exclude_speakers))
        assert set(real.items.set_index("utt_id").loc[include_utt_ids, "speaker"]) == set(trained)
        with open(log_path, "a") as fh:
            fh.write(json.dumps([out_dir.split("generators/")[1], list(exclude_speakers), lambda_mi, min_mi, seed]) + "\n")
        manifest = make_shards(f"{out_dir}/shards", real, trained_speakers=trained, n_items=n_items, seed=seed)
        return {"manifest": manifest, "n_items": n_items, "n_rejected": 0}

    return fake


def test_compare_orchestrates_a_generator_per_fold_on_dask(two_speaker_store, tmp_path, monkeypatch):
    from distributed import LocalCluster

    import mirage.train.compare as cmp

    log = tmp_path / "calls.jsonl"

    def calls():
        out = sorted(json.loads(line) for line in log.read_text().splitlines())
        log.unlink()
        return out

    monkeypatch.setattr(cmp, "generate_for_fold", _fake_generator(str(log)))
    kwargs = dict(methods="none,cgan,infogan", n="1x", min_mi=0.5, seed=0)
    compare(two_speaker_store, str(tmp_path / "a"), **kwargs)
    first = calls()
    assert [c[:4] for c in first] == [["cgan/speaker-01", ["01"], 0.0, 0.0], ["cgan/speaker-02", ["02"], 0.0, 0.0],
                                      ["infogan/speaker-01", ["01"], None, 0.5], ["infogan/speaker-02", ["02"], None, 0.5]]
    assert len({c[4] for c in first}) == 4  # a seed per (method, fold)
    table = json.loads((tmp_path / "a" / "compare.json").read_text())
    assert all(f["n_train_synthetic"] == 32 for m in ("cgan", "infogan") for f in table[m]["folds"])
    # the same run with the fits as tasks on a Dask cluster (threaded here, reached by address): same seeds, same bytes
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        compare(two_speaker_store, str(tmp_path / "b"), scheduler=cluster.scheduler_address, **kwargs)
    assert calls() == first
    assert (tmp_path / "b" / "compare.json").read_text() == (tmp_path / "a" / "compare.json").read_text()


def test_compare_with_the_real_generator(two_speaker_store, tmp_path):
    from mirage.train.synthetic import read_manifest

    compare(two_speaker_store, str(tmp_path / "a"), methods="infogan", n="1x", seed=0, generator_options=SMALL_GAN)
    table = json.loads((tmp_path / "a" / "compare.json").read_text())
    assert all(f["n_train_synthetic"] == 32 for f in table["infogan"]["folds"]), table
    for spk in ("01", "02"):
        rows = read_manifest(str(tmp_path / "a" / "generators" / "infogan" / f"speaker-{spk}" / "shards"))
        assert all(s == [o for o in ("01", "02") if o != spk] for s in rows["trained_speakers"])


def test_folds_as_tasks_on_worker_processes_write_the_same_bytes(two_speaker_store, tmp_path, caplog):
    """With worker processes every fold's classifiers are Dask tasks beside the generator jobs:
    the same compare.json bytes as the folds one after the other in this process, and a rerun
    counts the cache hits its tasks made."""
    import logging

    from distributed import Client, LocalCluster

    from mirage.featstore.runtime import Runtime

    kwargs = dict(methods="none,smote,infogan", n="1x", min_mi=0.0, seed=0, generator_options=SMALL_GAN)
    compare(two_speaker_store, str(tmp_path / "serial"), **kwargs)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        runtime = Runtime(client=client, progress=False)
        with caplog.at_level(logging.INFO, logger="mirage.train.fold_tasks"):
            compare(two_speaker_store, str(tmp_path / "tasks"), runtime=runtime, **kwargs)
        assert "4 classifier tasks on the cluster" in caplog.text  # per fold: {none, smote} and {infogan}
        assert (tmp_path / "tasks" / "compare.json").read_bytes() == (tmp_path / "serial" / "compare.json").read_bytes()
        again = compare(two_speaker_store, str(tmp_path / "tasks"), runtime=runtime, **kwargs)
    assert again.cache_stats["hits"] == {"job": 2, "fold": 6}, again.cache_stats
