"""Kinds: every folder mirage writes declares what it is; commands refuse input of the wrong
kind and refuse to write into a folder of another kind — one line, nothing written."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest
from click.testing import CliRunner

from mirage.cli.augment import main as augment_cli
from mirage.cli.featstore import main as featstore_cli
from mirage.cli.train import main as train_cli
from mirage.featstore import kinds

CLIS = {"featstore": featstore_cli, "train": train_cli, "augment": augment_cli}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from mirage.augment.generate import generate
    from tests.augment.conftest import fit_small
    from tests.train.helpers import make_real_store

    base = tmp_path_factory.mktemp("kinds")
    make_real_store(base / "real.zarr", n_speakers=3, per_class=6)
    fit_small(base / "real.zarr", base / "gen", epochs=1, align_epochs=1)
    generate(str(base / "gen"), str(base / "synth"), n=20, shard_size=10, progress=False)
    res = CliRunner().invoke(train_cli, ["fit", "--store", str(base / "real.zarr"), "--eval", "loso",
                                         "--out", str(base / "run")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return base


def test_every_output_declares_its_kind(env):
    import pyarrow.parquet as pq

    assert kinds.detect_kind(str(env / "real.zarr")) == kinds.FEATURES
    assert kinds.detect_kind(str(env / "synth" / "shard-00000.zarr")) == kinds.SHARD
    assert kinds.detect_kind(str(env / "synth")) == kinds.SHARD_SET
    assert kinds.detect_kind(str(env / "synth" / "manifest.parquet")) == kinds.SHARD_SET
    assert kinds.detect_kind(str(env / "gen")) == kinds.GENERATOR
    assert kinds.detect_kind(str(env / "run")) == kinds.RUN
    assert kinds.detect_kind(str(env / "nothing")) is None
    # declared, not only inferred
    import json

    assert json.loads((env / "real.zarr" / "mirage.json").read_text())["kind"] == "features"
    assert json.loads((env / "gen" / "config.json").read_text())["kind"] == "generator"
    assert pq.read_schema(env / "synth" / "manifest.parquet").metadata[b"mirage_kind"] == b"shard-set"


def _digest(path):
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(os.path.join(root, f), "rb").read())
    return h.hexdigest()


CASES = {
    "augment fit --store a shard": ("augment", ["fit", "--store", "{synth}/shard-00000.zarr", "--out", "{tmp}/g",
                                                "--epochs", "1", "--align-epochs", "1", "--quiet"], "single synthetic shard"),
    "augment fit --store a generator": ("augment", ["fit", "--store", "{gen}", "--out", "{tmp}/g", "--quiet"],
                                        "generator folder"),
    "augment fit --out a store": ("augment", ["fit", "--store", "{store}", "--out", "{store}", "--epochs", "1",
                                              "--align-epochs", "1", "--quiet"], "got a feature store"),
    "augment fit --out a shard set": ("augment", ["fit", "--store", "{store}", "--out", "{synth}", "--epochs", "1",
                                                  "--align-epochs", "1", "--quiet"], "got a synthetic shard set"),
    "augment generate --out a store": ("augment", ["generate", "--model", "{gen}", "--n", "10", "--out", "{store}",
                                                   "--quiet"], "got a feature store"),
    "augment generate --out a generator": ("augment", ["generate", "--model", "{gen}", "--n", "10", "--out", "{gen}",
                                                       "--quiet"], "got a generator folder"),
    "augment generate --store a shard": ("augment", ["generate", "--model", "{gen}", "--n", "10", "--out", "{tmp}/o",
                                                     "--store", "{synth}/shard-00000.zarr", "--quiet"],
                                         "single synthetic shard"),
    "augment generate --model a store": ("augment", ["generate", "--model", "{store}", "--n", "10", "--out", "{tmp}/o",
                                                     "--quiet"], "expected a generator"),
    "featstore extract --store a generator": ("featstore", [
        "extract", "--corpus", "csv", "--root", "{tmp}/table.csv", "--store", "{gen}", "--audio-model", "logmel",
        "--text-model", "none", "--quiet"], "got a generator folder"),
    "featstore extract --store a shard set": ("featstore", [
        "extract", "--corpus", "csv", "--root", "{tmp}/table.csv", "--store", "{synth}", "--audio-model", "logmel",
        "--text-model", "none", "--quiet"], "got a synthetic shard set"),
    "featstore extract --store a run folder": ("featstore", [
        "extract", "--corpus", "csv", "--root", "{tmp}/table.csv", "--store", "{run}", "--audio-model", "logmel",
        "--text-model", "none", "--quiet"], "got a train run folder"),
    "train fit --out a store": ("train", ["fit", "--store", "{store}", "--eval", "loso", "--out", "{store}"],
                                "got a feature store"),
    "train fit --out a generator": ("train", ["fit", "--store", "{store}", "--eval", "loso", "--out", "{gen}"],
                                    "got a generator folder"),
    "train compare --out a shard set": ("train", ["compare", "--store", "{store}", "--eval", "loso", "--methods", "none",
                                                  "--out", "{synth}"], "got a synthetic shard set"),
    "train fit --store a shard": ("train", ["fit", "--store", "{synth}/shard-00000.zarr", "--eval", "loso",
                                            "--out", "{tmp}/r"], "single synthetic shard"),
    "train fit --store a generator": ("train", ["fit", "--store", "{gen}", "--eval", "loso", "--out", "{tmp}/r"],
                                      "generator folder"),
    "train fit --synthetic a shard": ("train", ["fit", "--store", "{store}", "--synthetic", "{synth}/shard-00000.zarr",
                                                "--eval", "loso", "--out", "{tmp}/r"], "single synthetic shard"),
    "train fit --synthetic a store": ("train", ["fit", "--store", "{store}", "--synthetic", "{store}",
                                                "--eval", "loso", "--out", "{tmp}/r"], "got a feature store"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_kind_refused(env, tmp_path, case):
    cli, args, expected = CASES[case]
    if "extract" in args:
        from tests.featstore.test_extract import write_corpus

        shutil.copy(write_corpus(tmp_path / "c", n=4), tmp_path / "table.csv")
        for wav in (tmp_path / "c").glob("*.wav"):
            shutil.copy(wav, tmp_path / wav.name)
    fmt = {"tmp": tmp_path, "gen": env / "gen", "store": env / "real.zarr", "synth": env / "synth", "run": env / "run"}
    before = {k: _digest(env / k) for k in ("gen", "real.zarr", "synth", "run")}
    res = CliRunner().invoke(CLIS[cli], [a.format(**fmt) for a in args], catch_exceptions=False)
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.output
    assert expected in lines[0], lines[0]
    assert {k: _digest(env / k) for k in before} == before  # nothing written into any of them
    for name in ("g", "o", "r"):
        assert not (tmp_path / name).exists() or not any((tmp_path / name).iterdir())
