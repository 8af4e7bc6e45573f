"""``train fit``: evaluate a classifier on real (+ synthetic) features under LOSO or the official split.

Synthetic manifests are read first (shards below ``min_mi`` are dropped without being
opened) and checked for leakage per fold: a fold uses only the shards whose generator saw
none of its test speakers, and the run is refused (:class:`LeakageError`) when a fold has
no such shard or a shard suits no fold — see :func:`train.folds.assign_shards`.

Data that fits ``max_memory_mb`` is read once (block tasks through Dask) and trained on in
memory; larger data is streamed per fold through :class:`~train.loaders.BlockStream`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError
from mirage.featstore.runtime import Runtime
from mirage.train.dataset import RealData, assemble, for_fold, load_real, prepare_fold, real_items, store_columns
from mirage.train.experiment import FoldResult, evaluate_in_memory, evaluate_streaming, summarize, write_metrics, locked_run
from mirage.train.fit_config import LOADERS, TrainFitConfig  # noqa: F401  (LOADERS re-exported)
from mirage.train.folds import assign_shards, corpus_name, make_folds
from mirage.train.loaders import cached_store
from mirage.train.seeds import derive_seed
from mirage.train.synthetic import SOURCE_HASH_COLUMN, load_synthetic, read_manifests, shard_sources

log = logging.getLogger(__name__)



@dataclass
class FitResult:
    metrics_path: str
    metrics: dict[str, Any]

    @property
    def message(self) -> str:
        m = self.metrics
        return (f"UAR {m['uar_mean']:.3f} ± {m['uar_std']:.3f} over {m['n_folds']} folds "
                f"(WA {m['wa']:.3f}, macro-F1 {m['macro_f1']:.3f}, chance {m['chance_uar']:.3f}) -> {self.metrics_path}")


def select_shards(folds, manifests: Sequence[str], *, min_mi: float | None, store_hash: str | None,
                  storage_options: dict[str, Any] | None = None, allow_incomplete: bool = False) -> dict[str, pd.DataFrame]:
    """Per fold, the manifest rows it may use (each row checked against its shard's own record,
    leakage-checked, then MI-filtered); an incomplete set is refused unless ``allow_incomplete``."""
    all_rows, kept = read_manifests(manifests, min_mi=min_mi, storage_options=storage_options,
                                    allow_incomplete=allow_incomplete)
    if all_rows.empty:
        return {f.name: kept for f in folds}
    per_fold = assign_shards(folds, all_rows)
    if SOURCE_HASH_COLUMN in all_rows.columns and store_hash:
        other = sorted(set(all_rows[SOURCE_HASH_COLUMN].astype(str)) - {store_hash})
        if other:
            log.warning("synthetic shards were generated from another store (content hash %s, this store %s): "
                        "speaker names are compared as given", other[0][:12], store_hash[:12])
    keep = set(kept["path_abs"].astype(str))
    out = {name: df[df["path_abs"].astype(str).isin(keep)] for name, df in per_fold.items()}
    for name, df in out.items():
        if df.empty:
            log.warning("fold %s: every synthetic shard it may use is below --min-mi %s; it trains on real data only", name, min_mi)
    return out


def _estimate_bytes(store, columns: tuple[str, ...], per_fold: dict[str, pd.DataFrame], mode: str) -> int:
    dim = sum(store.row_width(c) or 1 for c in columns)
    n_syn = max([int(df["n_items"].sum()) if "n_items" in df else 0 for df in per_fold.values()] or [0])
    factor = 3 if mode == "multimodal" else 1
    return 4 * dim * (store.n_items + factor * n_syn)


@locked_run
def fit(store: str, out: str, config: TrainFitConfig | None = None, *, runtime: Runtime | None = None,
        workers: int = 0, scheduler: str | None = None, storage_options: dict[str, Any] | None = None,
        progress: bool | None = None, **settings: Any) -> FitResult:
    """Train and evaluate per fold; write ``out/metrics.json`` and ``out/confusion.png``.

    ``config`` holds the settings (:class:`train.fit_config.TrainFitConfig`, or give its fields as
    keywords, with ``classifier`` (kind) + ``classifier_options`` and ``mtl_options``);
    ``runtime`` how it runs (:class:`featstore.runtime.Runtime`, or ``workers``, ``scheduler``,
    ``storage_options``, ``progress``). ``method="mtl-aug"`` trains MTL-AUG's multitask network
    instead (:func:`train.mtl.fit_mtl`).

    ``layer`` (K, "mean" or "weighted"; see :mod:`train.layers`) trains on the store's
    ``audio_layers`` instead of its ``audio``.

    ``normalise`` (see :mod:`train.dataset`): ``global`` (default) z-scores with the training
    fold's statistics; ``speaker`` first z-scores each speaker's audio rows with that speaker's
    own statistics — the test speaker's from its unlabelled test features (transductive) —
    and maps ``synthetic`` rows, generated in the store's raw space by a generator that saw
    many speakers, with the training fold's pooled per-speaker statistics (training-row mean,
    within-speaker std); ``none`` trains on raw features. Both non-default choices need the
    in-memory loader and are recorded in the config.

    On a store with augmented views, folds train on every view of their training speakers
    (``train_views``: only those) and test on clean rows; ``test_views`` (e.g.
    ``noise:snr=10,0``, views the store holds) also tests each fold's classifier on those views
    of its test items and adds ``uar_by_view`` (see :mod:`train.noisy`). ``attack`` (e.g.
    ``fgsm:eps=0.1``) adds ``uar_under_attack`` (see :mod:`train.attack`).

    ``final`` also trains on every labelled item and saves the classifier to ``out/model``
    (see :mod:`train.final`; ``train predict`` uses it)."""
    from mirage.featstore.settings import config_or_keywords

    config = config_or_keywords(TrainFitConfig, config, settings)
    runtime = Runtime.resolve(runtime, workers=workers, scheduler=scheduler, storage_options=storage_options,
                              progress=progress, default_progress=False)
    if config.method == "mtl-aug":
        from mirage.train.mtl import fit_mtl

        return fit_mtl.__wrapped__(store, out, evaluation=config.evaluation, seed=config.seed, options=config.mtl,
                                   test_views=config.test_views, train_views=config.train_views,
                                   ablations=config.mtl_ablations, attack=config.attack,
                                   storage_options=runtime.storage_options, progress=runtime.progress)
    return _fit_probe(store, out, config, runtime)


def _fit_probe(store: str, out: str, cc: TrainFitConfig, runtime: Runtime) -> FitResult:
    """The linear-probe path of :func:`fit` (the run folder is already locked)."""
    from mirage.train.attack import parse_attacks
    from mirage.train.layers import check_layer
    from mirage.train.noisy import add_view_summary, restrict_train, view_tests, write_view_plot

    synthetic, mode, evaluation, seed, min_mi, loader = cc.synthetic, cc.mode, cc.evaluation, cc.seed, cc.min_mi, cc.loader
    normalise, layer, test_views, train_views, final, cfg = cc.normalise, cc.layer, cc.test_views, cc.train_views, cc.final, cc.classifier
    storage_options = runtime.storage_options
    t0 = time.perf_counter()
    real_store = cached_store(store, storage_options)
    from mirage.featstore.kinds import require_features

    require_features(real_store)
    columns = store_columns(real_store, mode)
    layer = check_layer(layer, real_store)
    from mirage.train.attack import add_attack_summary

    attacks = parse_attacks(cc.attack)
    items, labels, y = real_items(real_store)
    folds = restrict_train(items, make_folds(items, real_store.metadata, evaluation), train_views, store=real_store.url)
    view_specs, per_view = view_tests(items, folds, test_views, store=real_store.url) if test_views else ([], {})
    per_fold = select_shards(folds, list(synthetic), min_mi=min_mi, store_hash=real_store.metadata.get("content_hash"),
                             storage_options=storage_options, allow_incomplete=cc.allow_incomplete)
    stream = loader == "stream" or (layer is None and normalise == "global" and loader == "auto" and not test_views and not attacks
                                    and not final
                                    and _estimate_bytes(real_store, columns, per_fold, mode) > cc.max_memory_mb * 2**20)
    from mirage.train.distill import separate_terms

    if stream and separate_terms(cfg):
        raise ConfigError("--synthetic-loss distill / --keep-margin / --keep-nn-quantile: expected the in-memory loader "
                          "(--loader memory or auto below --max-memory-mb), got streamed training")
    results: list[FoldResult] = []
    layer_weights: dict[str, list[float]] = {}
    with runtime.dask() as client:
        if stream:
            # features stay on disk: only the item table is held
            real = RealData(real_store.url, items, labels, y, np.zeros((0, real_store.dim("audio")), np.float32),
                            None, dict(real_store.metadata), storage_options)
            for fold in runtime.bar(iterable=folds, desc="train fit: folds (streamed)", mininterval=0.1):
                shards = per_fold[fold.name]
                sources, combos = [], {("h+t" if mode == "multimodal" else "h"): len(fold.train)}
                if not shards.empty:
                    syn_cols = ("audio",) if mode == "ser" else ("audio", "text")
                    sources = shard_sources(shards, labels, columns=syn_cols, storage_options=storage_options,
                                            weight=cfg.synthetic_weight)
                    combos["hhat" if mode == "ser" else "hhat+t"] = sum(s.n_rows for s in sources)
                    if mode == "multimodal":
                        if all(cached_store(p, storage_options).has("text_pred") for p in shards["path_abs"]):
                            pred = shard_sources(shards, labels, columns=("audio", "text_pred"),
                                                 storage_options=storage_options, weight=cfg.synthetic_weight)
                            combos["hhat+t_pred"] = sum(s.n_rows for s in pred)
                            sources += pred
                        log.warning("streamed multimodal training leaves out (h, t'), which pairs rows of two stores; "
                                    "use --loader memory for all four combinations")
                results.append(evaluate_streaming(real, fold, sources, columns=columns, cfg=cfg,
                                                  seed=derive_seed(seed, "classifier", fold.name), client=client,
                                                  num_workers=cc.loader_workers, combos=combos,
                                                  shards=shards["path_abs"].astype(str).tolist() if not shards.empty else []))
        else:
            all_real = load_real(real_store.url, mode=mode, storage_options=storage_options, client=client, layer=layer)
            for fold in runtime.bar(iterable=folds, desc="train fit: folds", mininterval=0.1):
                real = for_fold(all_real, fold.train, seed=derive_seed(seed, "layers", fold.name))
                if real.layer_weights is not None:
                    layer_weights[fold.name] = [round(float(w), 6) for w in real.layer_weights]
                real = prepare_fold(real, fold.train, fold.test, normalise)
                shards = per_fold[fold.name]
                synth = load_synthetic(shards, labels, mode=mode, audio_dim=real.audio_dim,
                                       storage_options=storage_options, client=client)
                if real.speaker_pool is not None and synth.n:
                    synth.h = real.speaker_pool.transform(synth.h)
                ts = assemble(real, fold.train, synth, mode=mode, rng=np.random.default_rng(derive_seed(seed, "pairs", fold.name)),
                              normalise=normalise)
                results.append(evaluate_in_memory(real, fold, ts, cfg=cfg, seed=derive_seed(seed, "classifier", fold.name),
                                                  shards=synth.shards, view_tests=per_view.get(fold.name), attacks=attacks))
    config = {
        "store": real_store.url, "store_content_hash": real_store.metadata.get("content_hash"),
        "corpus": corpus_name(real_store.metadata), "mode": mode, "eval": evaluation, "seed": int(seed),
        "classifier": cfg.to_json(), "synthetic": [str(s) for s in synthetic],
        "min_mi": min_mi, "loader": "stream" if stream else "memory",
        **({"layer": layer} if layer is not None else {}),
        **({"layer_weights": layer_weights} if layer_weights else {}),
        **({"normalise": normalise} if normalise != "global" else {}),
        **({"test_views": view_specs} if view_specs else {}),
        **({"attack": [a.spec for a in attacks]} if attacks else {}),
        **({"train_views": train_views if isinstance(train_views, str) else ",".join(train_views)} if train_views else {}),
    }
    metrics = summarize(results, labels, config)
    if view_specs:
        metrics = add_view_summary(metrics, results, view_specs)
    if attacks:
        metrics = add_attack_summary(metrics, results, attacks)
    if final:
        from mirage.train.final import train_final

        train_final(all_real, cfg=cfg, mode=mode, layer=layer, normalise=normalise, seed=seed, out=str(out),
                    storage_options=storage_options)
        metrics["final_model"] = "model"  # relative to out: metrics.json holds no absolute output paths
    path = write_metrics(out, metrics, storage_options=storage_options)
    if view_specs:
        write_view_plot(out, metrics, storage_options)
    log.info("train fit: %d folds in %.1f s", len(folds), time.perf_counter() - t0)
    return FitResult(path, metrics)
