"""One fold, trained and tested; fold results summarised into ``metrics.json`` + a confusion PNG.

``metrics.json`` (sorted keys, floats rounded to 6 digits, no timings or absolute output
paths, so the same seed gives the same bytes):

* ``uar_mean``, ``uar_std`` — mean and population std of the per-fold UARs (the headline);
* ``uar_pooled``, ``wa``, ``macro_f1``, ``confusion`` — over all folds' test predictions pooled;
* ``wa_mean``, ``macro_f1_mean`` — per-fold means;
* ``folds`` — per fold: ``name``, ``test_speakers``, ``uar``, ``wa``, ``macro_f1``, ``n_test``,
  ``n_train_real``, ``n_train_synthetic``, ``combinations`` (rows per input combination),
  ``synthetic_shards``, ``confusion``;
* ``labels`` (class order of the confusion matrices), ``chance_uar``, ``config``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from mirage.featstore.standardize import Standardizer
from mirage.train.classifier import ClassifierConfig, fit_streaming, predict
from mirage.train.dataset import RealData, TrainingSet
from mirage.train.folds import Fold
from mirage.train.loaders import BlockStream, Source, load_rows, row_moments
from mirage.train.metrics import confusion, plot_confusion, summary
from mirage.train.outputs import out_path, write_json

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.json"
CONFUSION_NAME = "confusion.png"


@dataclass
class FoldResult:
    name: str
    test_speakers: tuple[str, ...]
    confusion: np.ndarray
    n_train_real: int
    n_train_synthetic: int
    combos: dict[str, int] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    #: ``--test-views``: view spec -> confusion of the fold's classifier on those views of its test items
    by_view: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``--attack``: attack spec -> confusion on the fold's adversarially perturbed test rows (train.attack)
    by_attack: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def uar(self) -> float:
        return summary(self.confusion)["uar"]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "test_speakers": list(self.test_speakers), **summary(self.confusion),
            "n_test": int(self.confusion.sum()), "n_train_real": int(self.n_train_real),
            "n_train_synthetic": int(self.n_train_synthetic), "combinations": dict(self.combos),
            "synthetic_shards": list(self.shards), "confusion": self.confusion.tolist(),
            **({"uar_by_view": {v: summary(cm)["uar"] for v, cm in self.by_view.items()}} if self.by_view else {}),
            **({"uar_under_attack": {a: summary(cm)["uar"] for a, cm in self.by_attack.items()}} if self.by_attack else {}),
        }


def evaluate_in_memory(real: RealData, fold: Fold, ts: TrainingSet, *, cfg: ClassifierConfig, seed: int,
                       shards: Sequence[str] = (), view_tests: dict[str, np.ndarray] | None = None,
                       attacks: Sequence = ()) -> FoldResult:
    """Fit on the fold's (standardised) real + synthetic rows, test on its held-out items
    (and, per ``view_tests`` entry, on those positions: other views of the test items)."""
    from mirage.train.distill import fit_fold

    k = len(real.labels)
    # one weighted fit by default; --synthetic-loss distill / --keep-* use the fold's real-only teacher
    model, n_syn = fit_fold(ts, n_classes=k, cfg=cfg, seed=seed)
    pred = predict(model, ts.scaler.transform(real.features(fold.test)), num_threads=cfg.num_threads)
    cm = confusion(real.y[fold.test], pred, k)
    result = FoldResult(fold.name, fold.test_speakers, cm, ts.n_real, n_syn, ts.combos, list(shards))
    for view, pos in (view_tests or {}).items():
        pv = predict(model, ts.scaler.transform(real.features(pos)), num_threads=cfg.num_threads)
        result.by_view[view] = confusion(real.y[pos], pv, k)
    if attacks:
        from mirage.train.attack import attack_confusions

        x_test = ts.scaler.transform(real.features(fold.test))
        result.by_attack = attack_confusions(model, lambda x: predict(model, x, num_threads=cfg.num_threads), x_test,
                                             real.y[fold.test], attacks, k, num_threads=cfg.num_threads)
    log.info("fold %s: UAR %.3f (%d real + %d synthetic training rows, %d test)", fold.name, result.uar,
             ts.n_real, n_syn, len(fold.test))
    return result


def evaluate_streaming(real: RealData, fold: Fold, synthetic_sources: Sequence[Source], *, columns: tuple[str, ...],
                       cfg: ClassifierConfig, seed: int, scheduler: str = "threads", client=None,
                       num_workers: int = 0, combos: dict[str, int] | None = None,
                       shards: Sequence[str] = ()) -> FoldResult:
    """The same, for data too large to hold: statistics by a Dask reduction, training on a BlockStream."""
    rows = real.items["row"].to_numpy()
    train_src = Source(real.url, columns, rows[fold.train], real.y[fold.train], storage_options=real.storage_options,
                       token=real.token)
    scaler = Standardizer.from_moments(*row_moments([train_src], scheduler=scheduler, client=client))
    stream = BlockStream([train_src, *synthetic_sources], batch_size=cfg.batch_size, seed=seed,
                         scheduler=scheduler, client=client)
    k = len(real.labels)
    model = fit_streaming(stream, scaler, n_classes=k, cfg=cfg, seed=seed, num_workers=num_workers)
    test_src = Source(real.url, columns, rows[fold.test], real.y[fold.test], storage_options=real.storage_options,
                      token=real.token)
    pred = predict(model, scaler.transform(load_rows(test_src, scheduler=scheduler, client=client)), num_threads=cfg.num_threads)
    n_syn = int(sum(s.n_rows for s in synthetic_sources))
    result = FoldResult(fold.name, fold.test_speakers, confusion(real.y[fold.test], pred, k), len(fold.train), n_syn,
                        dict(combos or {}), list(shards))
    log.info("fold %s (streamed): UAR %.3f (%d real + %d synthetic training rows)", fold.name, result.uar,
             len(fold.train), n_syn)
    return result


def round_floats(obj: Any, ndigits: int = 6) -> Any:
    if isinstance(obj, float):
        return round(obj, ndigits) if np.isfinite(obj) else None
    if isinstance(obj, (np.floating,)):
        return round_floats(float(obj), ndigits)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): round_floats(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [round_floats(v, ndigits) for v in obj]
    return obj


def summarize(results: Sequence[FoldResult], labels: Sequence[str], config: dict[str, Any]) -> dict[str, Any]:
    folds = [r.to_json() for r in results]
    uars = np.array([f["uar"] for f in folds], dtype=np.float64)
    pooled = np.sum([r.confusion for r in results], axis=0)
    ps = summary(pooled)
    return round_floats({
        "uar_mean": float(np.mean(uars)), "uar_std": float(np.std(uars)), "uar_pooled": ps["uar"],
        "wa": ps["wa"], "macro_f1": ps["macro_f1"],
        "wa_mean": float(np.mean([f["wa"] for f in folds])), "macro_f1_mean": float(np.mean([f["macro_f1"] for f in folds])),
        "confusion": pooled.tolist(), "labels": list(labels), "chance_uar": 1.0 / len(labels),
        "n_folds": len(folds), "folds": folds, "config": config,
    })


def locked_run(fn=None, *, out_arg: int = 1):
    """Hold a writer lock on a run's ``out`` folder (positional argument ``out_arg``, the second by
    default) while it runs: two runs into one folder would interleave their files; the second is
    refused. The run also owns its store cache (:func:`train.stores.run_stores`), closed when it ends."""
    import functools

    if fn is None:
        return functools.partial(locked_run, out_arg=out_arg)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mirage.featstore.store.location import Location, WriterLock, check_out_dir

        out = args[out_arg] if len(args) > out_arg else kwargs["out"]
        check_out_dir(str(out))
        from mirage.featstore.kinds import RUN, check_output

        runtime = kwargs.get("runtime")
        options = kwargs.get("storage_options") or (runtime.storage_options if runtime is not None else None)
        check_output(str(out), RUN, flag="--out", storage_options=options)
        from mirage.train.stores import run_stores

        with WriterLock(Location(str(out), options), f"run folder {out}"), run_stores():
            return fn(*args, **kwargs)

    return wrapper


def write_metrics(out_dir: str, metrics: dict[str, Any], *, title: str = "",
                  storage_options: dict[str, Any] | None = None) -> str:
    """``out_dir/metrics.json`` (written atomically) and ``out_dir/confusion.png``; ``out_dir``
    may be a URL (see :mod:`train.outputs`). Returns the JSON path."""
    path = write_json(out_path(out_dir, METRICS_NAME), metrics, storage_options)
    label = title or f"UAR {metrics['uar_mean']:.3f} ± {metrics['uar_std']:.3f} ({metrics['n_folds']} folds)"
    plot_confusion(np.asarray(metrics["confusion"]), metrics["labels"], out_path(out_dir, CONFUSION_NAME), title=label,
                   storage_options=storage_options)
    return path
