"""Fingerprint caches of ``train compare``: a rerun with unchanged inputs reuses its work.

Two kinds of entry, each keyed by a SHA-256 fingerprint of everything that determines it
(HF datasets' habit):

* a **job** (a fold's generator fit + generation): the job's settings (seed, λ, n, MI filter,
  generator and generate options, the fold's training items — hence its training speakers),
  the input store's content hash (for ``--normalise speaker``, the source hash and the fold,
  since the per-fold store is made from them) and the code version. Its record (``job.json``:
  fingerprint + result) is written when the job finishes, so a killed job is redone;
* a **fold result** (one method's classifier on one outer or inner fold): the method's cache
  key (name, setting, options; a generator's job fingerprint; auto's chosen method's key), the
  fold's training and test rows, the number of synthetic rows, the classifier settings and
  seed, ``--mode``, ``--normalise``, the store's content hash and the code version.

The code version is a hash of the source of ``mirage.featstore``, ``mirage.augment`` and
``mirage.train``, so any code change invalidates every entry (coarse, never stale). A store
without a content hash cannot be keyed: the cache is then off for the run (logged), never
guessed. Entries live under ``root`` (``--cache DIR``, e.g. ``$MIRAGE_CACHE/compare``, shared by
runs into different ``--out``): ``generators/<method>-<fingerprint>/`` and
``folds/<fingerprint>.json``. Without ``--cache``, jobs stay in ``OUT/generators/<method>/<fold>/``
(as before, with their ``job.json``) and fold results go to ``OUT/cache/folds/``. ``hits`` and
``misses`` count reuse per kind. Local folders only: with an ``s3://`` ``--out`` and no
``--cache``, the cache is off.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mirage.train.experiment import FoldResult

log = logging.getLogger(__name__)

#: Bumped when the layout or meaning of an entry changes.
CACHE_FORMAT = 1
JOB_RECORD = "job.json"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """SHA-256 over the source files of the packages a compare result depends on."""
    import mirage.augment
    import mirage.featstore
    import mirage.train

    h = hashlib.sha256(f"format {CACHE_FORMAT}".encode())
    for pkg in (mirage.featstore, mirage.augment, mirage.train):
        root = Path(pkg.__file__).resolve().parent
        for path in sorted(root.rglob("*.py")):
            h.update(b"\0" + str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def rows_digest(idx: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(idx, dtype=np.int64).tobytes()).hexdigest()


def _write_json(path: str, obj: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, sort_keys=True)
    os.replace(tmp, path)


def _read_json(path: str) -> Any | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


class RunCache:
    """The cache one compare run reads and fills (see the module docstring)."""

    def __init__(self, root: str | None, out: str, store_token: str | None):
        self.shared = root is not None
        local = root if root is not None else (None if "://" in str(out) else os.path.join(str(out), "cache"))
        self.folds_dir = os.path.join(local, "folds") if local else None
        self.root = local
        self.store_token = store_token
        self.enabled = bool(local) and bool(store_token)
        self.hits = {"job": 0, "fold": 0}
        self.misses = {"job": 0, "fold": 0}
        if local and not store_token:
            log.warning("train compare: the store records no content hash; the fingerprint cache is off for this run")

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {"hits": dict(self.hits), "misses": dict(self.misses)}

    def counting(self) -> "RunCache":
        """The same cache with its own zeroed counts (one fold's task counts its hits; the run
        adds them up with :meth:`add_counts`)."""
        twin = copy.copy(self)
        twin.hits, twin.misses = {"job": 0, "fold": 0}, {"job": 0, "fold": 0}
        return twin

    def add_counts(self, stats: dict[str, dict[str, int]]) -> None:
        for mine, theirs in ((self.hits, stats.get("hits", {})), (self.misses, stats.get("misses", {}))):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + int(v)

    # jobs -------------------------------------------------------------------------------------
    def job_fingerprint(self, fn_name: str, kwargs: dict[str, Any], source: dict[str, Any]) -> str:
        settings = {k: v for k, v in kwargs.items() if k != "storage_options"}
        return fingerprint({"kind": "job", "fn": fn_name, "settings": settings, "source": source, "code": code_version()})

    def job_dir(self, method: str, default_dir: str, fp: str) -> str:
        return os.path.join(self.root, "generators", f"{method}-{fp[:32]}") if self.enabled and self.shared else default_dir

    def job_result(self, out_dir: str, fp: str) -> dict[str, Any] | None:
        """The recorded result of the job ``fp`` in ``out_dir``, when it is there and its manifest still exists."""
        if not self.enabled:
            return None
        rec = _read_json(os.path.join(out_dir, JOB_RECORD))
        ok = isinstance(rec, dict) and rec.get("fingerprint") == fp and os.path.exists(str(rec["result"].get("manifest", "")))
        if ok:
            self.hits["job"] += 1
            return rec["result"]
        self.misses["job"] += 1
        if os.path.isdir(out_dir) and (self.shared or rec is not None):  # a stale or half-done entry: redo it whole
            shutil.rmtree(out_dir, ignore_errors=True)
        return None

    def record_job(self, out_dir: str, fp: str, result: dict[str, Any]) -> None:
        if self.enabled and "://" not in out_dir:
            _write_json(os.path.join(out_dir, JOB_RECORD), {"fingerprint": fp, "result": result})

    # fold results -----------------------------------------------------------------------------
    def fold_fingerprint(self, ctx, method_key: dict[str, Any]) -> str:
        run = ctx.run
        return fingerprint({
            "kind": "fold", "method": method_key, "key": list(ctx.key), "train": rows_digest(ctx.fold.train),
            "test": rows_digest(ctx.fold.test), "n_syn": int(ctx.n_syn), "classifier_seed": int(ctx.classifier_seed),
            "classifier": run.cfg.to_json(), "seed": int(run.seed), "mode": run.mode, "normalise": run.normalise,
            "store": self.store_token, "code": code_version()})

    def fold_result(self, fp: str) -> FoldResult | None:
        doc = _read_json(os.path.join(self.folds_dir, fp + ".json")) if self.enabled else None
        if not isinstance(doc, dict):
            self.misses["fold"] += int(self.enabled)
            return None
        self.hits["fold"] += 1
        return FoldResult(doc["name"], tuple(doc["test_speakers"]), np.asarray(doc["confusion"], dtype=np.int64),
                          int(doc["n_train_real"]), int(doc["n_train_synthetic"]), dict(doc["combos"]), list(doc["shards"]))

    def record_fold(self, fp: str, res: FoldResult) -> None:
        if not self.enabled or res.by_view or res.by_attack:
            return
        _write_json(os.path.join(self.folds_dir, fp + ".json"), {
            "name": res.name, "test_speakers": list(res.test_speakers), "confusion": np.asarray(res.confusion).tolist(),
            "n_train_real": int(res.n_train_real), "n_train_synthetic": int(res.n_train_synthetic),
            "combos": {str(k): int(v) for k, v in res.combos.items()}, "shards": [str(s) for s in res.shards]})
