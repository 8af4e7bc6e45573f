"""A Dask worker killed mid-run: nothing lost or written twice; losing every worker fails in
one line and a rerun resumes. Runs last among the cluster tests (it kills workers)."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback

import soundfile as sf

from mirage.featstore.dask_utils import ClusterError
from mirage.featstore.extract import extract
from mirage.featstore.store import verify
from tests.featstore.test_extract import SR, tone, write_corpus
from tests.integration import probes
from tests.integration.servers import kill_group


def _run_in_thread(**kwargs):
    box: dict = {}

    def target():
        try:
            box["result"] = extract(**kwargs)
        except BaseException as exc:  # handed to the test thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _join(thread: threading.Thread, cluster, what: str, timeout_s: float = 90) -> None:
    thread.join(timeout_s)
    if thread.is_alive():
        frames = sys._current_frames().get(thread.ident)
        stack = "".join(traceback.format_stack(frames)) if frames else ""
        raise AssertionError(f"{what}\n{stack}\n{cluster.logs()}")


def _worker_stuck_on(client, key_suffix: str, timeout_s: float = 90, exclude=()) -> tuple[str, int]:
    """(address, pid) of the worker running the task ``...-<key_suffix>``, once it waits on the FIFO."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = client.run(probes.executing, on_error="return")  # a killed worker may still be listed
        for addr, keys in running.items():
            if addr not in exclude and isinstance(keys, list) and any(k.endswith(f"-{key_suffix}") for k in keys):
                pid = client.run(probes.pid, workers=[addr])[addr]
                blocked = probes.blocked_on_fifo(pid)
                if blocked is None:  # the kernel hides wchan: the FIFO comes first in its unit, give it time
                    time.sleep(3)
                if blocked is not False:
                    return addr, pid
        time.sleep(0.1)
    raise AssertionError(f"no worker started unit {key_suffix}")


def _unfifo(table, i: int) -> None:
    path = table.parent / f"utt{i:03d}.wav"
    os.unlink(path)  # a reader blocked on the FIFO keeps waiting on the orphaned inode
    sf.write(path, tone(i), SR)


def test_killed_worker_loses_and_duplicates_nothing(tmp_path, cluster):
    # Unit 3 (rows 24..31) starts with a FIFO: the worker that takes it blocks there, so the
    # kill lands mid-task every time. The real file replaces the FIFO before the kill, so
    # the task, rerun on the other worker, succeeds.
    table = write_corpus(tmp_path / "c", n=64, bad={24: "fifo"})
    store = tmp_path / "killed.zarr"
    thread, box = _run_in_thread(corpus="csv", root=str(table), store=str(store), audio_model="logmel", text_model="none", chunk_rows=8,
                                 scheduler=cluster.address, progress=False)
    with cluster.client() as client:
        addr, pid = _worker_stuck_on(client, "24")
        _unfifo(table, 24)
        victim = cluster.worker_group_of(pid)
        kill_group(victim)  # SIGKILL to its process group: as if the machine were gone
        victim.wait()
    _join(thread, cluster, "extraction hung after a worker was killed")
    assert "error" not in box, box.get("error")
    res = box["result"]
    assert res.n_units_done_now == res.n_units_total == 8
    fresh = extract("csv", root=str(table), store=str(tmp_path / "fresh.zarr"), audio_model="logmel", text_model="none", chunk_rows=8,
                    progress=False).store
    assert res.store.n_items == 64 and verify(str(store))["problems"] == []
    assert res.store.metadata["content_hash"] == fresh.metadata["content_hash"]


def test_losing_every_worker_fails_in_one_line_and_a_rerun_resumes(tmp_path, dask_cluster, monkeypatch):
    # Last of the cluster tests: it leaves the cluster without workers (the `cluster` fixture
    # starts new ones for any later test), and so needs no restart itself.
    monkeypatch.setenv("MIRAGE_DASK_WAIT_S", "3")
    dask_cluster.ensure_workers(1)
    table = write_corpus(tmp_path / "c", n=48, bad={16: "fifo"})
    store = tmp_path / "lost.zarr"
    args = dict(corpus="csv", root=str(table), store=str(store), audio_model="logmel", text_model="none", chunk_rows=8, progress=False)
    thread, box = _run_in_thread(**args, scheduler=dask_cluster.address)
    with dask_cluster.client() as client:
        _worker_stuck_on(client, "16")
        _unfifo(table, 16)
        for proc in dask_cluster.workers:
            kill_group(proc)
    _join(thread, dask_cluster, "extraction hung with no workers left")
    err = box.get("error")
    assert isinstance(err, ClusterError), err
    assert "rerun the same command" in str(err) and "\n" not in str(err)
    assert verify(str(store))["state"] == "incomplete"

    res = extract(**args)  # the rerun resumes (here in-process: the store, not the cluster, holds the state)
    assert 0 < res.n_units_done_now < res.n_units_total == 6  # resumed, not redone
    fresh = extract(**{**args, "store": str(tmp_path / "fresh.zarr")}).store
    assert res.store.metadata["content_hash"] == fresh.metadata["content_hash"]
