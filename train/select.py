"""Nested selection for ``train compare --select inner`` and the ``auto`` method.

Per outer fold, the outer training speakers are split into ``INNER_FOLDS`` groups (sorted
speakers dealt round-robin); each inner fold trains on the other groups and tests on one,
leave-speakers-out, so nothing about the outer test speaker is used. Every inner fold
normalises (``--normalise``) and augments exactly as the outer fold does, through the same
method interface (:mod:`train.methods`).

* ``--select inner``: each method with a grid gets the setting with the best mean inner UAR;
  ties go to the earlier, more conservative grid entry. The grids, one place each:
  :data:`BASELINE_GRID` (``n`` x ``synthetic_weight``) for the row-level baselines, ``calibrate``
  also its ``k``; :data:`INFOGAN_GRID` (λ x ``n`` x ``synthetic_weight``) and
  :data:`CGAN_GRID` (``n`` x ``synthetic_weight``) for the generators, whose docstring says why
  it is that small. A generator is fitted per outer fold, inner fold and value of the keys that
  change the fit (:data:`FIT_KEYS`: λ), on the inner training speakers only, as jobs the runner
  does before the fold loop (:mod:`train.methods.generative`); ``n`` is generated once at the
  grid's largest and subsampled, the weight is the classifier's. ``mtl-aug`` has no grid.
* ``auto``: per outer fold, the candidate with the best mean inner UAR among ``none`` and
  :func:`auto_pool`: the row-level baselines named in ``--methods`` (smote, mixup, noise,
  calibrate), or smote, mixup and noise when none is named, plus the generators (cgan,
  infogan) named in ``--methods``. Generators are candidates only when named: each costs a fit
  per inner fold, which a run that does not compare them should not pay. Each candidate has its
  selected setting under ``--select inner``, else the run's. A candidate must beat ``none`` by
  more than one standard error of the paired inner-fold differences (:func:`clears_none`), so
  augmentation is used only where it helped clearly on unseen training speakers.

Inner classifiers are seeded by (seed, outer fold, inner fold) only, so the choice does not
depend on the order of the work. The cost of the inner work is logged per outer fold: the
classifier side's seconds and the inner generator fits' seconds (as recorded by their jobs,
also when a rerun reuses them from the cache).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

import numpy as np

from mirage.featstore.errors import ConfigError
from mirage.train.dataset import RealData
from mirage.train.folds import Fold
from mirage.train.methods import BASELINE_GRID, REGISTRY, RunContext, evaluate
from mirage.train.methods.auto import DEFAULT_POOL
from mirage.train.methods.base import fold_context, fold_rows
from mirage.train.methods.generative import CGAN_GRID, FIT_KEYS, INFOGAN_GRID
from mirage.train.seeds import derive_seed

log = logging.getLogger(__name__)

SELECT = ("none", "inner")
INNER_FOLDS = 3

__all__ = ["SELECT", "INNER_FOLDS", "BASELINE_GRID", "INFOGAN_GRID", "CGAN_GRID", "FIT_KEYS", "check_select", "grid", "inner_folds", "inner_uar",
           "inner_uars", "select_setting", "choose_auto", "clears_none", "auto_pool", "select_fold"]


def check_select(select: str | None) -> str:
    value = "none" if select is None else str(select).lower()
    if value not in SELECT:
        raise ConfigError(f"--select: expected one of {', '.join(SELECT)}, got {select!r}")
    return value


def grid(method: str) -> list[dict[str, Any]]:
    """The settings ``--select inner`` tries for ``method`` ([{}]: nothing to select)."""
    m = REGISTRY.get(method)
    return m.settings() if m is not None and m.inner else [{}]


def inner_folds(real: RealData, train_idx: np.ndarray, k: int = INNER_FOLDS) -> list[Fold]:
    """Leave-speakers-out folds over the outer training rows (speakers dealt round-robin into k groups)."""
    train_idx = np.asarray(train_idx, dtype=np.int64)
    speakers = real.items["speaker"].astype(str).to_numpy()[train_idx]
    uniq = sorted(set(speakers.tolist()))
    k = min(int(k), len(uniq))
    if k < 2:
        return []
    out = []
    for i in range(k):
        group = tuple(uniq[i::k])
        held = np.isin(speakers, group)
        out.append(Fold(f"inner-{i}", group, train_idx[~held], train_idx[held]))
    return out


def inner_uars(run: RunContext, outer: Fold, method: str, setting: dict[str, Any], *, folds: Sequence[Fold],
               rows: dict[str, tuple] | None = None) -> list[float]:
    """UAR of ``method`` with ``setting`` on each inner fold of ``outer`` (``rows``: each inner
    fold's prepared rows, computed once per outer fold and shared by every setting)."""
    uars = []
    for inner in folds:
        r = rows[inner.name] if rows is not None else fold_rows(run, inner)
        ctx = fold_context(run, inner, r, setting, (outer.name, inner.name),
                           derive_seed(run.seed, "inner-classifier", outer.name, inner.name))
        uars.append(float(evaluate(method, ctx).uar))
    return uars


def inner_uar(run: RunContext, outer: Fold, method: str, setting: dict[str, Any], *, folds: Sequence[Fold],
              rows: dict[str, tuple] | None = None) -> float:
    """Mean UAR of ``method`` with ``setting`` over the inner folds of ``outer``."""
    uars = inner_uars(run, outer, method, setting, folds=folds, rows=rows)
    return float(np.mean(uars)) if uars else float("nan")


def select_setting(run: RunContext, outer: Fold, method: str, *, folds: Sequence[Fold], **kw) -> tuple[dict[str, Any], float]:
    """The grid setting of ``method`` with the best mean inner UAR (the first on ties)."""
    best, best_uar = grid(method)[0], -np.inf
    for setting in grid(method):
        u = round(inner_uar(run, outer, method, setting, folds=folds, **kw), 6)
        if u > best_uar:
            best, best_uar = setting, u
    return best, float(best_uar)


def choose_auto(run: RunContext, outer: Fold, candidates: dict[str, dict[str, Any]], *, folds: Sequence[Fold],
                **kw) -> tuple[str, dict[str, float]]:
    """``(method, {candidate: inner UAR})``: ``none`` unless a candidate clears the one-standard-error
    rule against it (:func:`clears_none`); among those that do, the best mean inner UAR."""
    per_fold = {m: [round(u, 6) for u in inner_uars(run, outer, m, s, folds=folds, **kw)] for m, s in candidates.items()}
    scores = {m: round(float(np.mean(u)), 6) for m, u in per_fold.items()}
    best = "none"
    for m in candidates:
        if m != "none" and clears_none(per_fold[m], per_fold["none"]) and scores[m] > scores.get(best, -np.inf):
            best = m
    return best, scores


def clears_none(uars: Sequence[float], none_uars: Sequence[float]) -> bool:
    """Whether a candidate beats ``none`` on the inner folds by more than one standard error of the
    paired differences (Breiman's one-SE rule). The candidate's own setting was chosen on these
    same folds, so its inner score is biased upward (a winner's curse: on EmoDB, calibrate beat
    none on the inner folds of all 10 outer folds and lost 5 of the outer ones); demanding a gain
    beyond the noise of the inner folds keeps augmentation for where it helps clearly."""
    d = np.asarray(uars, np.float64) - np.asarray(none_uars, np.float64)
    if len(d) == 0 or not d.mean() > 0:
        return False
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
    return bool(d.mean() > se)


def auto_pool(names: Sequence[str]) -> list[str]:
    """auto's candidates besides none: the named row-level ones (else :data:`DEFAULT_POOL`), then
    the named generators."""
    named = [m for m in names if REGISTRY[m].auto_candidate]
    rows = [m for m in named if not REGISTRY[m].generator] or list(DEFAULT_POOL)
    return [*rows, *[m for m in named if REGISTRY[m].generator]]


def inner_job_cost(run: RunContext, fold: Fold) -> tuple[int, float]:
    """(jobs, seconds) of the inner generator fits of outer fold ``fold`` (seconds as their jobs recorded)."""
    found = [v for (m, k), v in run.generated.items() if k.startswith(f"{fold.name}|") and "|outer|" not in k]
    return len(found), float(sum(float((v or {}).get("seconds") or 0.0) for v in found))


def selects(names: Sequence[str], select: str) -> bool:
    """Whether a run of ``names`` chooses anything on inner folds (``--select inner``, or ``auto``)."""
    return select != "none" or "auto" in names


def select_fold(run: RunContext, fold: Fold, names: Sequence[str], select: str) -> dict[str, dict[str, Any]]:
    """Per method, the setting used on ``fold`` (``--select inner``), and ``auto``'s choice; both
    recorded in ``run.extras`` (compare.json's ``selected``, ``chosen``, ``inner_uar``)."""
    if not selects(names, select):
        return {}
    t0 = time.perf_counter()
    inner = inner_folds(run.real, fold.train)
    rows = {f.name: fold_rows(run, f) for f in inner}
    settings: dict[str, dict[str, Any]] = {}
    if select == "inner":
        for method in [m for m in names if len(grid(m)) > 1]:
            setting, score = select_setting(run, fold, method, folds=inner, rows=rows)
            settings[method] = setting
            row = run.extras.setdefault(method, {"selected": {}, "inner_uar": {}})
            row["selected"][fold.name], row["inner_uar"][fold.name] = setting, score
    if "auto" in names:
        pool = auto_pool(names)
        candidates: dict[str, dict[str, Any]] = {"none": {}}
        for method in pool:
            if select == "inner" and method not in settings:
                settings[method] = select_setting(run, fold, method, folds=inner, rows=rows)[0]
            candidates[method] = settings.get(method, {})
        chosen, scores = choose_auto(run, fold, candidates, folds=inner, rows=rows) if inner else ("none", {})
        row = run.extras.setdefault("auto", {"chosen": {}, "chosen_setting": {}, "inner_uar": {}, "candidates": ["none", *pool],
                                            "rule": "beats none by more than one standard error over the inner folds"})
        row["chosen"][fold.name], row["chosen_setting"][fold.name], row["inner_uar"][fold.name] = \
            chosen, candidates.get(chosen, {}), scores
        settings["auto"] = candidates.get(chosen, {})
    jobs, job_s = inner_job_cost(run, fold)
    log.info("fold %s: inner selection in %.1f s%s", fold.name, time.perf_counter() - t0,
             f" (+ {jobs} inner generator fits, {job_s:.0f} s as recorded by their jobs)" if jobs else "")
    return settings
