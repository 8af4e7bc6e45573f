"""Nested selection for ``train compare --select inner`` and the ``auto`` method.

Per outer fold, the outer training speakers are split into ``INNER_FOLDS`` groups (sorted
speakers dealt round-robin); each inner fold trains on the other groups and tests on one,
leave-speakers-out, so nothing about the outer test speaker is used. Every inner fold
normalises (``--normalise``) and augments exactly as the outer fold does.

* ``--select inner``: each baseline's setting (``n`` × ``synthetic_weight`` over
  :data:`BASELINE_GRID`) is the one with the best mean inner UAR; ties go to the earlier,
  more conservative grid entry. The generators (cgan, infogan) keep their given settings:
  selecting theirs would mean fitting one generator per inner fold and setting, which this
  does not do yet.
* ``auto``: per outer fold, the candidate with the best mean inner UAR among ``none`` and the
  augmentation baselines (those named in ``--methods``, or all three when none is named; each
  with its selected setting under ``--select inner``, else the run's). A candidate must beat
  ``none`` strictly, so augmentation is used only where it helped on unseen training speakers.
  Generators are not auto candidates yet (same reason).

Inner classifiers are seeded by (seed, outer fold, inner fold) only, so the choice does not
depend on the order of the work.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

import numpy as np

from mirage.featstore.errors import ConfigError
from mirage.train.baselines import BASELINES, augment_baseline
from mirage.train.classifier import ClassifierConfig
from mirage.train.dataset import RealData, TrainingSet, assemble, prepare_fold
from mirage.train.experiment import evaluate_in_memory
from mirage.train.folds import Fold
from mirage.train.seeds import derive_seed

SELECT = ("none", "inner")
INNER_FOLDS = 3
BASELINE_GRID: dict[str, tuple] = {"n": ("1x", "4x"), "synthetic_weight": (0.5, 1.0)}


def check_select(select: str | None) -> str:
    value = "none" if select is None else str(select).lower()
    if value not in SELECT:
        raise ConfigError(f"--select: expected one of {', '.join(SELECT)}, got {select!r}")
    return value


def grid(method: str) -> list[dict[str, Any]]:
    if method not in BASELINES:
        return [{}]
    keys = list(BASELINE_GRID)
    return [dict(zip(keys, values)) for values in itertools.product(*(BASELINE_GRID[k] for k in keys))]


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


def baseline_set(base: TrainingSet, method: str, n_syn: int, *, n_classes: int, seed: int,
                 options: dict[str, Any] | None = None) -> TrainingSet:
    """``base`` plus ``n_syn`` rows of a baseline made from its (normalised) real rows."""
    if method == "none":
        return base
    x_syn, y_syn = augment_baseline(method, base.x_real, base.y_real, n_syn, n_classes=n_classes, seed=seed,
                                    **(options or {}))
    return dataclasses.replace(base, x_syn=x_syn, y_syn=y_syn, combos={**base.combos, method: len(x_syn)})


def setting_config(cfg: ClassifierConfig, setting: dict[str, Any]) -> ClassifierConfig:
    if "synthetic_weight" in setting:
        return dataclasses.replace(cfg, synthetic_weight=float(setting["synthetic_weight"]))
    return cfg


def inner_uar(real: RealData, outer: Fold, method: str, setting: dict[str, Any], *, default_n: str, cfg: ClassifierConfig,
              mode: str, normalise: str, seed: int, baseline_options: dict[str, dict[str, Any]] | None,
              folds: Sequence[Fold]) -> float:
    """Mean UAR of ``method`` with ``setting`` over the inner folds of ``outer``."""
    from mirage.augment.counts import parse_count

    uars = []
    for inner in folds:
        rf = prepare_fold(real, inner.train, inner.test, normalise)
        base = assemble(rf, inner.train, None, mode=mode, rng=np.random.default_rng(0), normalise=normalise)
        n_syn = parse_count(setting.get("n", default_n), len(inner.train))
        ts = baseline_set(base, method, n_syn, n_classes=len(real.labels),
                          seed=derive_seed(seed, method, outer.name, inner.name),
                          options=(baseline_options or {}).get(method, {}))
        res = evaluate_in_memory(rf, inner, ts, cfg=setting_config(cfg, setting),
                                 seed=derive_seed(seed, "inner-classifier", outer.name, inner.name))
        uars.append(res.uar)
    return float(np.mean(uars)) if uars else float("nan")


def select_setting(real: RealData, outer: Fold, method: str, *, folds: Sequence[Fold], **kw) -> tuple[dict[str, Any], float]:
    """The grid setting of ``method`` with the best mean inner UAR (the first on ties)."""
    best, best_uar = grid(method)[0], -np.inf
    for setting in grid(method):
        u = round(inner_uar(real, outer, method, setting, folds=folds, **kw), 6)
        if u > best_uar:
            best, best_uar = setting, u
    return best, float(best_uar)


def choose_auto(real: RealData, outer: Fold, candidates: dict[str, dict[str, Any]], *, folds: Sequence[Fold],
                **kw) -> tuple[str, dict[str, float]]:
    """``(method, {candidate: inner UAR})``: the best candidate, which must beat ``none`` strictly."""
    scores = {m: round(inner_uar(real, outer, m, s, folds=folds, **kw), 6) for m, s in candidates.items()}
    best = "none"
    for m, u in scores.items():
        if u > scores.get(best, -np.inf):
            best = m
    return best, scores
