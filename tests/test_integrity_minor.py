"""The minor items of issue 11: a rerun of a finished HDF5 extract leaves no staging folder;
a killed demo generation's temp folder is cleaned by the next run; train compare says when a
generative method got no synthetic row (--min-mi 1.0) and drops stale method folders of an
old --out."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd


def _items(n):
    return pd.DataFrame({"utt_id": [f"u{i:03d}" for i in range(n)], "path": "", "speaker": "s", "label": "a",
                         "split": "train", "duration_s": 1.0, "text": ""})


def test_rerun_of_finished_hdf5_store_leaves_no_staging_folder(tmp_path):
    from mirage.featstore.store import write_store

    url = str(tmp_path / "s.h5")
    arrays = {"audio": np.arange(40 * 4, dtype=np.float32).reshape(40, 4)}
    write_store(url, items=_items(40), arrays=arrays, metadata={}, format="hdf5").close()
    assert not os.path.exists(url + ".partial.zarr")
    again = write_store(url, items=_items(40), arrays=arrays, metadata={}, format="hdf5", overwrite=False)
    again.close()
    assert sorted(os.listdir(tmp_path)) == ["s.h5"]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_killed_demo_generation_leaves_no_temp_folder(tmp_path):
    import socket
    import time

    from mirage.featstore.corpora.demo import OWNER, STALE_UNOWNED_S, _remove_stale_tmp

    target = tmp_path / "demo"
    dead, live, other_host, unowned_old, unowned_new = (tmp_path / f".demo.tmp-{k}" for k in "abcde")
    for d in (dead, live, other_host, unowned_old, unowned_new):
        d.mkdir()
        (d / "wav").mkdir()
    (dead / OWNER).write_text(f"{_dead_pid()} {socket.gethostname()}\n")
    (live / OWNER).write_text(f"{os.getpid()} {socket.gethostname()}\n")
    (other_host / OWNER).write_text(f"{_dead_pid()} some-other-host\n")
    old = time.time() - STALE_UNOWNED_S - 10
    os.utime(unowned_old, (old, old))
    _remove_stale_tmp(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".demo.tmp-b", ".demo.tmp-c", ".demo.tmp-e"]


def test_demo_generation_removes_a_killed_runs_folder(tmp_path):
    import socket

    from mirage.featstore.corpora import get_corpus
    from mirage.featstore.corpora.demo import OWNER

    root = tmp_path / "root"
    left = tmp_path / ".root.tmp-killed"
    left.mkdir()
    (left / OWNER).write_text(f"{_dead_pid()} {socket.gethostname()}\n")
    get_corpus("demo").load_items(str(root))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
    assert not (root / OWNER).exists()


def test_compare_says_when_a_generative_method_got_no_synthetic_row():
    from mirage.train.experiment import FoldResult
    from mirage.train.synthetic import note_empty_synthetic

    def fold(name, n_syn):
        return FoldResult(name, ("s",), np.eye(2, dtype=int), 10, n_syn)

    per_method = {"none": [fold("a", 0), fold("b", 0)], "infogan": [fold("a", 0), fold("b", 0)],
                  "cgan": [fold("a", 5), fold("b", 0)], "noise": [fold("a", 0), fold("b", 0)]}
    notes = note_empty_synthetic(per_method, ("infogan", "cgan"), 1.0)
    assert set(notes) == {"infogan", "cgan"}
    assert notes["infogan"]["folds_without_synthetic"] == ["a", "b"]
    assert "--min-mi 1" in notes["infogan"]["warning"] and "equals `none`" in notes["infogan"]["warning"]
    assert notes["cgan"]["folds_without_synthetic"] == ["b"]
    assert note_empty_synthetic({"infogan": [fold("a", 3)]}, ("infogan",), 0.5) == {}


def test_compare_into_an_old_out_removes_stale_method_folders(tmp_path):
    from mirage.train.rerun import remove_stale_methods

    out = tmp_path / "cmp"
    for method in ("none", "noise", "infogan"):
        (out / method).mkdir(parents=True)
        (out / method / "metrics.json").write_text("{}")
    (out / "generators" / "infogan" / "fold").mkdir(parents=True)
    (out / "notes").mkdir()  # the user's, not listed by compare.json: kept
    (out / "compare.json").write_text(json.dumps({"none": {}, "noise": {}, "infogan": {}, "notes": {}}))
    assert remove_stale_methods(str(out), ["none", "cgan"]) == ["infogan", "noise"]
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "generators", "none", "notes"]
    assert not (out / "generators" / "infogan").exists()
    assert remove_stale_methods(str(tmp_path / "new"), ["none"]) == []


def test_mmap_threshold_is_held_unless_the_user_set_it(monkeypatch):
    import sys

    from mirage.featstore.memory import hold_mmap_threshold

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert hold_mmap_threshold() is False  # the user's own setting wins
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    import ctypes.util

    glibc = sys.platform.startswith("linux") and "libc.so" in (ctypes.util.find_library("c") or "")
    assert hold_mmap_threshold() is glibc
