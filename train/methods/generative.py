"""``cgan`` and ``infogan``: a generator fitted per outer fold through the augment API, never
seeing the fold's test speakers, and its shards as the fold's synthetic rows.

``cgan`` is the same generator with λ = 0 (no MI terms) and unfiltered shards; ``infogan`` is
the MI-regularised one, its shards filtered by ``min_mi`` and generated with the run's
``generate_options`` (``mi_band``, ``balanced``). Each fit + generation is a :class:`Job` the
runner does first (on the Dask cluster when there is one), seeded by (seed, method, fold) only.
With ``--normalise speaker`` the generator is fitted on a per-fold store of the training rows
z-scored per speaker (``fold_stores``), so its samples live in the classifier's space.
Generators are not run on inner folds (--select inner / auto) yet: that would mean a fit per
inner fold and setting.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from mirage.train.folds import Fold
from mirage.train.methods.base import Augmentation, FoldContext, Job, Method, RunContext
from mirage.train.seeds import derive_seed

#: RunContext.options key of the generator settings shared by cgan and infogan.
GENERATOR_OPTIONS = "generators"


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


class GeneratorMethod(Method):
    inner = False
    generator = True

    def __init__(self, name: str, *, mi: bool):
        self.name, self.mi = name, mi

    def jobs(self, run: RunContext, folds: Sequence[Fold], out: str, fold_stores: dict[str, str]) -> list[Job]:
        from mirage.augment.counts import parse_count

        g = run.options.get(GENERATOR_OPTIONS, {})
        items = run.real.items
        jobs = []
        for fold in folds:
            # a per-fold normalised store holds the training rows only (nothing to exclude)
            kwargs = dict(mode=run.mode, exclude_speakers=() if fold.name in fold_stores else fold.test_speakers,
                          include_utt_ids=items["utt_id"].iloc[fold.train].astype(str).tolist(),
                          lambda_mi=g.get("lambda_mi") if self.mi else 0.0,
                          n_items=parse_count(run.default_n, len(fold.train)),
                          min_mi=float(g.get("min_mi") or 0.0) if self.mi else 0.0,
                          seed=derive_seed(run.seed, "generator", self.name, fold.name),
                          storage_options=run.storage_options, generator_options=g.get("generator_options", {}),
                          generate_options=dict(g.get("generate_options") or {}) if self.mi else {})
            source = {"store": run.real.token,
                      "normalised": {"speaker": fold.name} if fold.name in fold_stores else None}
            jobs.append(Job((self.name, fold.name), os.path.join(out, "generators", self.name, slug(fold.name)),
                            fold_stores.get(fold.name, run.real.url), kwargs, source))
        return jobs

    def cache_key(self, ctx: FoldContext):
        fp = ctx.run.job_fingerprints.get((self.name, ctx.fold.name))
        return None if fp is None else {"method": self.name, "job": fp}

    def synthetic(self, ctx: FoldContext):
        """The fold's generated rows (:class:`train.synthetic.SyntheticData`), from this method's job."""
        from mirage.train.folds import assign_shards
        from mirage.train.synthetic import load_synthetic, read_manifests

        run, fold = ctx.run, ctx.fold
        info = run.generated[(self.name, fold.name)]
        _, kept = read_manifests([info["manifest"]], storage_options=run.storage_options,
                                 allow_incomplete=True)  # made here; n_train_synthetic says how many
        kept = assign_shards([fold], kept)[fold.name] if not kept.empty else kept
        return load_synthetic(kept, run.real.labels, mode=run.mode, audio_dim=run.real.audio_dim,
                              storage_options=run.storage_options, client=run.client)

    def augment(self, ctx: FoldContext) -> Augmentation:
        from mirage.train.dataset import assemble

        run, fold = ctx.run, ctx.fold
        synth = self.synthetic(ctx)
        ts = assemble(ctx.real, fold.train, synth, mode=run.mode,
                      rng=np.random.default_rng(derive_seed(run.seed, "pairs", fold.name)), normalise=run.normalise)
        return Augmentation(ts, synth.shards)
