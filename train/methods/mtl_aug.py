"""``mtl-aug``: the MTL-AUG multitask network of :mod:`train.mtl` as a compare method.

It trains its own network (shared trunk, emotion head, augmentation-type head, clean-view
decoder) on every view of the fold's training speakers, unlabelled rows included, instead of
the run's classifier on synthetic rows; each fold is :func:`train.mtl.evaluate_fold`, seeded by
(seed, mtl-aug, fold) like ``train fit --method mtl-aug``, so the two give the same fold UARs.
Its folds are the run's (same names, same clean labelled test rows; its training rows also
hold the store's unlabelled items). Settings: ``options["mtl-aug"]`` (``MtlConfig``'s fields).
It needs a store with augmented views, ``--mode ser`` and ``--normalise global``; it has no
grid and is not an ``auto`` candidate.
"""

from __future__ import annotations

from typing import Any

from mirage.featstore.errors import ConfigError
from mirage.train.experiment import FoldResult
from mirage.train.methods.base import FoldContext, Method, RunContext

NAME = "mtl-aug"


class MtlAugMethod(Method):
    name = NAME
    inner = False

    def prepare(self, run: RunContext) -> None:
        from mirage.train.folds import make_folds
        from mirage.train.mtl import MtlConfig, load_mtl_data

        if run.mode != "ser" or run.normalise != "global":
            raise ConfigError(f"--methods {NAME}: expected --mode ser and --normalise global, got --mode {run.mode} "
                              f"--normalise {run.normalise}")
        items = run.real.items
        if "aug_type" not in items.columns or set(items["aug_type"].astype(str)) <= {"clean"}:
            raise ConfigError(f"--methods {NAME}: expected a store with augmented views, got none in {run.real.url}; "
                              "extract one with `featstore extract --views clean,noise:snr=10,...`")
        cfg = MtlConfig.from_kwargs(**run.options.get(NAME, {}))
        data = load_mtl_data(run.real.url, storage_options=run.storage_options)
        folds = {f.name: f for f in make_folds(data.items, data.metadata, run.evaluation)}
        run.state[NAME] = {"data": data, "folds": folds, "cfg": cfg}

    def config(self, run: RunContext) -> dict[str, Any]:
        import dataclasses

        return {"mtl": dataclasses.asdict(run.state[NAME]["cfg"])}

    def evaluate(self, ctx: FoldContext) -> FoldResult:
        from mirage.train.mtl import evaluate_fold

        st = ctx.run.state[NAME]
        if len(ctx.key) != 1 or ctx.fold.name not in st["folds"]:
            raise ConfigError(f"--methods {NAME}: expected an outer fold of the run, got {'/'.join(ctx.key)}")
        return evaluate_fold(st["data"], st["folds"][ctx.fold.name], st["cfg"], seed=ctx.run.seed)
