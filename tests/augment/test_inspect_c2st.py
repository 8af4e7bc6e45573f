"""augment inspect: the two-sample classifier accuracy (c2st_acc) beside mi_score."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mirage.augment.inspect import c2st_accuracy, inspect_shards


def test_c2st_of_a_copy_is_chance_and_of_shifted_data_is_one():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((600, 16))
    copy = rng.standard_normal((600, 16))  # the same distribution
    acc, why = c2st_accuracy(real, copy, seed=0)
    assert why is None and abs(acc - 0.5) < 0.07
    shifted, _ = c2st_accuracy(real, copy + 3.0, seed=0)
    assert shifted > 0.98
    assert c2st_accuracy(real, copy, seed=0) == (acc, None)  # seeded
    assert c2st_accuracy(real[:3], copy, seed=0)[0] is None
    # the sides are balanced and bounded: 5000 rows of one side are sub-sampled to the other's count
    acc_big, _ = c2st_accuracy(rng.standard_normal((5000, 16)), copy, seed=0, max_rows=300)
    assert abs(acc_big - 0.5) < 0.1


@pytest.fixture(scope="module")
def synth(ser_model, tmp_path_factory):
    from mirage.augment.generate import generate

    out = tmp_path_factory.mktemp("c2st") / "synth"
    generate(ser_model, out, n=120, shard_size=60, seed=0, progress=False)
    return out


def _store_like(path, x):
    from mirage.featstore.store import write_store

    items = pd.DataFrame({"utt_id": [f"u{i:05d}" for i in range(len(x))], "path": "", "speaker": "x", "label": "angry",
                          "split": "train", "duration_s": 1.0, "text": ""})
    write_store(str(path), items=items, arrays={"audio": np.asarray(x, np.float32)}, metadata={"corpus": "copy"}).close()
    return str(path)


def test_inspect_scores_each_shard_against_the_source_store(synth):
    info = inspect_shards(synth)
    assert info["n_shards"] == 2 and info.get("c2st_reason") is None
    for shard in info["shards"]:
        assert "mi_score" in shard and 0.0 <= shard["c2st_acc"] <= 1.0
    assert 0.0 <= info["c2st_acc_mean"] <= 1.0
    assert inspect_shards(synth)["shards"] == info["shards"]  # deterministic


def test_inspect_c2st_against_a_copy_and_a_shifted_copy(synth, tmp_path):
    from mirage.featstore.store import open_store
    from mirage.augment.shards import read_manifest

    df = read_manifest(str(synth))
    x = np.concatenate([open_store(p).read("audio") for p in df["path_abs"]])
    copy = _store_like(tmp_path / "copy.zarr", x)  # real = the generated rows themselves
    same = inspect_shards(synth, store=copy)
    assert all(abs(s["c2st_acc"] - 0.5) < 0.15 for s in same["shards"]), same["shards"]
    far = _store_like(tmp_path / "far.zarr", x + 10.0 * x.std(0))
    assert all(s["c2st_acc"] > 0.95 for s in inspect_shards(synth, store=far)["shards"])


def test_inspect_reports_null_with_a_reason_when_the_store_is_gone(synth, tmp_path):
    info = inspect_shards(synth, store=str(tmp_path / "missing.zarr"))
    assert info["c2st_acc_mean"] is None and "could not be read" in info["c2st_reason"]
    assert all(s["c2st_acc"] is None and s["c2st_reason"] for s in info["shards"])
    assert "c2st_acc" not in inspect_shards(synth, c2st=False)["shards"][0]


def test_cli_inspect_json_has_c2st_acc(synth):
    from mirage.cli.augment import main

    res = CliRunner().invoke(main, ["inspect", str(synth), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert all("c2st_acc" in s and "mi_score" in s for s in info["shards"])
    res = CliRunner().invoke(main, ["inspect", str(synth)])
    assert res.exit_code == 0 and "two-sample classifier accuracy" in res.output
