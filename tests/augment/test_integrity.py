"""Generators verify themselves on load; generate refuses what cannot fit and plans in bounded
memory; a damaged store is refused by augment fit and generate in one line."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from mirage.cli.augment import main
from mirage.featstore.errors import CheckpointError, ConfigError, MirageError


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _one_line_error(res):
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.output
    return lines[0]


@pytest.fixture
def model_copy(trained_model, tmp_path):
    dst = tmp_path / "g"
    shutil.copytree(trained_model, dst)
    return dst


def _flip(path, at=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _generate_refused(model, out):
    line = _one_line_error(_invoke("generate", "--model", model, "--n", 10, "--out", out, "--quiet"))
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    return line


def test_untampered_generator_loads(model_copy, tmp_path):
    from mirage.augment.checkpoint import load_checkpoint

    cfg = json.loads((model_copy / "config.json").read_text())
    assert set(cfg["checksums"]) == {"algorithm", "weights.safetensors", "codes.parquet"}
    load_checkpoint(str(model_copy))
    res = _invoke("generate", "--model", model_copy, "--n", 10, "--out", tmp_path / "o", "--quiet")
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("where", ["header", "middle", "last"])
def test_flipped_byte_in_weights(model_copy, tmp_path, where):
    w = model_copy / "weights.safetensors"
    _flip(w, {"header": 20, "middle": None, "last": w.stat().st_size - 1}[where])
    line = _generate_refused(model_copy, tmp_path / "o")
    assert "weights.safetensors" in line and "refit" in line


def test_flipped_byte_in_weights_of_an_old_checkpoint(model_copy, tmp_path):
    """No recorded checksums (written before they existed): the fingerprint still catches it."""
    cfg_path = model_copy / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["checksums"]
    cfg_path.write_text(json.dumps(cfg, sort_keys=True, indent=1))
    from mirage.augment.checkpoint import load_checkpoint

    load_checkpoint(str(model_copy))  # intact: loads
    _flip(model_copy / "weights.safetensors")
    line = _generate_refused(model_copy, tmp_path / "o")
    assert "fingerprint" in line


def test_truncated_and_garbage_files(model_copy, tmp_path):
    from mirage.augment.checkpoint import load_checkpoint

    w = model_copy / "weights.safetensors"
    good = w.read_bytes()
    w.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(str(model_copy))
    _generate_refused(model_copy, tmp_path / "o1")
    w.write_bytes(b"garbage" * 100)
    _generate_refused(model_copy, tmp_path / "o2")
    w.write_bytes(good)
    (model_copy / "codes.parquet").write_bytes(b"not parquet")
    line = _generate_refused(model_copy, tmp_path / "o3")
    assert "codes.parquet" in line


def test_garbage_with_matching_checksums_is_still_one_line(model_copy, tmp_path):
    """A file replaced together with its checksum (so only parsing can fail)."""
    import hashlib

    from mirage.augment.checkpoint import load_checkpoint

    garbage = b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage"
    (model_copy / "weights.safetensors").write_bytes(garbage)
    cfg_path = model_copy / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["checksums"]["weights.safetensors"] = hashlib.sha256(garbage).hexdigest()
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError):
        load_checkpoint(str(model_copy))


def test_edited_config_is_refused(model_copy, tmp_path):
    cfg_path = model_copy / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["speakers"] = cfg["speakers"][:1]  # a leakage guard that trusted this would be fooled
    cfg_path.write_text(json.dumps(cfg, sort_keys=True, indent=1))
    assert "fingerprint" in _generate_refused(model_copy, tmp_path / "o")


def test_weights_of_another_fit_are_refused(model_copy, cgan_model, tmp_path):
    shutil.copy(cgan_model / "weights.safetensors", model_copy / "weights.safetensors")
    _generate_refused(model_copy, tmp_path / "o")


# -- --n far beyond the disk / memory ------------------------------------------------------------

def test_huge_n_is_refused_up_front(trained_model, tmp_path):
    import resource
    import time

    t0 = time.perf_counter()
    out = tmp_path / "o"
    line = _one_line_error(_invoke("generate", "--model", trained_model, "--n", 1_000_000_000, "--out", out, "--quiet"))
    assert time.perf_counter() - t0 < 60
    assert "bytes" in line and "free" in line and "1000000000" in line
    assert not out.exists()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 2**20  # KiB: < 4 GB


def test_disk_check_counts_what_is_free(trained_model, tmp_path, monkeypatch):
    from collections import namedtuple

    import mirage.augment.generate as gen

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(gen.shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(ConfigError, match="ask for fewer items"):
        gen.generate(str(trained_model), str(tmp_path / "o"), n=50, progress=False)
    assert not (tmp_path / "o").exists()


def test_streamed_plan_is_exact_and_bounded(trained_model, monkeypatch):
    from mirage.augment.checkpoint import load_checkpoint
    from mirage.augment.generate import LabelPlan
    from mirage.augment.sampling import CodeSpec, exact_counts

    import mirage.augment.label_plan as label_plan

    spec = CodeSpec.from_bundle(load_checkpoint(str(trained_model)))
    monkeypatch.setattr(label_plan, "WHOLE_PLAN_MAX", 10)
    plan = LabelPlan(spec, 1003, 100, balanced=False, seed=3)
    assert plan.streamed
    got = list(plan.slots())
    assert [s for s, _, _ in got] == list(range(11)) and [len(lab) for _, _, lab in got] == [100] * 10 + [3]
    total = np.bincount(np.concatenate([lab for _, _, lab in got]), minlength=len(spec.labels))
    np.testing.assert_array_equal(total, exact_counts(1003, spec.sampling_prior(False)))
    # resuming: skipped slots do not change the others
    again = {s: lab for s, _, lab in LabelPlan(spec, 1003, 100, balanced=False, seed=3).slots(skip={0, 4})}
    assert again[0] is None and all(np.array_equal(again[s], lab) for s, _, lab in got if s not in (0, 4))
    # a billion items: the plan object holds nothing of size n, and its first slot comes at once
    big = LabelPlan(spec, 1_000_000_000, 4096, balanced=False, seed=0)
    slot, size, labels = next(big.slots())
    assert big._whole is None and size == 4096 and len(labels) == 4096


def test_streamed_generate_end_to_end(trained_model, tmp_path, monkeypatch):
    import mirage.augment.generate as gen
    from mirage.augment.shards import read_manifest, read_run

    monkeypatch.setattr(gen, "WHOLE_PLAN_MAX", 10)
    res = gen.generate(str(trained_model), str(tmp_path / "o"), n=120, shard_size=50, progress=False)
    assert res.n_items == 120 and res.n_shards == 3 and read_run(str(tmp_path / "o"))["plan"] == "streamed"
    assert int(read_manifest(str(tmp_path / "o"))["n_items"].sum()) == 120


# -- damaged stores ------------------------------------------------------------------------------

@pytest.fixture
def damaged_store(store_path, tmp_path):
    dst = tmp_path / "feats.zarr"
    shutil.copytree(store_path, dst)
    os.remove(dst / "audio" / "c" / "0" / "0")
    return dst


def test_augment_fit_refuses_a_damaged_store(damaged_store, tmp_path):
    line = _one_line_error(_invoke("fit", "--store", damaged_store, "--out", tmp_path / "g", "--epochs", 1,
                                   "--align-epochs", 1, "--quiet"))
    assert str(damaged_store) in line and "chunk 0" in line


def test_augment_generate_refuses_a_damaged_store(trained_model, damaged_store, tmp_path):
    shutil.copytree(damaged_store, tmp_path / "d2.zarr")
    (tmp_path / "d2.zarr" / "mirage.json").write_text((tmp_path / "d2.zarr" / "mirage.json").read_text())
    # --store is only opened for its dims; a store whose checksum table is gone is refused at open
    os.remove(tmp_path / "d2.zarr" / "checksums.json")
    line = _one_line_error(_invoke("generate", "--model", trained_model, "--n", 10, "--out", tmp_path / "o",
                                   "--store", tmp_path / "d2.zarr", "--quiet"))
    assert str(tmp_path / "d2.zarr") in line


def test_mirage_errors_are_typed():
    assert issubclass(CheckpointError, MirageError) and issubclass(CheckpointError, ValueError)
