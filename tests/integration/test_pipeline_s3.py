"""extract -> augment fit -> augment generate -> train fit, on S3 and on local disk, with equal results.

The corpus has an official split (speaker spk3 is the test split); the generator is fitted
without spk3, so `train fit --eval official` may use its shards (no leakage).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mirage.cli.augment import main as augment_cli
from mirage.cli.featstore import main as featstore_cli
from mirage.cli.train import main as train_cli
from tests.featstore.test_extract import write_corpus
from tests.integration.servers import new_bucket, s3_env

FIT = ["--epochs", "3", "--align-epochs", "3", "--hidden", "32", "--noise-dim", "8", "--batch-size", "16",
       "--exclude-speakers", "spk3", "--seed", "0", "--quiet"]
#: metrics.json keys that name places, not results
PLACES = {"store", "synthetic", "synthetic_shards", "out", "path", "shards", "manifest", "wall_s", "seconds", "time_s"}


def _ok(main, *args: str) -> str:
    out = CliRunner().invoke(main, [str(a) for a in args])
    assert out.exit_code == 0, f"{args[:1]}: {out.output}"
    return out.output


def _corpus(tmp_path: Path) -> Path:
    table = write_corpus(tmp_path / "c", n=48)
    df = pd.read_csv(table)
    df["split"] = ["test" if s == "spk3" else "train" for s in df["speaker"]]
    df.to_csv(table, index=False)
    return table


def _pipeline(table: Path, root: str, out: Path, opts: list[str]) -> dict:
    store, gen, syn = f"{root}/feats.zarr", f"{root}/gen", f"{root}/syn"
    _ok(featstore_cli, "extract", "--corpus", "csv", "--root", table, "--store", store, "--audio-model", "logmel", "--text-model", "none",
        "--chunk-rows", "16", "--quiet", *opts)
    _ok(augment_cli, "fit", "--store", store, "--out", gen, *FIT, *opts)
    generated = json.loads(_ok(augment_cli, "generate", "--model", gen, "--out", syn, "--n", "1x", "--shard-size", "16",
                               "--seed", "0", "--quiet", "--json", *opts))
    _ok(train_cli, "fit", "--store", store, "--synthetic", f"{syn}/manifest.parquet", "--eval", "official",
        "--out", out, "--seed", "0", *opts)
    return {"generate": generated, "metrics": json.loads((out / "metrics.json").read_text())}


def _results(obj):
    """``obj`` without the keys that hold paths or timings (they differ between runs by design)."""
    if isinstance(obj, dict):
        return {k: _results(v) for k, v in obj.items() if k not in PLACES}
    if isinstance(obj, list):
        return [_results(v) for v in obj]
    return obj


def _shard_hashes(syn: str, storage_options: dict | None) -> list[str]:
    from mirage.augment.shards import read_manifest

    return read_manifest(f"{syn}/manifest.parquet", storage_options=storage_options)["shard_content_hash"].tolist()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    table = _corpus(tmp)
    return table, _pipeline(table, str(tmp / "local"), tmp / "out-local", [])


@pytest.fixture(scope="module")
def s3_run(s3_server, local_run, tmp_path_factory):
    """The same pipeline with every store, model and shard on S3 (train's --out stays local)."""
    table, _ = local_run
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3_env(s3_server.endpoint).items():
            mp.setenv(key, value)
        bucket = new_bucket(s3_server.endpoint)
        result = _pipeline(table, bucket.url("run"), tmp_path_factory.mktemp("pipeline-s3") / "out",
                           ["--storage-options", bucket.options_json])
    return bucket, result


def test_pipeline_on_s3_equals_local_disk(local_run, s3_run):
    (table, local), (bucket, remote) = local_run, s3_run
    assert remote["generate"]["n_items"] == local["generate"]["n_items"] > 0
    assert _shard_hashes(bucket.url("run/syn"), bucket.storage_options) == \
        _shard_hashes(str(table.parent.parent / "local" / "syn"), None)
    assert _results(remote["metrics"]) == _results(local["metrics"])
    assert [[p.rsplit("/", 1)[-1] for p in f["synthetic_shards"]] for f in remote["metrics"]["folds"]] == \
        [[p.rsplit("/", 1)[-1] for p in f["synthetic_shards"]] for f in local["metrics"]["folds"]] != [[]]
    keys = bucket.keys("run/")
    assert any(k.startswith("run/gen/") for k in keys) and "run/syn/manifest.parquet" in keys
    assert not [k for k in keys if k.endswith(".lock") or ".tmp-" in k], keys


def test_train_fit_on_the_cluster_reads_s3_and_equals_local(s3_run, s3, cluster, tmp_path):
    """Dask workers load the S3 store and shards (endpoint and credentials from their environment)."""
    bucket, remote = s3_run
    _ok(train_cli, "fit", "--store", bucket.url("run/feats.zarr"), "--synthetic", bucket.url("run/syn/manifest.parquet"),
        "--eval", "official", "--out", tmp_path, "--seed", "0", "--scheduler", cluster.address,
        "--storage-options", bucket.options_json)
    assert _results(json.loads((tmp_path / "metrics.json").read_text())) == _results(remote["metrics"])


def test_train_compare_on_the_cluster_reads_s3(s3_run, s3, cluster, tmp_path):
    bucket, _ = s3_run
    _ok(train_cli, "compare", "--store", bucket.url("run/feats.zarr"), "--methods", "none,noise", "--eval", "official",
        "--out", tmp_path, "--seed", "0", "--scheduler", cluster.address, "--storage-options", bucket.options_json)
    table = json.loads((tmp_path / "compare.json").read_text())
    assert {"none", "noise"} <= set(table) and table["noise"]["folds"][0]["n_train_synthetic"] > 0, table

