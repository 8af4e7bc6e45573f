"""``train compare``: every augmentation method under the same folds, seeds and classifier.

The methods are the objects of :mod:`train.methods` (``none``, ``smote``, ``mixup``, ``noise``,
``calibrate``, ``cgan``, ``infogan``, ``mtl-aug``, ``auto``), each behind one interface: fold in,
training rows out. This runner only calls that interface — no per-method branches. Every
method gets ``n`` synthetic rows per fold (``4x`` = four per real training item; an MI filter
may leave a generator fewer, which ``n_train_synthetic`` reports). Work declared as jobs (a
generator fit + generation per fold, with the fold's test speakers excluded) runs first as Dask
tasks — in parallel on a local cluster with ``workers=N`` or an existing one with
``scheduler`` — and their seeds depend on (seed, method, fold) only, so the worker count does
not change results. The classifier seed depends on (seed, fold) only: ``none`` reproduces
``train fit``. ``auto`` and ``select="inner"`` are :mod:`train.select`'s.

Outputs in ``out``: ``compare.json`` (method -> ``uar_mean`` (fold mean), ``uar_std``,
``uar_pooled`` (all folds' predictions together), ``wa``, ``macro_f1``, ``fold_uar`` {fold: UAR},
``folds``, and, when ``none`` is among the methods, the paired statistics of
:mod:`train.stats`: ``delta_vs_none`` (fold-mean Δ), ``delta_pooled_vs_none``, ``p_value``
(Wilcoxon signed-rank over folds; null for none itself and when no fold differs, with
``p_value_note`` saying why), ``ci95`` (seeded bootstrap 95% CI of the mean fold Δ),
``folds_won``, ``folds_lost``, ``folds_tied``), ``compare.md`` (a table of the same),
``compare.png`` (fold-mean bars ± std, pooled UAR markers, Δ / CI / p / folds won-lost
above each bar), ``config.json``, and ``<method>/metrics.json`` + confusion PNG.

``normalise`` (``--normalise none|global|speaker``, see :mod:`train.dataset`) applies to
every method; a non-default value is recorded in the config.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from mirage.featstore.runtime import Runtime
from mirage.train.compare_config import DEFAULT_METHODS, CompareConfig, parse_methods  # noqa: F401  (re-exported)
from mirage.train.dataset import RealData, load_real, prepare_fold
from mirage.train.experiment import FoldResult, round_floats, summarize, write_metrics, locked_run
from mirage.train.folds import Fold, corpus_name, make_folds
from mirage.train.methods import BASELINE_GRID, REGISTRY, Job, RunContext, get
from mirage.train.fold_tasks import classify, distributable, gather_folds, submit_folds
from mirage.train.methods.generative import GENERATOR_OPTIONS, slug as _slug
from mirage.train.metrics import plot_bars
from mirage.train.outputs import out_path, write_json, write_text
from mirage.train.seeds import derive_seed
from mirage.train.select import INNER_FOLDS, grid

log = logging.getLogger(__name__)

METHODS = tuple(REGISTRY)
GENERATIVE = tuple(n for n, m in REGISTRY.items() if m.generator)


@dataclass
class CompareResult:
    path: str
    table: dict[str, dict[str, Any]]
    markdown: str
    cache_stats: dict[str, dict[str, int]] = field(default_factory=dict)  # {"hits": {"job": n, "fold": n}, "misses": ...}

    @property
    def message(self) -> str:
        return self.markdown + f"\n-> {self.path}"


def generate_for_fold(store: str, out_dir: str, *, mode: str, exclude_speakers: Sequence[str],
                      include_utt_ids: Sequence[str], lambda_mi: float | None, n_items: int, min_mi: float,
                      seed: int, storage_options: dict[str, Any] | None, generator_options: dict[str, Any],
                      generate_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit a generator without the fold's test speakers and generate its shards (a Dask task)."""
    from mirage.augment.fit import fit_generator
    from mirage.augment.generate import generate

    t0 = time.perf_counter()
    opts = dict(generator_options)
    if lambda_mi is not None:
        opts["lambda_mi"] = lambda_mi
    model_dir = fit_generator(store, os.path.join(out_dir, "model"), mode=mode, exclude_speakers=tuple(exclude_speakers),
                              include_utt_ids=list(include_utt_ids), seed=seed, storage_options=storage_options,
                              progress=False, **opts)
    res = generate(model_dir, os.path.join(out_dir, "shards"), n=int(n_items), min_mi=float(min_mi), seed=seed,
                   storage_options=storage_options, progress=False, **(generate_options or {}))
    return {"manifest": str(res.manifest_path), "n_items": int(res.n_items), "n_rejected": int(res.n_rejected),
            "seconds": round(time.perf_counter() - t0, 1)}


def write_normalised_store(real: RealData, fold: Fold, url: str) -> str:
    """The fold's training rows, audio z-scored per speaker (``--normalise speaker``), as a store.

    The fold's generators are fitted on it, so that they learn — and generate in — the space
    the classifier trains in; only training speakers' rows are written."""
    from mirage.featstore.store import write_store

    normed = prepare_fold(real, fold.train, fold.test, "speaker")
    items = real.items.iloc[fold.train].drop(columns=["row"]).reset_index(drop=True)
    arrays = {"audio": np.ascontiguousarray(normed.h[fold.train], dtype=np.float32)}
    if real.t is not None:
        arrays["text"] = np.ascontiguousarray(real.t[fold.train], dtype=np.float32)
    else:  # --mode ser: the generator may still condition on text (use_text)
        from mirage.train.loaders import cached_store

        source = cached_store(real.url, real.storage_options)
        if source.has("text"):
            arrays["text"] = np.asarray(source.read("text", real.items["row"].to_numpy()[fold.train]), dtype=np.float32)
    meta = {"corpus": real.metadata.get("corpus"), "extractors": real.metadata.get("extractors", {}),
            "normalised": {"normalise": "speaker", "source_content_hash": real.metadata.get("content_hash"),
                           "fold": fold.name}}
    write_store(url, items=items, arrays=arrays, metadata=meta, storage_options=real.storage_options).close()
    return url


@dataclass
class StartedJobs:
    """The generator jobs of one run once started: results known now (cache hits, or every job
    when they ran here), futures of those running on the cluster, and how to wait for them."""

    done: dict[tuple[str, str], dict]
    futures: dict[tuple[str, str], Any]
    wait: Callable[[], dict[tuple[str, str], dict]]


def _start_jobs(jobs: Sequence[Job], run: RunContext, *, progress: bool = False,
                pending_stores: dict[str, Any] | None = None) -> StartedJobs:
    """Start every job (:func:`generate_for_fold`) the cache does not hold: on the Dask cluster
    when there is one (they run while the caller goes on), else here, before this returns.
    ``wait()`` gives (method, fold) -> result for every job. ``pending_stores`` (url -> writer)
    makes a per-fold input store only when a job needs it."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    cache, done, todo = run.cache, {}, []
    for job in jobs:
        fp = cache.job_fingerprint(generate_for_fold.__name__, job.kwargs, job.source) if cache else None
        if fp is not None:
            run.job_fingerprints[job.key] = fp
            job = replace(job, out_dir=cache.job_dir(job.key[0], job.out_dir, fp))
            hit = cache.job_result(job.out_dir, fp)
            if hit is not None:
                done[job.key] = hit
                continue
        todo.append((job, fp))
    if not todo:
        return StartedJobs(done, {}, lambda: done)
    for url in sorted({j.store_url for j, _ in todo} & set(pending_stores or {})):
        pending_stores[url]()
    log.info("fitting %d generators (%s)", len(todo), "on the Dask cluster" if run.client is not None else "in-process")
    bar = tqdm(total=len(todo), desc="train compare: generators (one per method and fold)", disable=not progress)

    def finish(results: list) -> dict[tuple[str, str], dict]:
        bar.close()
        for (j, fp), res in zip(todo, results):
            if fp is not None:
                cache.record_job(j.out_dir, fp, res)
            done[j.key] = res
        return done

    if run.client is not None:
        futures = [run.client.submit(generate_for_fold, j.store_url, j.out_dir, pure=False, **j.kwargs) for j, _ in todo]
        for fut in futures:
            fut.add_done_callback(lambda _: bar.update())
        return StartedJobs(dict(done), {j.key: f for (j, _), f in zip(todo, futures)},
                           lambda: finish(run.client.gather(futures)))
    results = []
    for j, _ in todo:
        results.append(generate_for_fold(j.store_url, j.out_dir, **j.kwargs))
        bar.update()
    finished = finish(results)
    return StartedJobs(finished, {}, lambda: finished)


@locked_run
def compare(store: str, out: str, config: CompareConfig | None = None, *, runtime: Runtime | None = None,
            workers: int = 0, scheduler: str | None = None, storage_options: dict[str, Any] | None = None,
            progress: bool | None = None, **settings: Any) -> CompareResult:
    """Run every method on the same folds; write ``out/compare.json``, ``compare.md`` and plots.

    ``config`` holds the settings (:class:`train.compare_config.CompareConfig`, or give them as
    keywords: ``methods``, ``n``, ``min_mi``, ``mode``, ``evaluation``, ``seed``, ``normalise``,
    ``select``, ``lambda_mi``, ``cache``, ``classifier`` (kind) + ``classifier_options``,
    ``generator_options``, ``generate_options``, ``baseline_options``); ``runtime`` how it runs
    (:class:`featstore.runtime.Runtime`, or ``workers``, ``scheduler``, ``storage_options``,
    ``progress``).

    ``normalise`` (see :mod:`train.dataset`) applies to every method alike: the baselines
    augment the fold's rows after normalisation; with ``speaker`` the generators are fitted
    on a per-fold store of the training rows z-scored per speaker
    (:func:`write_normalised_store`), so their samples live in the classifier's space.
    ``baseline_options`` maps a method to its options (``{"mixup": {"pairs": "same"}}``,
    ``{"calibrate": {"k": 2, "alpha": 0.1}}``, ``{"mtl-aug": {"w_aug": 0}}``).

    ``select="inner"`` picks each gridded method's setting per outer fold on inner folds of the
    training speakers, and ``auto`` picks a method per outer fold the same way (see
    :mod:`train.select`); the choices are listed in compare.json (``selected``, ``chosen``,
    ``inner_uar``).

    ``cache``: where fingerprinted jobs and fold results are kept (:mod:`train.methods.cache`):
    None = inside ``out``; a folder shared by runs; ``"off"`` = no reuse."""
    from mirage.train.methods.cache import RunCache

    from mirage.featstore.settings import config_or_keywords

    cc = config_or_keywords(CompareConfig, config, settings)
    runtime = Runtime.resolve(runtime, workers=workers, scheduler=scheduler, storage_options=storage_options,
                              progress=progress, default_progress=False)
    names, cfg, seed, n, min_mi, lambda_mi = cc.method_names, cc.classifier, cc.seed, cc.n, cc.min_mi, cc.lambda_mi
    mode, evaluation, normalise, select, cache = cc.mode, cc.evaluation, cc.normalise, cc.select, cc.cache
    gen_opts, generate_options, baseline_options = cc.generator, cc.generation, cc.baselines
    storage_options, progress = runtime.storage_options, runtime.progress
    t0 = time.perf_counter()
    with runtime.dask() as client:
        real = load_real(store, mode=mode, storage_options=storage_options, client=client)
        options = {**(baseline_options or {}), GENERATOR_OPTIONS: {
            "lambda_mi": lambda_mi, "min_mi": min_mi, "generator_options": gen_opts,
            "generate_options": dict(generate_options or {})}}
        run = RunContext(real, mode, normalise, evaluation, int(seed), str(n), cfg, options,
                         storage_options=storage_options, client=client,
                         cache=None if cache == "off" else RunCache(cache, out, real.token))
        run.state["compare"] = {"select": select, "methods": list(names)}  # read by jobs() (inner generator jobs)
        for name in names:
            get(name).prepare(run)
        folds = make_folds(real.items, real.metadata, evaluation)
        fold_stores, pending = {}, {}
        if normalise == "speaker" and any(m in GENERATIVE for m in names):
            for f in folds:  # written only if a job that is not cached needs it
                url = fold_stores[f.name] = os.path.join(out, "generators", "_normalised", _slug(f.name) + ".zarr")
                pending[url] = functools.partial(write_normalised_store, real, f, url)
        # one job per key: methods that share a generator (infogan, mtl-aug+infogan) share its fit and shards
        jobs: dict[tuple[str, str], Job] = {}
        with_jobs: set[str] = set()
        for name in names:
            for job in get(name).jobs(run, folds, out, fold_stores):
                jobs.setdefault(job.key, job)
                with_jobs.add(name)
        started = _start_jobs(list(jobs.values()), run, progress=progress, pending_stores=pending)
        if distributable(run, select, names):  # the folds as tasks beside the generator jobs (train.fold_tasks)
            tasks = submit_folds(run, folds, names, select, {**started.done, **started.futures}, with_jobs)
            run.generated.update(started.wait())
            results = gather_folds(run, tasks, bar=runtime.bar)
        else:
            run.generated.update(started.wait())
            results = classify(run, folds, names, select, bar=runtime.bar)
        per_method: dict[str, list[FoldResult]] = {m: [results[(m, f.name)] for f in folds] for m in names}
    from mirage.train.synthetic import note_empty_synthetic

    for method, note in note_empty_synthetic(per_method, GENERATIVE, min_mi).items():  # said, not a silent `none`
        run.extras.setdefault(method, {}).update(note)
    run_config = {
        "store": real.url, "store_content_hash": real.metadata.get("content_hash"), "corpus": corpus_name(real.metadata),
        "methods": names, "n": str(n), "min_mi": min_mi, "mode": mode, "eval": evaluation, "seed": int(seed),
        "lambda_mi": lambda_mi, "classifier": cfg.to_json(), "generator_options": gen_opts,
        "generate_options": dict(generate_options or {}),
        "baseline_options": baseline_options or {},
        **({"normalise": normalise} if normalise != "global" else {}),
        **({"select": select, "inner_folds": INNER_FOLDS, "baseline_grid": {k: list(v) for k, v in BASELINE_GRID.items()}}
           if select != "none" else {}),
        **_method_config(run, names, select),
    }
    from mirage.train.rerun import remove_stale_methods

    # read before the new compare.json replaced it: an old --out keeps no other run's method folders
    remove_stale_methods(out, names, storage_options)
    table = _write_outputs(out, names, per_method, real.labels, run_config, extras=run.extras,
                           storage_options=storage_options)
    stats = run.cache.stats if run.cache is not None else {}
    log.info("train compare: %d methods x %d folds in %.1f s (cache %s)", len(names), len(folds),
             time.perf_counter() - t0, stats or "off")
    return CompareResult(out_path(out, "compare.json"), table, markdown_table(table, names), stats)


def _method_config(run: RunContext, names: Sequence[str], select: str) -> dict[str, Any]:
    """Per-method extras of config.json: grids other than the baselines' (under --select inner) and settings."""
    out: dict[str, Any] = {}
    for name in names:
        out.update(get(name).config(run))
    grids = {m: {k: list(v) for k, v in REGISTRY[m].grid.items()} for m in names
             if select != "none" and len(grid(m)) > 1 and REGISTRY[m].grid != BASELINE_GRID}
    return {**out, **({"grids": grids} if grids else {})}


def _write_outputs(out: str, names: Sequence[str], per_method: dict[str, list[FoldResult]], labels: Sequence[str],
                   config: dict[str, Any], extras: dict[str, dict[str, Any]] | None = None,
                   storage_options: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every file through train.outputs (Location), so ``out`` may be an ``s3://`` URL."""
    table: dict[str, dict[str, Any]] = {}
    for method in names:
        metrics = summarize(per_method[method], labels, {**config, "method": method})
        write_metrics(out_path(out, method), metrics, title=f"{method}: UAR {metrics['uar_mean']:.3f} ± {metrics['uar_std']:.3f}",
                      storage_options=storage_options)
        table[method] = {
            "uar_mean": metrics["uar_mean"], "uar_std": metrics["uar_std"], "uar_pooled": metrics["uar_pooled"],
            "wa": metrics["wa"], "macro_f1": metrics["macro_f1"],
            "fold_uar": {f["name"]: f["uar"] for f in metrics["folds"]},
            "folds": [{k: f[k] for k in ("name", "test_speakers", "uar", "n_train_real", "n_train_synthetic")}
                      for f in metrics["folds"]],
            "metrics": f"{method}/metrics.json",
            **round_floats((extras or {}).get(method, {})),
        }
    if "none" in table:
        add_paired_stats(table, names, seed=int(config.get("seed", 0)))
    write_json(out_path(out, "compare.json"), table, storage_options)
    write_json(out_path(out, "config.json"), config, storage_options)
    write_text(out_path(out, "compare.md"), markdown_table(table, names) + "\n", storage_options)
    plot_bars(list(names), [table[m]["uar_mean"] for m in names], [table[m]["uar_std"] for m in names],
              out_path(out, "compare.png"), chance=1.0 / len(labels), storage_options=storage_options,
              points=[table[m]["uar_pooled"] for m in names], points_label="pooled UAR",
              annotations=[_plot_note(table[m]) for m in names])
    return table


def add_paired_stats(table: dict[str, dict[str, Any]], names: Sequence[str], *, seed: int) -> None:
    """Each method's Δ vs none, Wilcoxon p, bootstrap CI and folds won/lost (see :mod:`train.stats`)."""
    from mirage.train.stats import paired_vs_none

    ref = table["none"]
    for method in names:
        row = table[method]
        st = paired_vs_none(row["fold_uar"], ref["fold_uar"], seed=derive_seed(seed, "bootstrap", method),
                            is_none=method == "none")
        st["delta_vs_none"] = row["uar_mean"] - ref["uar_mean"]  # fold-mean Δ (the mean of the paired fold Δs)
        st["delta_pooled_vs_none"] = row["uar_pooled"] - ref["uar_pooled"]
        row.update(round_floats(st))


def _plot_note(row: dict[str, Any]) -> str:
    if "delta_vs_none" not in row or row.get("p_value_note", "").startswith("none itself"):
        return ""
    lo, hi = row["ci95"]
    p = "p n/a" if row["p_value"] is None else f"p {row['p_value']:.2g}"
    return (f"Δ {100 * row['delta_vs_none']:+.1f}\n[{100 * lo:+.1f}, {100 * hi:+.1f}]\n{p}\n"
            f"won {row['folds_won']}, lost {row['folds_lost']}")


def markdown_table(table: dict[str, dict[str, Any]], names: Sequence[str]) -> str:
    """Fold-mean and pooled UAR, Δ vs none (points) with its bootstrap 95% CI, Wilcoxon p, folds won/lost."""
    lines = ["| method | UAR (mean ± std) | pooled UAR | Δ vs none (points) | 95% CI of Δ | Wilcoxon p | "
             "folds won/lost | WA | macro-F1 | synthetic rows / fold |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in names:
        r = table[m]
        delta = f"{100 * r['delta_vs_none']:+.1f}" if "delta_vs_none" in r else "n/a"
        ci = f"[{100 * r['ci95'][0]:+.1f}, {100 * r['ci95'][1]:+.1f}]" if r.get("ci95") and None not in r["ci95"] else "n/a"
        p = (f"{r['p_value']:.3g}" if r.get("p_value") is not None else "—" if m == "none"
             else "n/a (no fold differs)" if "zero" in r.get("p_value_note", "") else "n/a")
        won = f"{r['folds_won']}/{r['folds_lost']}" if "folds_won" in r else "n/a"
        syn = np.mean([f["n_train_synthetic"] for f in r["folds"]]) if r["folds"] else 0
        lines.append(f"| {m} | {r['uar_mean']:.3f} ± {r['uar_std']:.3f} | {r['uar_pooled']:.3f} | {delta} | {ci} | {p} | "
                     f"{won} | {r['wa']:.3f} | {r['macro_f1']:.3f} | {syn:.0f} |")
    return "\n".join(lines)
