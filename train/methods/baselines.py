"""``none`` and the row-level baselines (``smote``, ``mixup``, ``noise`` of :mod:`train.baselines`,
``calibrate`` of :mod:`train.calibrate`): synthetic rows made from the fold's standardised real
training rows, seeded by (seed, method, fold[, inner fold]) only."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from mirage.train.methods.base import Augmentation, FoldContext, Method
from mirage.train.seeds import derive_seed

#: n x synthetic weight: the --select inner grid of every row-level baseline.
BASELINE_GRID: dict[str, tuple] = {"n": ("1x", "4x"), "synthetic_weight": (0.5, 1.0)}


class NoneMethod(Method):
    """Real rows only: ``train fit`` under the same folds and classifier seeds."""

    name = "none"

    def augment(self, ctx: FoldContext) -> Augmentation:
        return Augmentation(ctx.base)


class RowBaseline(Method):
    """``fn(x, y, n_syn, n_classes=, seed=, **options) -> (x_syn, y_syn)`` on the fold's rows."""

    auto_candidate = True

    def __init__(self, name: str, fn: Callable[..., tuple[np.ndarray, np.ndarray]],
                 grid: dict[str, tuple] | None = None):
        self.name, self.fn = name, fn
        self.grid = dict(BASELINE_GRID if grid is None else grid)

    def rows(self, x: np.ndarray, y: np.ndarray, n_syn: int, *, n_classes: int, seed: int, **options: Any):
        if n_syn <= 0 or len(x) == 0:
            return np.zeros((0, x.shape[1]), np.float32), np.zeros(0, np.int64)
        return self.fn(x, y, n_syn, n_classes=n_classes, seed=seed, **options)

    def augment(self, ctx: FoldContext) -> Augmentation:
        base = ctx.base
        x_syn, y_syn = self.rows(base.x_real, base.y_real, ctx.n_syn, n_classes=ctx.n_classes,
                                 seed=derive_seed(ctx.run.seed, self.name, *ctx.key), **ctx.options(self.name))
        return Augmentation(dataclasses.replace(base, x_syn=x_syn, y_syn=y_syn,
                                                combos={**base.combos, self.name: len(x_syn)}))
