"""`train fit --out s3://...` and `train compare --out s3://...` write every output to the bucket,
byte for byte what a local --out gets; a store and an --out on two different S3 endpoints work
with one --storage-options dict holding per-URL entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mirage.cli.featstore import main as featstore_cli
from mirage.cli.train import main as train_cli
from tests.featstore.test_extract import write_corpus
from tests.integration.servers import S3Server, new_bucket

FIT_FILES = ("metrics.json", "confusion.png")


def _ok(main, *args) -> str:
    out = CliRunner().invoke(main, [str(a) for a in args])
    assert out.exit_code == 0, f"{args[:1]}: {out.output}"
    return out.output


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train-out")
    table = write_corpus(tmp / "c", n=32)
    store = tmp / "feats.zarr"
    _ok(featstore_cli, "extract", "--corpus", "csv", "--root", table, "--store", store, "--audio-model", "logmel",
        "--text-model", "none", "--chunk-rows", "16", "--quiet")
    return store


def test_train_fit_out_on_s3_equals_local(local_store, s3, tmp_path):
    _ok(train_cli, "fit", "--store", local_store, "--out", tmp_path / "local", "--seed", "0")
    out = _ok(train_cli, "fit", "--store", local_store, "--out", s3.url("fit"), "--seed", "0",
              "--storage-options", s3.options_json)
    assert s3.url("fit/metrics.json") in out
    fs = s3.fs()
    for name in FIT_FILES:
        assert fs.cat_file(f"{s3.name}/fit/{name}") == (tmp_path / "local" / name).read_bytes(), name
    assert not [k for k in s3.keys("fit/") if k.endswith(".lock") or ".tmp" in k]
    assert not Path("s3:").exists()  # nothing landed in a local folder named after the URL


def test_train_compare_out_on_s3(local_store, s3, tmp_path):
    args = ["--store", local_store, "--methods", "none,noise", "--seed", "0"]
    _ok(train_cli, "compare", *args, "--out", tmp_path / "local")
    _ok(train_cli, "compare", *args, "--out", s3.url("cmp"), "--storage-options", s3.options_json)
    fs = s3.fs()
    for name in ("compare.json", "compare.md", "config.json", "compare.png", "none/metrics.json", "noise/confusion.png"):
        assert fs.cat_file(f"{s3.name}/cmp/{name}") == (tmp_path / "local" / name).read_bytes(), name
    table = json.loads(fs.cat_file(f"{s3.name}/cmp/compare.json"))
    assert table["noise"]["folds"][0]["n_train_synthetic"] > 0


def test_store_and_out_on_two_endpoints(local_store, s3, tmp_path):
    """The store lives on the suite's server, --out on a second one: each URL gets its own options."""
    s3.fs().put(str(local_store), f"{s3.name}/feats.zarr", recursive=True)
    other = S3Server()
    try:
        out_bucket = new_bucket(other.endpoint)
        opts = {s3.url(""): s3.storage_options, out_bucket.url(""): out_bucket.storage_options}
        _ok(train_cli, "fit", "--store", s3.url("feats.zarr"), "--out", out_bucket.url("fit"), "--seed", "0",
            "--storage-options", json.dumps(opts))
        _ok(train_cli, "fit", "--store", local_store, "--out", tmp_path / "local", "--seed", "0")
        got = json.loads(out_bucket.fs().cat_file(f"{out_bucket.name}/fit/metrics.json"))
        want = json.loads((tmp_path / "local" / "metrics.json").read_text())
        got["config"].pop("store"), want["config"].pop("store")
        assert got == want
        assert not s3.keys("fit")  # nothing written to the store's endpoint
    finally:
        other.stop()


def test_final_model_and_predictions_on_s3(local_store, s3, tmp_path):
    _ok(train_cli, "fit", "--store", local_store, "--out", tmp_path / "local", "--seed", "0", "--final")
    _ok(train_cli, "fit", "--store", local_store, "--out", s3.url("fit"), "--seed", "0", "--final",
        "--storage-options", s3.options_json)
    fs = s3.fs()
    for name in ("metrics.json", *sorted(p.name for p in (tmp_path / "local" / "model").iterdir())):
        key = name if name == "metrics.json" else f"model/{name}"
        assert fs.cat_file(f"{s3.name}/fit/{key}") == (tmp_path / "local" / key).read_bytes(), key
    _ok(train_cli, "predict", "--model", s3.url("fit"), "--store", local_store, "--out", s3.url("pred.parquet"),
        "--storage-options", s3.options_json)
    _ok(train_cli, "predict", "--model", tmp_path / "local", "--store", local_store, "--out", tmp_path / "p.parquet")
    assert fs.cat_file(f"{s3.name}/pred.parquet") == (tmp_path / "p.parquet").read_bytes()
