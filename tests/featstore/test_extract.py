"""The extraction engine end to end: skipping, strictness, resume after SIGKILL, locking, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from click.testing import CliRunner

from mirage.cli.featstore import main as featstore_cli
from mirage.featstore.errors import BadAudioError, StoreLockedError
from mirage.featstore.extract import extract, length_batches
from mirage.featstore.store import open_store, verify

SR = 16000


def tone(seed: int, duration_s: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * duration_s)) / SR
    f0 = 100 + 20 * (seed % 7)
    return (0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=t.size)).astype("f4")


def write_corpus(root: Path, n: int = 40, bad: dict[int, str] | None = None) -> Path:
    """A csv-table corpus of n short tones; ``bad`` maps an index to a kind of broken file."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = root / f"utt{i:03d}.wav"
        kind = (bad or {}).get(i)
        if kind == "garbage":
            path.write_bytes(b"this is not audio" * 10)
        elif kind == "empty":
            sf.write(path, np.zeros(0, dtype="f4"), SR)
        elif kind == "silent":
            sf.write(path, np.zeros(SR // 2, dtype="f4"), SR)
        elif kind == "short":
            sf.write(path, tone(i, 0.02), SR)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            sf.write(path, tone(i), SR)
        rows.append({"path": path.name, "label": ["angry", "sad", "happy"][i % 3], "speaker": f"spk{i % 4}",
                     "text": f"sentence number {i}"})
    pd.DataFrame(rows).to_csv(root / "table.csv", index=False)
    return root / "table.csv"


def featstore_exe() -> str:
    return str(Path(sys.executable).parent / "featstore")


def test_length_batches_group_similar_lengths():
    batches = length_batches({0: 10, 1: 500, 2: 12, 3: 480, 4: 11}, 2)
    assert batches == [[1, 3], [2, 4], [0]]


def test_bad_audio_is_skipped_and_listed(tmp_path):
    table = write_corpus(tmp_path / "c", n=24, bad={3: "garbage", 5: "empty", 7: "silent", 9: "short"})
    res = extract("csv", root=str(table), store=str(tmp_path / "s.zarr"), audio_model="logmel", text_model="none", progress=False)
    store = res.store
    assert store.n_items == 20 and len(store.skipped) == 4
    reasons = dict(zip(store.skipped["utt_id"].str[-6:], store.skipped["reason"]))
    assert reasons == {"utt003": "unreadable", "utt005": "empty", "utt007": "silent", "utt009": "too_short"}
    assert verify(store.url)["problems"] == []
    out = CliRunner().invoke(featstore_cli, ["info", store.url, "--json"])
    info = json.loads(out.output)
    assert out.exit_code == 0 and info["n_skipped"] == 4 and info["n_items"] == 20 and info["text"] is None
    assert info["audio"]["extractor"] == "logmel" and info["audio"]["dim"] == store.dim("audio")
    assert info["speakers"] == 4 and sum(info["labels"].values()) == 20


def test_strict_stops_with_one_line_error(tmp_path):
    table = write_corpus(tmp_path / "c", n=20, bad={17: "silent"})
    with pytest.raises(BadAudioError, match="silent|peak"):
        extract("csv", root=str(table), store=str(tmp_path / "s.zarr"), audio_model="logmel", text_model="none", strict=True,
                chunk_rows=16, progress=False)
    out = CliRunner().invoke(featstore_cli, ["extract", "--corpus", "csv", "--root", str(table), "--store",
                                             str(tmp_path / "t.zarr"), "--audio-model", "logmel", "--text-model", "none", "--strict", "--quiet"])
    assert out.exit_code != 0 and "Traceback" not in out.output and len(out.output.strip().splitlines()) == 1
    assert "--strict" in out.output
    assert verify(str(tmp_path / "t.zarr"))["problems"] == []


def test_missing_root_is_one_line_error(tmp_path):
    out = CliRunner().invoke(featstore_cli, ["extract", "--corpus", "emodb", "--root", str(tmp_path / "nope"),
                                             "--store", str(tmp_path / "s.zarr")])
    assert out.exit_code != 0 and len(out.output.strip().splitlines()) == 1 and "nope" in out.output
    assert not (tmp_path / "s.zarr").exists()


def _wait_for_units(store: Path, n: int, proc, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = store / "_skipped"
        if done.exists() and len(list(done.glob("*.json"))) >= n:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    raise AssertionError("extraction made no progress")


def test_sigkill_resume_gives_identical_store(tmp_path):
    # Item 40 is a FIFO: reading it blocks, which parks the extraction after the first
    # units deterministically, so the kill lands mid-run every time.
    table = write_corpus(tmp_path / "c", n=64, bad={40: "fifo"})
    store = tmp_path / "s.zarr"
    cmd = [featstore_exe(), "extract", "--corpus", "csv", "--root", str(table), "--store", str(store),
           "--audio-model", "logmel", "--text-model", "none", "--chunk-rows", "16", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_units(store, 2, proc)
        second = subprocess.run(cmd, capture_output=True, text=True)
        assert second.returncode != 0 and "being written by process" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert verify(str(store))["state"] == "incomplete"
    os.unlink(table.parent / "utt040.wav")
    sf.write(table.parent / "utt040.wav", tone(40), SR)
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "units written" in done.stdout and "4/4" not in done.stdout
    resumed = open_store(str(store))
    fresh = extract("csv", root=str(table), store=str(tmp_path / "fresh.zarr"), audio_model="logmel", text_model="none", chunk_rows=16,
                    progress=False).store
    assert resumed.n_items == fresh.n_items == 64
    assert resumed.metadata["content_hash"] == fresh.metadata["content_hash"]
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_hdf5_and_zarr_hold_the_same_values(tmp_path):
    table = write_corpus(tmp_path / "c", n=20)
    z = extract("csv", root=str(table), store=str(tmp_path / "s.zarr"), audio_model="logmel", text_model="none", progress=False).store
    h = extract("csv", root=str(table), store=str(tmp_path / "s.h5"), format="hdf5", audio_model="logmel", text_model="none", progress=False).store
    assert h.format == "hdf5" and (tmp_path / "s.h5").is_file()
    assert z.metadata["content_hash"] == h.metadata["content_hash"]
    np.testing.assert_array_equal(z.read("audio"), h.read("audio"))


def test_second_writer_refused_in_process(tmp_path):
    from mirage.featstore.store import StoreWriter

    table = write_corpus(tmp_path / "c", n=8)
    from mirage.featstore.corpora import get_corpus

    items = get_corpus("csv").load_items(str(table))
    with StoreWriter(str(tmp_path / "s.zarr"), plan=items, arrays={"audio": 4}, metadata={}):
        with pytest.raises(StoreLockedError):
            extract("csv", root=str(table), store=str(tmp_path / "s.zarr"), audio_model="logmel", text_model="none", progress=False)


def test_dask_local_cluster_matches_one_process(tmp_path):
    table = write_corpus(tmp_path / "c", n=48)
    one = extract("csv", root=str(table), store=str(tmp_path / "one.zarr"), audio_model="logmel", text_model="none", chunk_rows=16,
                  progress=False).store
    two = extract("csv", root=str(table), store=str(tmp_path / "two.zarr"), audio_model="logmel", text_model="none", chunk_rows=16,
                  workers=2, progress=False).store
    assert one.metadata["content_hash"] == two.metadata["content_hash"]


@pytest.mark.realdata
def test_emodb_real_corpus(tmp_path):
    from tests.conftest import shared_corpus

    root = shared_corpus("emodb")
    out = CliRunner().invoke(featstore_cli, ["extract", "--corpus", "emodb", "--root", str(root), "--store",
                                             str(tmp_path / "emodb.zarr"), "--audio-model", "logmel", "--text-model", "none", "--quiet"])
    assert out.exit_code == 0, out.output
    info = json.loads(CliRunner().invoke(featstore_cli, ["info", str(tmp_path / "emodb.zarr"), "--json"]).output)
    assert info["n_items"] == 535 and info["speakers"] == 10 and len(info["labels"]) == 7 and info["n_skipped"] == 0


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_must_be_positive(tmp_path, limit):
    table = write_corpus(tmp_path / "c", n=6)
    out = CliRunner().invoke(featstore_cli, ["extract", "--corpus", "csv", "--root", str(table), "--store",
                                             str(tmp_path / "s.zarr"), "--audio-model", "logmel", "--text-model", "none",
                                             "--limit", limit, "--quiet"])
    assert out.exit_code != 0 and "--limit" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "s.zarr").exists()
    res = extract("csv", root=str(table), store=str(tmp_path / "t.zarr"), audio_model="logmel", text_model="none",
                  limit=2, progress=False)
    assert res.store.n_items == 2
