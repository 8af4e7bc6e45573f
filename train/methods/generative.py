"""``cgan`` and ``infogan``: a generator fitted per fold through the augment API, never seeing the
fold's test speakers, and its shards as the fold's synthetic rows.

``cgan`` is the same generator with λ = 0 (no MI terms) and unfiltered shards; ``infogan`` is
the MI-regularised one, its shards filtered by ``min_mi`` and generated with the run's
``generate_options`` (``mi_band``, ``balanced``). Each fit + generation is a :class:`Job` the
runner does first (on the Dask cluster when there is one). With ``--normalise speaker`` the
generator is fitted on a per-fold store of the outer training rows z-scored per speaker
(``fold_stores``), so its samples live in the classifier's space.

Jobs, all declared by :meth:`GeneratorMethod.jobs` before the fold loop:

* the **outer job** of each outer fold with the run's settings (``--lambda-mi``, ``--n``),
  seeded by (seed, method, fold) — what ``--select none`` uses, as before;
* under ``--select inner`` (when the method is among ``--methods``): one **selection job** per
  outer fold and value of the fit keys of the grid (:data:`FIT_KEYS`, here λ), generating the
  grid's largest ``n``; one whose settings equal the outer job's is that job (no second fit);
* **inner jobs** (``--select inner``, or ``auto`` with this method among ``--methods``): per
  outer fold, inner fold and fit-key value, a generator fitted on the inner training speakers
  only — the outer test speakers and the inner held-out speakers are both excluded, and only the
  inner training items are included — seeded by (seed, method, outer fold, inner fold), the same
  seed for every λ (common random numbers: the settings differ only in λ).

Every job is fingerprinted by :mod:`train.methods.cache`, so a rerun reuses its fits. A fold
with a grid setting of a smaller ``n`` takes a stratified, seeded subset of the generated rows
(labels in proportion, seed (seed, subsample, method, fold key)), so ``n`` and the synthetic
weight never need a fit of their own. See :data:`INFOGAN_GRID` for why the grid is what it is.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from mirage.train.folds import Fold
from mirage.train.methods.base import Augmentation, FoldContext, Job, Method, RunContext
from mirage.train.seeds import derive_seed

log = logging.getLogger(__name__)

#: RunContext.options key of the generator settings shared by cgan and infogan.
GENERATOR_OPTIONS = "generators"
#: Setting keys that change the generator's fit (each value is one fit per outer and inner fold).
FIT_KEYS = ("lambda_mi",)

#: ``--select inner`` grid of ``infogan``: 2 fits (λ) x 2 sizes x 2 weights = 8 settings per fold.
#: Why this grid: a generator fit (~20 s on one core for EmoDB's ~300 inner training rows) is the
#: cost that matters — 3 inner folds x 10 outer folds make every fit-changing value 30 fits, while
#: ``n`` (generated once at 4x, subsampled for 1x) and the synthetic weight (classifier side) are
#: free beyond a linear classifier per inner fold. λ is the one fit key because it is the method's
#: own knob (DESIGN.md's pitfalls: λ = 1 samples sit deep inside Q_y's regions; f-CLSWGAN weights
#: the term at 0.01-0.1); 0.01 is left out because it unties samples from their labels (normalised
#: MI 0 on EmoDB, −30 points). ``n`` and weight are the baselines' grid (:data:`BASELINE_GRID`), so
#: every method is chosen from the same sizes and weights. The MI band is left out: it is applied
#: in generation (redraws to fill label quotas), so each band would be one more generation per job.
INFOGAN_GRID: dict[str, tuple] = {"lambda_mi": (1.0, 0.1), "n": ("1x", "4x"), "synthetic_weight": (0.5, 1.0)}
#: ``cgan`` is λ = 0 by definition: one fit per fold, n x weight only.
CGAN_GRID: dict[str, tuple] = {"n": ("1x", "4x"), "synthetic_weight": (0.5, 1.0)}
#: Loaded synthetic sets kept in memory per run (one outer fold's inner jobs and then some).
_LOADED_MAX = 16
_STATE = "generator-jobs"


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def fit_part(setting: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``setting`` that change the fit (:data:`FIT_KEYS`)."""
    return {k: setting[k] for k in FIT_KEYS if k in setting}


def fit_tag(fit: dict[str, Any]) -> str:
    return ",".join(f"{k}={fit[k]}" for k in sorted(fit)) or "run"


def stratified_subset(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted positions of ``n`` of the rows labelled ``y``: per label in proportion (largest
    remainder), a seeded choice within each label."""
    from mirage.train.baselines import apportion

    y = np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    take = apportion(counts, int(n))
    rng = np.random.default_rng(seed)
    out = [rng.permutation(np.flatnonzero(y == lab))[:k] for lab, k in zip(labels, take)]
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def subset_synthetic(synth, idx: np.ndarray):
    from dataclasses import replace

    return replace(synth, h=synth.h[idx], y=synth.y[idx], t=None if synth.t is None else synth.t[idx],
                   t_pred=None if synth.t_pred is None else synth.t_pred[idx],
                   text_source=None if synth.text_source is None else synth.text_source[idx])


class GeneratorMethod(Method):
    inner = True
    generator = True
    auto_candidate = True

    def __init__(self, name: str, *, mi: bool):
        self.name, self.mi = name, mi
        self.grid = dict(INFOGAN_GRID if mi else CGAN_GRID)

    # jobs ----------------------------------------------------------------------------------------
    def _kwargs(self, run: RunContext, train_idx: np.ndarray, exclude: Sequence[str], n_items: int, seed: int,
                fit: dict[str, Any]) -> dict[str, Any]:
        g = run.options.get(GENERATOR_OPTIONS, {})
        lam = g.get("lambda_mi") if self.mi else 0.0
        if self.mi and "lambda_mi" in fit and float(fit["lambda_mi"]) != self._run_lambda(run):
            lam = float(fit["lambda_mi"])  # equal to the run's: its own spelling, so the job is the outer job
        return dict(mode=run.mode, exclude_speakers=tuple(sorted(exclude)),
                    include_utt_ids=run.real.items["utt_id"].iloc[train_idx].astype(str).tolist(),
                    lambda_mi=lam, n_items=int(n_items), min_mi=float(g.get("min_mi") or 0.0) if self.mi else 0.0,
                    seed=int(seed), storage_options=run.storage_options,
                    generator_options=g.get("generator_options", {}),
                    generate_options=dict(g.get("generate_options") or {}) if self.mi else {})

    @staticmethod
    def _run_lambda(run: RunContext) -> float:
        from mirage.augment.config import FitConfig

        g = run.options.get(GENERATOR_OPTIONS, {})
        lam = g.get("lambda_mi")
        lam = (g.get("generator_options") or {}).get("lambda_mi") if lam is None else lam
        return float(FitConfig().lambda_mi if lam is None else lam)

    def fit_settings(self, run: RunContext) -> list[dict[str, Any]] | None:
        """The fit-key values this run needs per inner fold (None: no inner jobs): the grid's under
        ``--select inner``, the run's own ([{}]) when ``auto`` may choose this method."""
        info = run.state.get("compare", {})
        if self.name not in info.get("methods", ()):
            return None
        if info.get("select") == "inner" and len(self.settings()) > 1:
            keys = [k for k in FIT_KEYS if k in self.grid]
            return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]
        if "auto" not in info.get("methods", ()):
            return None
        return [{}] if info.get("select") != "inner" else [fit_part(s) for s in self.settings()[:1]]

    def largest_n(self, run: RunContext, n_train: int) -> int:
        from mirage.augment.counts import parse_count

        info = run.state.get("compare", {})
        values = self.grid.get("n", ()) if info.get("select") == "inner" else ()
        return max([parse_count(v, n_train) for v in values] or [parse_count(run.default_n, n_train)])

    def jobs(self, run: RunContext, folds: Sequence[Fold], out: str, fold_stores: dict[str, str]) -> list[Job]:
        from mirage.augment.counts import parse_count
        from mirage.train.select import inner_folds

        state = run.state.setdefault(_STATE, {}).setdefault(self.name, {"keys": {}, "outer_test": {}})
        fits = self.fit_settings(run)
        jobs = []
        for fold in folds:
            normalised = fold.name in fold_stores  # a per-fold store holds the training rows only
            store = fold_stores.get(fold.name, run.real.url)
            source = {"store": run.real.token, "normalised": {"speaker": fold.name} if normalised else None}
            outer_exclude = () if normalised else fold.test_speakers
            state["outer_test"][fold.name] = tuple(fold.test_speakers)
            plain = self._kwargs(run, fold.train, outer_exclude, parse_count(run.default_n, len(fold.train)),
                                 derive_seed(run.seed, "generator", self.name, fold.name), {})
            jobs.append(Job((self.name, fold.name), os.path.join(out, "generators", self.name, slug(fold.name)),
                            store, plain, source))
            if fits is None:
                continue
            base = os.path.join(out, "generators", self.name, "_select", slug(fold.name))
            for fit in fits:
                tag = fit_tag(fit)
                if run.state["compare"].get("select") == "inner":  # the outer fold's selection job
                    kw = self._kwargs(run, fold.train, outer_exclude, self.largest_n(run, len(fold.train)),
                                      derive_seed(run.seed, "generator", self.name, fold.name), fit)
                    key = (self.name, fold.name) if kw == plain else (self.name, f"{fold.name}|outer|{tag}")
                    state["keys"][(fold.name, tag)] = key
                    if key != (self.name, fold.name):
                        jobs.append(Job(key, os.path.join(base, slug(f"outer-{tag}")), store, kw, source))
                for inner in inner_folds(run.real, fold.train):
                    exclude = set(inner.test_speakers) | set(outer_exclude)
                    kw = self._kwargs(run, inner.train, exclude, self.largest_n(run, len(inner.train)),
                                      derive_seed(run.seed, "generator", self.name, fold.name, inner.name), fit)
                    key = (self.name, f"{fold.name}|{inner.name}|{tag}")
                    state["keys"][(fold.name, inner.name, tag)] = key
                    jobs.append(Job(key, os.path.join(base, slug(f"{inner.name}-{tag}")), store, kw, source))
        return jobs

    def job_key(self, ctx: FoldContext) -> tuple[str, str]:
        """The job whose shards serve ``ctx`` (its fold key and the setting's fit keys)."""
        keys = ctx.run.state.get(_STATE, {}).get(self.name, {}).get("keys", {})
        fit = fit_part(ctx.setting)
        if len(ctx.key) == 1 and not fit and "n" not in ctx.setting:
            return self.name, ctx.key[0]
        found = keys.get((*ctx.key, fit_tag(fit)))
        if found is None:
            from mirage.featstore.errors import ConfigError

            raise ConfigError(f"--methods {self.name}: expected a generator job for fold {'/'.join(ctx.key)} with "
                              f"{fit_tag(fit)}, got none; it runs on inner folds only under --select inner or auto")
        return found

    # folds ---------------------------------------------------------------------------------------
    def cache_key(self, ctx: FoldContext):
        fp = ctx.run.job_fingerprints.get(self.job_key(ctx))
        return None if fp is None else {"method": self.name, "job": fp, "setting": ctx.setting}

    def synthetic(self, ctx: FoldContext):
        """The fold's generated rows (:class:`train.synthetic.SyntheticData`), from this method's job;
        on an inner fold the leakage check covers the outer test speakers too."""
        from mirage.train.folds import assign_shards
        from mirage.train.synthetic import load_synthetic, read_manifests

        run, fold = ctx.run, ctx.fold
        key = self.job_key(ctx)
        cache = run.state.setdefault(_STATE, {}).setdefault("_loaded", OrderedDict())
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        info = run.generated[key]
        _, kept = read_manifests([info["manifest"]], storage_options=run.storage_options,
                                 allow_incomplete=True)  # made here; n_train_synthetic says how many
        if len(ctx.key) > 1:
            outer_test = run.state[_STATE][self.name]["outer_test"].get(ctx.key[0], ())
            fold = Fold(fold.name, tuple(sorted({*fold.test_speakers, *outer_test})), fold.train, fold.test)
        kept = assign_shards([fold], kept)[fold.name] if not kept.empty else kept
        synth = load_synthetic(kept, run.real.labels, mode=run.mode, audio_dim=run.real.audio_dim,
                               storage_options=run.storage_options, client=run.client)
        cache[key] = synth
        while len(cache) > _LOADED_MAX:
            cache.popitem(last=False)
        return synth

    def augment(self, ctx: FoldContext) -> Augmentation:
        from mirage.train.dataset import assemble

        run, fold = ctx.run, ctx.fold
        synth = self.synthetic(ctx)
        if synth.n > ctx.n_syn:  # a grid setting of a smaller n than generated
            synth = subset_synthetic(synth, stratified_subset(
                synth.y, ctx.n_syn, derive_seed(run.seed, "subsample", self.name, *ctx.key)))
        ts = assemble(ctx.real, fold.train, synth, mode=run.mode,
                      rng=np.random.default_rng(derive_seed(run.seed, "pairs", *ctx.key)), normalise=run.normalise)
        return Augmentation(ts, synth.shards)
