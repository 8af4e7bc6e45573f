"""train: light emotion classifiers on real + synthetic feature shards, evaluated per fold.

Public API (import from the modules; nothing is imported or computed here):

* :func:`train.fit.fit` — ``train fit``: per-fold training/evaluation, ``metrics.json`` + confusion PNG;
* :func:`train.compare.compare` — ``train compare``: none / smote / mixup / noise / cgan / infogan
  under the same folds and seeds, ``compare.json`` + ``compare.md`` + plots;
* :mod:`train.loaders` — Dask block readers (:func:`~train.loaders.load_rows`,
  :class:`~train.loaders.BlockStream`, :func:`~train.loaders.make_loader`);
* :mod:`train.folds` — LOSO / session / official folds and the synthetic-shard leakage check;
* :mod:`train.classifier`, :mod:`train.metrics`, :mod:`train.baselines`, :mod:`train.synthetic`.
"""
