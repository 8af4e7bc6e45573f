"""Feature stores on S3 (a moto server on loopback): extract, info, verify, resume, errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from mirage.cli.featstore import main as featstore_cli
from mirage.featstore.extract import extract
from mirage.featstore.store import ObjectStoreError, open_store
from tests.featstore.test_extract import SR, featstore_exe, tone, write_corpus


def cli(*args: str):
    return CliRunner().invoke(featstore_cli, list(args))


def local_store(tmp_path, table, fmt: str = "zarr", **kw):
    suffix = "h5" if fmt == "hdf5" else "zarr"
    return extract("csv", root=str(table), store=str(tmp_path / f"local.{suffix}"), format=fmt, audio_model="logmel", text_model="none",
                   progress=False, **kw).store


@pytest.mark.parametrize("fmt,key", [("zarr", "feats.zarr"), ("hdf5", "feats.h5")])
def test_extract_to_s3_equals_local_disk(tmp_path, s3, fmt, key):
    table = write_corpus(tmp_path / "c", n=24, bad={5: "silent"})
    local = local_store(tmp_path, table, fmt, chunk_rows=8)
    url = s3.url(key)
    out = cli("extract", "--corpus", "csv", "--root", str(table), "--store", url, "--format", fmt, "--audio-model", "logmel", "--text-model",
              "none", "--chunk-rows", "8", "--quiet", "--storage-options", s3.options_json)
    assert out.exit_code == 0, out.output
    assert "23 items, 1 skipped" in out.output

    info = json.loads(cli("info", url, "--json", "--storage-options", s3.options_json).output)
    assert info["format"] == fmt and info["n_items"] == 23 and info["n_skipped"] == 1
    assert info["content_hash"] == local.metadata["content_hash"]
    assert info["skipped"][0]["reason"] == "silent"
    report = json.loads(cli("verify", url, "--json", "--storage-options", s3.options_json).output)
    assert report["state"] == "complete" and report["problems"] == []
    # The endpoint also comes from AWS_ENDPOINT_URL alone (set by the fixture), as for any boto client.
    env_only = cli("verify", url)
    assert env_only.exit_code == 0 and "OK (23 items" in env_only.output

    with open_store(url, storage_options=s3.storage_options) as remote:
        assert remote.format == fmt and remote.content_hash() == local.metadata["content_hash"]
        np.testing.assert_array_equal(remote.read("audio"), local.read("audio"))
        assert remote.items["utt_id"].tolist() == local.items["utt_id"].tolist()
    keys = s3.keys()
    assert not [k for k in keys if ".partial.zarr" in k or k.endswith(".lock") or ".tmp-" in k], keys
    again = cli("extract", "--corpus", "csv", "--root", str(table), "--store", url, "--format", fmt, "--audio-model", "logmel", "--text-model",
                "none", "--chunk-rows", "8", "--quiet", "--storage-options", s3.options_json)
    assert again.exit_code == 0 and "nothing to do" in again.output


def _wait_for_keys(s3, prefix: str, n: int, proc, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len([k for k in s3.keys(prefix) if k.endswith(".json")]) >= n:
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.1)
    raise AssertionError("extraction made no progress")


def test_s3_store_resumes_after_sigkill_and_refuses_a_second_writer(tmp_path, s3):
    # Item 20 is a FIFO: reading it blocks, which parks the run after two units every time.
    table = write_corpus(tmp_path / "c", n=32, bad={20: "fifo"})
    url = s3.url("resume.zarr")
    args = ["extract", "--corpus", "csv", "--root", str(table), "--store", url, "--audio-model", "logmel", "--text-model", "none",
            "--chunk-rows", "8", "--quiet"]
    # The subprocess sees the endpoint and credentials through its environment only.
    proc = subprocess.Popen([featstore_exe(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ), start_new_session=True)
    try:
        _wait_for_keys(s3, "resume.zarr/_skipped/", 2, proc)
        second = cli(*args, "--storage-options", s3.options_json)
        assert second.exit_code != 0 and "being written by process" in second.output, second.output
        assert len(second.output.strip().splitlines()) == 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    partial = json.loads(cli("verify", url, "--json").output)
    assert partial["state"] == "incomplete" and partial["problems"] == []
    os.unlink(table.parent / "utt020.wav")
    sf.write(table.parent / "utt020.wav", tone(20), SR)
    done = cli(*args, "--storage-options", s3.options_json)
    assert done.exit_code == 0, done.output
    assert "units written" in done.output and "4/4" not in done.output  # resumed, not redone
    fresh = local_store(tmp_path, table, chunk_rows=8)
    with open_store(url, storage_options=s3.storage_options) as resumed:
        assert resumed.n_items == 32 and resumed.metadata["content_hash"] == fresh.metadata["content_hash"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_failure(out, *needles: str) -> None:
    assert out.exit_code != 0, out.output
    assert "Traceback" not in out.output and len(out.output.strip().splitlines()) == 1, out.output
    for needle in needles:
        assert needle in out.output, out.output


def test_object_store_mistakes_are_one_line_errors(tmp_path, s3, monkeypatch):
    table = write_corpus(tmp_path / "c", n=4)
    opts = s3.options_json
    missing = f"s3://{s3.name}-nope/feats.zarr"
    extract_args = ["extract", "--corpus", "csv", "--root", str(table), "--audio-model", "logmel", "--text-model", "none", "--quiet"]
    _one_line_failure(cli(*extract_args, "--store", missing, "--storage-options", opts), "expected an existing bucket", "aws s3 mb")
    assert not s3.fs().exists(f"{s3.name}-nope")  # never created behind the user's back
    _one_line_failure(cli("info", missing, "--storage-options", opts), "expected an existing bucket")
    _one_line_failure(cli("verify", missing), "expected an existing bucket")
    _one_line_failure(cli("info", s3.url("absent.zarr"), "--storage-options", opts), "expected a feature store")

    dead = json.dumps({"client_kwargs": {"endpoint_url": f"http://127.0.0.1:{_closed_port()}"},
                       "config_kwargs": {"retries": {"max_attempts": 1}}})
    _one_line_failure(cli(*extract_args, "--store", s3.url("x.zarr"), "--storage-options", dead),
                      "cannot reach the object store", "endpoint_url")
    _one_line_failure(cli("info", s3.url("x.zarr"), "--storage-options", dead), "cannot reach the object store")

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    # Other options than above, so that no cached filesystem with the old credentials is reused.
    fresh = {**s3.storage_options, "config_kwargs": {"connect_timeout": 9}}
    _one_line_failure(cli("info", s3.url("x.zarr"), "--storage-options", json.dumps(fresh)), "no credentials",
                      "AWS_ACCESS_KEY_ID")
    with pytest.raises(ObjectStoreError, match="no credentials"):
        open_store(s3.url("x.zarr"), storage_options={**fresh, "config_kwargs": {"connect_timeout": 8}})


def test_s3_lock_from_another_host_is_taken_over_only_when_stale(s3, monkeypatch):
    from mirage.featstore.errors import StoreLockedError
    from mirage.featstore.store.location import LOCK_NAME, Location, WriterLock

    loc = Location(s3.url("locked.zarr"), s3.storage_options)
    other = {"host": "another-container", "pid": 1, "id": "x", "time": time.time() - 600}
    loc.write_bytes(LOCK_NAME, json.dumps(other).encode())
    with pytest.raises(StoreLockedError, match="another-container"):
        WriterLock(loc, "locked.zarr").acquire()
    monkeypatch.setenv("MIRAGE_LOCK_STALE_S", "300")  # no heartbeat for 600 s: that writer is gone
    with WriterLock(loc, "locked.zarr") as lock:
        assert json.loads(loc.read_bytes(LOCK_NAME))["id"] == lock.token["id"]
        with pytest.raises(StoreLockedError):  # a fresh lock (ours) is never taken over
            WriterLock(loc, "locked.zarr").acquire()
    assert not loc.exists(LOCK_NAME)
