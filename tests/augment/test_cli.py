"""The augment CLI: happy path, JSON/PNG output, one-line errors with a non-zero exit."""

import json

import pytest
from click.testing import CliRunner

from mirage.cli.augment import main
from tests.augment.conftest import make_store


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(res):
    assert res.exit_code != 0
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), res.output
    assert "Traceback" not in res.output
    return lines[-1]


@pytest.fixture(scope="module")
def cli_model(store_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "gen"
    res = _invoke("fit", "--store", store_path, "--out", out, "--mode", "multimodal", "--epochs", 5,
                  "--align-epochs", 5, "--hidden", 64, "--noise-dim", 8, "--batch-size", 32, "--seed", 0, "--quiet")
    assert res.exit_code == 0, res.output
    assert "wrote generator to" in res.output and "MI score" in res.output
    return out


def test_generate_and_inspect(cli_model, tmp_path):
    synth = tmp_path / "synth"
    res = _invoke("generate", "--model", cli_model, "--n", "2x", "--min-mi", 0.0, "--out", synth, "--shard-size", 100,
                  "--seed", 0, "--quiet", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["n_items"] == 384 and out["complete"] and out["n_shards"] == 4
    res = _invoke("inspect", synth, "--json")
    info = json.loads(res.output)
    for key in ("n_items", "n_shards", "shards", "label_counts"):
        assert key in info
    assert info["n_items"] == 384 and info["n_shards"] == 4
    assert set(info["shards"][0]) >= {"path", "n_items", "mi_score"}
    assert sum(info["label_counts"].values()) == 384
    png = tmp_path / "tsne.png"
    res = _invoke("inspect", synth, "--plot", png, "--max-points", 100)
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:4] == b"\x89PNG" and "plot:" in res.output
    res = _invoke("inspect", synth / "manifest.parquet", "--plot", tmp_path / "pca.png", "--method", "pca")
    assert res.exit_code == 0 and (tmp_path / "pca.png").exists()


def test_text_free_via_no_text(store_path, tmp_path):
    res = _invoke("fit", "--store", store_path, "--out", tmp_path / "g", "--no-text", "--epochs", 2, "--align-epochs", 2,
                  "--hidden", 32, "--quiet")
    assert res.exit_code == 0, res.output
    res = _invoke("fit", "--store", store_path, "--out", tmp_path / "gm", "--mode", "multimodal", "--no-text", "--quiet")
    assert "multimodal generators are conditioned on text" in _one_line_error(res)
    res = _invoke("generate", "--model", tmp_path / "g", "--out", tmp_path / "s", "--n", 50, "--quiet")
    assert res.exit_code == 0 and "wrote 50 synthetic items" in res.output


def test_store_without_labels(tmp_path):
    make_store(tmp_path / "nolab.zarr", with_labels=False).close()
    line = _one_line_error(_invoke("fit", "--store", tmp_path / "nolab.zarr", "--out", tmp_path / "g", "--quiet"))
    assert "labels" in line


def test_missing_store(tmp_path):
    line = _one_line_error(_invoke("fit", "--store", tmp_path / "nope.zarr", "--out", tmp_path / "g"))
    assert "expected a feature store" in line


@pytest.mark.parametrize("n", ["abc", "0", "4y", "-2"])
def test_bad_n(cli_model, tmp_path, n):
    line = _one_line_error(_invoke("generate", "--model", cli_model, "--out", tmp_path / "s", "--n", n))
    assert "--n" in line and "expected Nx or a positive integer" in line


@pytest.mark.parametrize("v", ["1.5", "-0.1", "high"])
def test_bad_min_mi(cli_model, tmp_path, v):
    line = _one_line_error(_invoke("generate", "--model", cli_model, "--out", tmp_path / "s", "--min-mi", v))
    assert "--min-mi" in line and "[0, 1]" in line


def test_model_dir_from_another_store(cli_model, tmp_path):
    make_store(tmp_path / "wide.zarr", audio_dim=48).close()
    line = _one_line_error(_invoke("generate", "--model", cli_model, "--out", tmp_path / "s", "--store",
                                   tmp_path / "wide.zarr", "--quiet"))
    assert "audio dim 32" in line and "48" in line
    line = _one_line_error(_invoke("fit", "--store", tmp_path / "wide.zarr", "--out", cli_model, "--epochs", 1, "--quiet"))
    assert "another store" in line and "--overwrite" in line


def test_not_a_model_dir(tmp_path):
    line = _one_line_error(_invoke("generate", "--model", tmp_path, "--out", tmp_path / "s"))
    assert "generator checkpoint" in line


def test_inspect_missing_manifest(tmp_path):
    line = _one_line_error(_invoke("inspect", tmp_path))
    assert "manifest" in line
