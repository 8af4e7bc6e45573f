"""Bad inputs across the CLIs, table-driven: each exits non-zero with one line, no traceback.

Covers a regular file given as ``--store`` or ``--out`` to every command that takes one, and
a feature store with a deleted / altered / truncated chunk given to the readers."""

from __future__ import annotations

import os
import shutil

import pytest
from click.testing import CliRunner

from mirage.cli.augment import main as augment_cli
from mirage.cli.featstore import main as featstore_cli
from mirage.cli.train import main as train_cli

CLIS = {"featstore": featstore_cli, "train": train_cli, "augment": augment_cli}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from tests.augment.conftest import fit_small
    from tests.train.helpers import make_real_store

    base = tmp_path_factory.mktemp("bad")
    store = base / "real.zarr"
    make_real_store(store, n_speakers=3, per_class=6)
    fit_small(store, base / "gen", epochs=1, align_epochs=1)
    (base / "plain.txt").write_text("not a store\n")
    (base / "wavs").mkdir()
    return base


def _check(res):
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), res.output
    assert len(lines) == 1, res.output
    return lines[-1]


FILE_CASES = {
    "featstore info --store file": ("featstore", ["info", "{file}"]),
    "featstore verify --store file": ("featstore", ["verify", "{file}"]),
    "featstore info on a folder below a file": ("featstore", ["info", "{file}/x.zarr"]),
    "train fit --store file": ("train", ["fit", "--store", "{file}", "--eval", "loso", "--out", "{tmp}/r"]),
    "augment fit --store file": ("augment", ["fit", "--store", "{file}", "--out", "{tmp}/g", "--quiet"]),
    "augment generate --store file": ("augment", ["generate", "--model", "{gen}", "--n", "10", "--out", "{tmp}/o",
                                                  "--store", "{file}", "--quiet"]),
    "augment fit --out file": ("augment", ["fit", "--store", "{store}", "--out", "{file}", "--epochs", "1",
                                           "--align-epochs", "1", "--quiet"]),
    "augment generate --out file": ("augment", ["generate", "--model", "{gen}", "--n", "10", "--out", "{file}", "--quiet"]),
    "augment generate --out below a file": ("augment", ["generate", "--model", "{gen}", "--n", "10", "--out",
                                                        "{file}/o", "--quiet"]),
    "augment generate --model file": ("augment", ["generate", "--model", "{file}", "--n", "10", "--out", "{tmp}/o"]),
    "train fit --out file": ("train", ["fit", "--store", "{store}", "--eval", "loso", "--out", "{file}"]),
    "train compare --out file": ("train", ["compare", "--store", "{store}", "--eval", "loso", "--methods", "none",
                                           "--out", "{file}"]),
    "featstore extract --store file (zarr)": ("featstore", ["extract", "--corpus", "csv", "--root", "{tmp}/table.csv",
                                                            "--store", "{file}", "--audio-model", "logmel",
                                                            "--text-model", "none", "--quiet"]),
    "featstore extract --store non-store file (hdf5)": ("featstore", [
        "extract", "--corpus", "csv", "--root", "{tmp}/table.csv", "--store", "{file}", "--format", "hdf5",
        "--audio-model", "logmel", "--text-model", "none", "--quiet"]),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_regular_file_as_store_or_out(env, tmp_path, case):
    cli, args = FILE_CASES[case]
    if "extract" in args:
        from tests.featstore.test_extract import write_corpus

        shutil.copy(write_corpus(tmp_path / "c", n=4), tmp_path / "table.csv")
        for wav in (tmp_path / "c").glob("*.wav"):
            shutil.copy(wav, tmp_path / wav.name)
    file = tmp_path / "plain.txt"
    file.write_text("not a store\n")
    fmt = {"file": file, "tmp": tmp_path, "gen": env / "gen", "store": env / "real.zarr"}
    res = CliRunner().invoke(CLIS[cli], [a.format(**fmt) for a in args], catch_exceptions=False)
    _check(res)
    assert file.read_text() == "not a store\n"  # never written over


def _damage(url, how):
    chunk = os.path.join(url, "audio", "c", "1", "0")
    if how == "delete":
        os.remove(chunk)
    elif how == "flip":
        data = bytearray(open(chunk, "rb").read())
        data[len(data) // 2] ^= 0x10
        open(chunk, "wb").write(bytes(data))
    else:
        with open(chunk, "r+b") as fh:
            fh.truncate(os.path.getsize(chunk) // 2)


@pytest.mark.parametrize("how", ["delete", "flip", "truncate"])
@pytest.mark.parametrize("command", ["train fit", "augment fit", "featstore info", "featstore verify"])
def test_damaged_store(env, tmp_path, how, command):
    url = str(tmp_path / "damaged.zarr")
    shutil.copytree(env / "real.zarr", url)
    _damage(url, how)
    args = {
        "train fit": ("train", ["fit", "--store", url, "--eval", "loso", "--out", str(tmp_path / "r")]),
        "augment fit": ("augment", ["fit", "--store", url, "--out", str(tmp_path / "g"), "--epochs", "1",
                                    "--align-epochs", "1", "--quiet"]),
        "featstore info": ("featstore", ["info", url]),
        "featstore verify": ("featstore", ["verify", url]),
    }[command]
    res = CliRunner().invoke(CLIS[args[0]], args[1], catch_exceptions=False)
    if command == "featstore info":  # info reads only the tables: it may succeed; verify must not
        assert "Traceback" not in res.output
        return
    if command == "featstore verify":
        assert res.exit_code != 0 and "Traceback" not in res.output and "chunk 1" in res.output, res.output
        return
    line = _check(res)
    assert url in line and "chunk 1" in line and "audio" in line
    assert not os.path.exists(tmp_path / "r" / "metrics.json")


# -- more bad inputs of issue 11: each one line, non-zero, nothing left behind -----------------

def _truncated_h5(env, tmp):
    from mirage.featstore.store import open_store, write_store

    with open_store(str(env / "real.zarr")) as s:
        arrays = {n: s.read(n) for n in ("audio", "text")}
        items = s.items.drop(columns=["row"])
    path = tmp / "real.h5"
    write_store(str(path), items=items, arrays=arrays, metadata={"corpus": "fixture"}, format="hdf5").close()
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)
    return path


def _nan_store(env, tmp):
    """A store whose writer recorded NaN rows (checksums match: not damage, bad values)."""
    from mirage.featstore.store import open_store, write_store

    with open_store(str(env / "real.zarr")) as s:
        audio, text = s.read("audio"), s.read("text")
        items = s.items.drop(columns=["row"])
    audio[5] = float("nan")
    path = tmp / "nan.zarr"
    write_store(str(path), items=items, arrays={"audio": audio, "text": text}, metadata={"corpus": "fixture"}).close()
    return path


def _garbage_codes(env, tmp):
    gen = tmp / "gen"
    shutil.copytree(env / "gen", gen)
    (gen / "codes.parquet").write_bytes(b"PAR1 garbage " * 20)
    return gen


def _extract(tmp, *extra):
    from tests.featstore.test_extract import write_corpus

    table = write_corpus(tmp / "c", n=4)
    return ["extract", "--corpus", "csv", "--root", str(table), "--store", str(tmp / "new.zarr"), "--audio-model",
            "logmel", "--text-model", "none", "--quiet", *extra]


BAD_INPUTS = {
    "train fit --store truncated .h5": ("train", lambda env, tmp: ["fit", "--store", str(_truncated_h5(env, tmp)),
                                                                   "--eval", "loso", "--out", str(tmp / "r")], "truncated"),
    "train fit --store with a NaN row": ("train", lambda env, tmp: ["fit", "--store", str(_nan_store(env, tmp)),
                                                                    "--eval", "loso", "--out", str(tmp / "r")], "NaN"),
    "augment generate --model with garbage codes.parquet": (
        "augment", lambda env, tmp: ["generate", "--model", str(_garbage_codes(env, tmp)), "--n", "10", "--out",
                                     str(tmp / "o"), "--quiet"], "codes.parquet"),
    "featstore extract --device bogus": ("featstore", lambda env, tmp: _extract(tmp, "--device", "bogus"), "--device"),
    "featstore extract --chunk-rows -5": ("featstore", lambda env, tmp: _extract(tmp, "--chunk-rows", "-5"),
                                          "--chunk-rows"),
    "featstore extract --chunk-rows 0": ("featstore", lambda env, tmp: _extract(tmp, "--chunk-rows", "0"),
                                         "--chunk-rows"),
}


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.device_count() > 0


if not _has_cuda():  # on a machine with CUDA, --device cuda is a valid choice
    BAD_INPUTS["featstore extract --device cuda without CUDA"] = (
        "featstore", lambda env, tmp: _extract(tmp, "--device", "cuda"), "CUDA")
BAD_INPUTS["featstore extract --device cuda:99"] = ("featstore", lambda env, tmp: _extract(tmp, "--device", "cuda:99"),
                                                    "CUDA")


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input(env, tmp_path, case):
    cli, make_args, expected = BAD_INPUTS[case]
    args = make_args(env, tmp_path)
    res = CliRunner().invoke(CLIS[cli], args, catch_exceptions=False)
    line = _check(res)
    assert expected in line, line
    for left in ("new.zarr", "new.zarr.partial.zarr", "o", "r"):
        path = tmp_path / left
        assert not path.exists() or not [p for p in path.iterdir() if p.name != ".lock"], (left, list(path.iterdir()))
    assert not (tmp_path / "r" / "metrics.json").exists()
