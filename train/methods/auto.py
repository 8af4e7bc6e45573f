"""``auto``: per outer fold, the method that won on inner folds of the training speakers
(chosen by :func:`train.select.select_fold`, recorded in ``RunContext.extras["auto"]``), run
with that method's own seeds and the setting it was chosen with — so ``auto``'s fold equals
the chosen method's fold. Candidates (:func:`train.select.auto_pool`): the row-level methods
named in ``--methods`` (else :data:`DEFAULT_POOL`) and the generators (cgan, infogan) named
there — a generator costs a fit per inner fold, so it is a candidate only when the run compares
it anyway."""

from __future__ import annotations

from mirage.train.experiment import FoldResult
from mirage.train.methods.base import FoldContext, Method

#: auto's row-level candidates when --methods names none (generators join only when named).
DEFAULT_POOL = ("smote", "mixup", "noise")


class AutoMethod(Method):
    name = "auto"
    inner = False

    def cache_key(self, ctx: FoldContext):
        from mirage.train.methods import get

        return get(ctx.run.extras["auto"]["chosen"][ctx.fold.name]).cache_key(ctx)

    def evaluate(self, ctx: FoldContext) -> FoldResult:
        from mirage.train.methods import get

        chosen = ctx.run.extras["auto"]["chosen"][ctx.fold.name]
        return get(chosen).evaluate(ctx)
