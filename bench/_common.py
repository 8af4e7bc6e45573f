"""Shared helpers for the bench scripts: corpus selection, timing, peak memory."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_EMODB = ROOT.parent / "shared" / "corpora" / "emodb"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def bench_items(n: int, cache_dir: str):
    """The first n EmoDB items (real speech) when ../shared/corpora has it, else the demo corpus."""
    from mirage.featstore.corpora import get_corpus

    if SHARED_EMODB.exists():
        items, name = get_corpus("emodb").load_items(str(SHARED_EMODB)), "EmoDB (2 s truncated copy)"
    else:
        items, name = get_corpus("demo").load_items(None, cache_dir=cache_dir), "demo"
    return items.iloc[:n].reset_index(drop=True), name


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0
