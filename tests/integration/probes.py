"""Functions the tests run on Dask workers with ``client.run`` (workers import this module).

``count_loads`` counts every load of model weights on the worker (``AutoModel.from_pretrained``),
so a test can check that a worker loads each model once however many tasks it runs.
"""

from __future__ import annotations

import os
from collections import Counter

LOADS: Counter = Counter()
_PATCHED: dict = {}


def count_loads() -> int:
    """Forget loaded extractors, zero the counters and count weight loads
    (``transformers.AutoModel.from_pretrained`` calls, keyed by model folder name) from now on."""
    from transformers import AutoModel

    from mirage.featstore.extractors import clear_loaded

    clear_loaded()
    LOADS.clear()
    if "original" not in _PATCHED:
        _PATCHED["original"] = AutoModel.from_pretrained.__func__  # the classmethod's function

        def from_pretrained(cls, name, *args, **kwargs):
            LOADS[os.path.basename(str(name).rstrip("/"))] += 1
            return _PATCHED["original"](cls, name, *args, **kwargs)

        AutoModel.from_pretrained = classmethod(from_pretrained)
    return os.getpid()


def load_counts() -> dict[str, int]:
    return dict(LOADS)


def executing(dask_worker) -> list[str]:
    """Keys of the tasks this worker is running now (runs on the worker's event loop)."""
    return [str(ts.key) for ts in dask_worker.state.executing]


def pid() -> int:
    return os.getpid()


def blocked_on_fifo(pid_: int) -> bool | None:
    """True when a thread of ``pid_`` waits in open() of a FIFO; None when the kernel does not say."""
    seen = False
    try:
        tasks = os.listdir(f"/proc/{pid_}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid_}/task/{tid}/wchan") as fh:
                wchan = fh.read().strip()
        except OSError:
            continue
        if wchan not in ("", "0"):
            seen = True
        if "partner" in wchan or "fifo" in wchan:
            return True
    return False if seen else None
