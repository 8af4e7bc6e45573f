"""The classifier phase of ``train compare``: every (method, fold) result, here or on the cluster.

Each fold's methods share the fold's prepared rows (:func:`classify_fold`). In this process the
folds run one after the other, after the generator jobs. With a Dask cluster of single-threaded
worker processes the folds are tasks instead: the run's data is sent to each worker once, the
folds of methods that need no generator start at once (they fill the workers the generator jobs
leave idle), and the folds of methods that do start when their fold's jobs are done. A fold
result depends only on the fold, its seeds and the job outputs it reads, never on where or in
which order it ran, so both ways write the same bytes; the fingerprint cache's hit counts
come back with each task's results.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Sequence

from mirage.train.experiment import FoldResult
from mirage.train.folds import Fold
from mirage.train.methods import RunContext, evaluate
from mirage.train.methods.base import fold_context, fold_rows
from mirage.train.seeds import derive_seed
from mirage.train.select import select_fold, selects

log = logging.getLogger(__name__)

Results = dict[tuple[str, str], FoldResult]  # (method, fold name) -> result


def classify_fold(run: RunContext, fold: Fold, names: Sequence[str], select: str,
                  generated: dict[tuple[str, str], Any] | None = None) -> tuple[dict[str, FoldResult], dict]:
    """``names``' results on ``fold`` and the cache counts this call added. ``generated``: job
    results this call may read beyond ``run.generated`` (a task's own fold's jobs)."""
    cache = run.cache.counting() if run.cache is not None else None
    if generated or cache is not None:
        run = dataclasses.replace(run, generated={**run.generated, **(generated or {})}, cache=cache)
    rows = fold_rows(run, fold)
    cls_seed = derive_seed(run.seed, "classifier", fold.name)
    chosen = select_fold(run, fold, names, select)
    out = {name: evaluate(name, fold_context(run, fold, rows, chosen.get(name, {}), (fold.name,), cls_seed))
           for name in names}
    return out, (cache.stats if cache is not None else {})


def classify(run: RunContext, folds: Sequence[Fold], names: Sequence[str], select: str, *, bar) -> Results:
    """Every (method, fold) result in this process, fold by fold (``bar``: a progress-bar factory)."""
    results: Results = {}
    for fold in bar(iterable=folds, desc="train compare: classifiers per fold", mininterval=0.1):
        for name, res in _merge(run, classify_fold(run, fold, names, select)).items():
            results[(name, fold.name)] = res
    return results


def distributable(run: RunContext, select: str, names: Sequence[str]) -> bool:
    """Whether the folds may run as tasks: a cluster whose workers are single-threaded processes
    other than this one (torch's thread count and random state are per process), and no choice
    made on inner folds (that records its choices in this process's run)."""
    client = run.client
    if client is None or selects(names, select):
        return False
    try:
        workers = client.scheduler_info().get("workers", {})
        pids = client.run(os.getpid)
    except Exception:  # a scheduler that cannot answer: keep the folds here
        return False
    return (bool(workers) and all(int(w.get("nthreads", 0)) == 1 for w in workers.values())
            and bool(pids) and os.getpid() not in pids.values())


def submit_folds(run: RunContext, folds: Sequence[Fold], names: Sequence[str], select: str,
                 jobs: dict[tuple[str, str], Any], with_jobs: set[str]) -> list:
    """One task per fold and group of methods: methods without jobs at once, the others on their
    fold's job futures/results (``jobs``: (method, fold name) -> future or result)."""
    client = run.client
    shared = client.scatter(dataclasses.replace(run, client=None), broadcast=True)
    without = [m for m in names if m not in with_jobs]
    needing = [m for m in names if m in with_jobs]
    tasks = []
    for fold in folds:
        if without:
            tasks.append((fold, client.submit(classify_fold, shared, fold, without, select, pure=False)))
        if needing:
            own = {k: v for k, v in jobs.items() if k[1] == fold.name}
            tasks.append((fold, client.submit(classify_fold, shared, fold, needing, select, own, pure=False)))
    log.info("train compare: %d classifier tasks on the cluster", len(tasks))
    return tasks


def gather_folds(run: RunContext, tasks: list, *, bar) -> Results:
    """The results of :func:`submit_folds`' tasks, their cache counts added to ``run.cache``."""
    from distributed import as_completed

    results: Results = {}
    progress = bar(total=len(tasks), desc="train compare: classifier tasks", mininterval=0.1)
    fold_of = {fut.key: fold for fold, fut in tasks}
    for fut in as_completed([fut for _, fut in tasks]):
        fold = fold_of[fut.key]
        for name, res in _merge(run, fut.result()).items():
            results[(name, fold.name)] = res
        progress.update()
    progress.close()
    return results


def _merge(run: RunContext, answer: tuple[dict[str, FoldResult], dict]) -> dict[str, FoldResult]:
    out, stats = answer
    if run.cache is not None and stats:
        run.cache.add_counts(stats)
    return out
