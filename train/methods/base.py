"""The one interface every ``train compare`` method implements (see :mod:`train.methods`).

A method gets one fold — outer or inner — as a :class:`FoldContext` (the fold's prepared real
data, its standardised real training rows, the number of synthetic rows asked, the setting
chosen for it) and returns the fold's training rows as an :class:`Augmentation`: the real rows
plus its synthetic rows and the loss weight of those. :meth:`Method.evaluate` trains the run's
classifier on them and tests on the fold's held-out rows; a method that trains its own network
(``mtl-aug``) or delegates (``auto``) overrides it. Work that is too heavy to do inside the
fold loop (fitting a generator per fold) is declared by :meth:`Method.jobs` and run first, as
Dask tasks, by the runner; its results reach the method through :attr:`RunContext.generated`.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

from mirage.train.classifier import ClassifierConfig
from mirage.train.dataset import RealData, TrainingSet
from mirage.train.experiment import FoldResult
from mirage.train.folds import Fold

#: Setting keys every method understands: rows asked (``4x`` / a count) and their loss weight.
COMMON_KEYS = ("n", "synthetic_weight")


@dataclass
class RunContext:
    """What every fold of one compare run shares."""

    real: RealData                       # the store's rows, as loaded (not normalised)
    mode: str
    normalise: str
    evaluation: str
    seed: int
    default_n: str                       # --n
    cfg: ClassifierConfig                # the run's classifier
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> options (e.g. mixup pairs)
    storage_options: dict[str, Any] | None = None
    client: Any = None                   # Dask client or None
    generated: dict[tuple[str, str], Any] = field(default_factory=dict)  # (method, fold) -> job result
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)      # method -> extra compare.json fields
    state: dict[str, Any] = field(default_factory=dict)  # per-method data loaded once per run (e.g. mtl-aug's views)
    cache: Any = None                    # train.methods.cache.RunCache, or None (no reuse)
    job_fingerprints: dict[tuple[str, str], str] = field(default_factory=dict)  # (method, fold) -> job fingerprint


@dataclass(frozen=True)
class FoldContext:
    """One fold as a method sees it."""

    run: RunContext
    real: RealData          # prepared for the fold (``--normalise speaker`` applied)
    fold: Fold
    base: TrainingSet       # the fold's standardised real training rows
    n_syn: int              # synthetic rows asked for this fold
    setting: dict[str, Any]  # the fold's setting (a grid entry under --select inner, else {})
    key: tuple[str, ...]    # (outer fold,) or (outer fold, inner fold): seeds derive from it
    classifier_seed: int

    @property
    def n_classes(self) -> int:
        return len(self.run.real.labels)

    def options(self, name: str) -> dict[str, Any]:
        """The method's run options overlaid with the fold setting's method-specific keys."""
        extra = {k: v for k, v in self.setting.items() if k not in COMMON_KEYS}
        return {**self.run.options.get(name, {}), **extra}


@dataclass
class Augmentation:
    """A fold's training rows: real + synthetic, and the synthetic rows' loss weight (None: the run's)."""

    ts: TrainingSet
    shards: list[str] = field(default_factory=list)
    synthetic_weight: float | None = None


@dataclass(frozen=True)
class Job:
    """A unit of per-fold work run before the fold loop (a Dask task): ``fn(store_url, out_dir, **kwargs)``."""

    key: tuple[str, str]     # (method, fold)
    out_dir: str
    store_url: str
    kwargs: dict[str, Any]
    source: dict[str, Any] = field(default_factory=dict)  # what the input store's content is (for the fingerprint)


class Method:
    """Base class: a name, a ``--select inner`` grid, and fold in -> training rows out."""

    name: str = ""
    #: --select inner grid: key -> values; their product is tried (empty: nothing to select).
    grid: dict[str, tuple] = {}
    #: Whether ``auto`` may choose it (it must run on inner folds, cheaply).
    auto_candidate: bool = False
    #: Whether it runs on inner folds (--select inner / auto); generators do, through inner-fold jobs.
    inner: bool = True
    #: Whether its jobs fit an augment generator (its settings are checked, --normalise speaker
    #: writes per-fold stores for it).
    generator: bool = False

    def prepare(self, run: RunContext) -> None:
        """Refuse a run this method cannot do (raise ConfigError) and load what it needs once, before
        any fold's work (into ``run.state``)."""

    def jobs(self, run: RunContext, folds: Sequence[Fold], out: str, fold_stores: dict[str, str]) -> list[Job]:
        return []

    def augment(self, ctx: FoldContext) -> Augmentation:
        raise NotImplementedError

    def config(self, run: RunContext) -> dict[str, Any]:
        """Extra run settings recorded in config.json (empty: nothing beyond the shared ones)."""
        return {}

    def cache_key(self, ctx: FoldContext) -> dict[str, Any] | None:
        """What, beyond the fold and the run's classifier, determines this method's fold result
        (None: never cache it). See :mod:`train.methods.cache`."""
        return {"method": self.name, "setting": ctx.setting, "options": ctx.options(self.name)}

    def settings(self) -> list[dict[str, Any]]:
        keys = list(self.grid)
        if not keys:
            return [{}]
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def evaluate(self, ctx: FoldContext) -> FoldResult:
        from mirage.train.experiment import evaluate_in_memory

        aug = self.augment(ctx)
        weight = ctx.setting.get("synthetic_weight", aug.synthetic_weight)
        cfg = ctx.run.cfg if weight is None else dataclasses.replace(ctx.run.cfg, synthetic_weight=float(weight))
        return evaluate_in_memory(ctx.real, ctx.fold, aug.ts, cfg=cfg, seed=ctx.classifier_seed, shards=aug.shards)


def fold_rows(run: RunContext, fold: Fold) -> tuple[RealData, TrainingSet]:
    """The fold's prepared real data (``--normalise speaker`` applied) and standardised real training rows."""
    import numpy as np

    from mirage.train.dataset import assemble, prepare_fold

    real_f = prepare_fold(run.real, fold.train, fold.test, run.normalise)
    return real_f, assemble(real_f, fold.train, None, mode=run.mode, rng=np.random.default_rng(0),
                            normalise=run.normalise)


def fold_context(run: RunContext, fold: Fold, rows: tuple[RealData, TrainingSet], setting: dict[str, Any],
                 key: tuple[str, ...], classifier_seed: int) -> FoldContext:
    from mirage.augment.counts import parse_count

    n_syn = parse_count(setting.get("n", run.default_n), len(fold.train))
    return FoldContext(run, rows[0], fold, rows[1], n_syn, dict(setting), tuple(key), int(classifier_seed))
