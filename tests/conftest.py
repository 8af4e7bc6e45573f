"""Suite-wide fixtures: every cache dir goes to tmp, no hub is ever contacted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("MIRAGE_CACHE", str(cache / "mirage"))
    monkeypatch.setenv("HF_HOME", str(cache / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


@pytest.fixture(scope="session", autouse=True)
def _few_threads():
    # Tests run on 2-core machines; oversubscribed BLAS threads only slow them down.
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # for subprocesses
    with threadpool_limits(limits=1):
        yield


def shared_corpus(name: str) -> Path:
    """Path of a real corpus in ../shared/corpora, or skip the test when absent."""
    path = SHARED_CORPORA / name
    if not path.exists():
        pytest.skip(f"real corpus {path} not available")
    return path
