"""The methods of ``train compare``, one object each behind :class:`~train.methods.base.Method`.

A method is a name, a ``--select inner`` grid, and fold in -> training rows out; the runner
(:mod:`train.compare`) and the selection (:mod:`train.select`) only ever call the interface,
so a new method is one module plus one line in :data:`REGISTRY`.

* ``none`` — real rows only; ``smote``, ``mixup``, ``noise`` (:mod:`train.baselines`) and
  ``calibrate`` (:mod:`train.calibrate`) — rows made from the fold's standardised real rows;
* ``cgan``, ``infogan`` — a generator fitted per outer fold, and per inner fold under
  ``--select inner`` / ``auto`` (:mod:`train.methods.generative`);
* ``mtl-aug`` — the MTL-AUG multitask network on the store's views (:mod:`train.methods.mtl_aug`);
  ``mtl-aug+infogan`` — the same network trained on the views and the fold's infogan rows;
* ``auto`` — per outer fold, ``none`` or a candidate chosen on inner folds (:mod:`train.methods.auto`).
"""

from __future__ import annotations

from mirage.featstore.errors import ConfigError
from mirage.train.baselines import mixup, noise, smote
from mirage.train.calibrate import calibrate
from mirage.train.methods.auto import AutoMethod
from mirage.train.methods.base import Augmentation, FoldContext, Job, Method, RunContext
from mirage.train.methods.baselines import BASELINE_GRID, NoneMethod, RowBaseline
from mirage.train.methods.generative import GeneratorMethod
from mirage.train.methods.mtl_aug import MtlAugInfoganMethod, MtlAugMethod

#: calibrate's grid: the baselines' n x synthetic weight, and k = 0 (its own covariance only) or 2 borrowed.
CALIBRATE_GRID: dict[str, tuple] = {**BASELINE_GRID, "k": (0, 2)}

REGISTRY: dict[str, Method] = {m.name: m for m in (
    NoneMethod(),
    RowBaseline("smote", smote),
    RowBaseline("mixup", mixup),
    RowBaseline("noise", noise),
    GeneratorMethod("cgan", mi=False),
    GeneratorMethod("infogan", mi=True),
    AutoMethod(),
    RowBaseline("calibrate", calibrate, grid=CALIBRATE_GRID),
    MtlAugMethod(),
    MtlAugInfoganMethod(),
)}

__all__ = ["REGISTRY", "get", "names", "evaluate", "Method", "RunContext", "FoldContext", "Augmentation", "Job", "BASELINE_GRID"]


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Method:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"--methods: expected a comma-separated subset of {','.join(REGISTRY)}, got {name!r}") from None


def evaluate(name: str, ctx: FoldContext):
    """``get(name).evaluate(ctx)``, reused from the run's fingerprint cache when it holds the result."""
    method, cache = get(name), ctx.run.cache
    key = method.cache_key(ctx) if cache is not None and cache.enabled else None
    if key is None:
        return method.evaluate(ctx)
    fp = cache.fold_fingerprint(ctx, key)
    hit = cache.fold_result(fp)
    if hit is not None:
        return hit
    res = method.evaluate(ctx)
    cache.record_fold(fp, res)
    return res
