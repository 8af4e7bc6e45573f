"""``train compare``: every augmentation method under the same folds, seeds and classifier.

Methods: ``none`` (real data only), the baselines of :mod:`train.baselines` (``smote``,
``mixup``, ``noise``), and two generators fitted per fold through the augment API with the
fold's test speakers excluded: ``cgan`` (λ = 0, no MI terms; shards not MI-filtered) and
``infogan`` (the MI-regularised generator, shards filtered by ``min_mi``; ``generate_options``
such as ``mi_band`` or ``balanced`` go to its ``augment generate``). Every method gets
``n`` synthetic rows per fold (``4x`` = four per real training item; an MI filter may
leave fewer, which ``n_train_synthetic`` reports). Generator fits run as Dask tasks — in
parallel on a local cluster with ``workers=N`` or an existing one with ``scheduler`` — and
their seeds depend on (seed, method, fold) only, so the worker count does not change results.
The classifier seed depends on (seed, fold) only: ``none`` reproduces ``train fit``.
``auto`` picks, per outer fold, ``none`` or a baseline by inner leave-speakers-out folds of
the training speakers, and ``select="inner"`` picks each baseline's settings the same way
(:mod:`train.select`; generators are not selected yet).

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

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mirage.featstore.errors import ConfigError
from mirage.train.baselines import BASELINES
from mirage.train.select import BASELINE_GRID, INNER_FOLDS, baseline_set, setting_config
from mirage.train.classifier import ClassifierConfig
from mirage.train.dataset import RealData, TrainingSet, assemble, check_mode, check_normalise, load_real, prepare_fold
from mirage.train.experiment import FoldResult, evaluate_in_memory, round_floats, summarize, write_metrics, locked_run
from mirage.train.folds import Fold, assign_shards, corpus_name, make_folds
from mirage.train.loaders import clear_store_cache
from mirage.train.metrics import plot_bars
from mirage.train.outputs import out_path, write_json, write_text
from mirage.train.seeds import derive_seed
from mirage.train.synthetic import load_synthetic, read_manifests

log = logging.getLogger(__name__)

METHODS = ("none", "smote", "mixup", "noise", "cgan", "infogan", "auto")
GENERATIVE = ("cgan", "infogan")


@dataclass
class CompareResult:
    path: str
    table: dict[str, dict[str, Any]]
    markdown: str

    @property
    def message(self) -> str:
        return self.markdown + f"\n-> {self.path}"


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    names = [m.strip().lower() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise ConfigError(f"--methods: expected a comma-separated subset of {','.join(METHODS)}, got {methods!r}")
    return list(dict.fromkeys(names))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def generate_for_fold(store: str, out_dir: str, *, mode: str, exclude_speakers: Sequence[str],
                      include_utt_ids: Sequence[str], lambda_mi: float | None, n_items: int, min_mi: float,
                      seed: int, storage_options: dict[str, Any] | None, generator_options: dict[str, Any],
                      generate_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit a generator without the fold's test speakers and generate its shards (a Dask task)."""
    from mirage.augment.fit import fit_generator
    from mirage.augment.generate import generate

    opts = dict(generator_options)
    if lambda_mi is not None:
        opts["lambda_mi"] = lambda_mi
    model_dir = fit_generator(store, os.path.join(out_dir, "model"), mode=mode, exclude_speakers=tuple(exclude_speakers),
                              include_utt_ids=list(include_utt_ids), seed=seed, storage_options=storage_options,
                              progress=False, **opts)
    res = generate(model_dir, os.path.join(out_dir, "shards"), n=int(n_items), min_mi=float(min_mi), seed=seed,
                   storage_options=storage_options, progress=False, **(generate_options or {}))
    return {"manifest": str(res.manifest_path), "n_items": int(res.n_items), "n_rejected": int(res.n_rejected)}


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


def _run_generators(store_url: str, out: str, folds: Sequence[Fold], items, methods: Sequence[str], *, mode: str,
                    n_per_fold: dict[str, int], min_mi: float | None, lambda_mi: float | None, seed: int,
                    storage_options, generator_options: dict[str, Any], generate_options: dict[str, Any],
                    client, progress: bool = False, fold_stores: dict[str, str] | None = None
                    ) -> dict[tuple[str, str], dict]:
    from tqdm.auto import tqdm

    jobs = []
    for method in [m for m in methods if m in GENERATIVE]:
        for fold in folds:
            # a per-fold normalised store holds the training rows only (nothing to exclude)
            kwargs = dict(mode=mode, exclude_speakers=() if fold.name in (fold_stores or {}) else fold.test_speakers,
                          include_utt_ids=items["utt_id"].iloc[fold.train].astype(str).tolist(),
                          lambda_mi=0.0 if method == "cgan" else lambda_mi, n_items=n_per_fold[fold.name],
                          min_mi=float(min_mi or 0.0) if method == "infogan" else 0.0,
                          seed=derive_seed(seed, "generator", method, fold.name), storage_options=storage_options,
                          generator_options=generator_options,
                          generate_options=generate_options if method == "infogan" else {})
            jobs.append(((method, fold.name), os.path.join(out, "generators", method, _slug(fold.name)), kwargs,
                         (fold_stores or {}).get(fold.name, store_url)))
    if not jobs:
        return {}
    log.info("fitting %d generators (%s)", len(jobs), "on the Dask cluster" if client is not None else "in-process")
    bar = tqdm(total=len(jobs), desc="train compare: generators (one per method and fold)", disable=not progress)
    if client is not None:
        from distributed import as_completed

        futures = [client.submit(generate_for_fold, url, d, pure=False, **kw) for _, d, kw, url in jobs]
        for _ in as_completed(futures):
            bar.update()
        results = client.gather(futures)
    else:
        results = []
        for _, d, kw, url in jobs:
            results.append(generate_for_fold(url, d, **kw))
            bar.update()
    bar.close()
    return {key: res for (key, _, _, _), res in zip(jobs, results)}


@locked_run
def compare(store: str, out: str, *, methods: str | Sequence[str] = METHODS, n: str | int = "4x",
            min_mi: float | None = None, mode: str = "ser", evaluation: str = "loso", classifier: str = "linear",
            seed: int = 0, workers: int = 0, scheduler: str | None = None, lambda_mi: float | None = None,
            storage_options: dict[str, Any] | None = None, classifier_options: dict[str, Any] | None = None,
            generator_options: dict[str, Any] | None = None, generate_options: dict[str, Any] | None = None,
            baseline_options: dict[str, dict[str, Any]] | None = None, progress: bool = False,
            normalise: str = "global", select: str = "none") -> CompareResult:
    """Run every method on the same folds; write ``out/compare.json``, ``compare.md`` and plots.

    ``normalise`` (see :mod:`train.dataset`) applies to every method alike: the baselines
    augment the fold's rows after normalisation; with ``speaker`` the generators are fitted
    on a per-fold store of the training rows z-scored per speaker
    (:func:`write_normalised_store`), so their samples live in the classifier's space.

    ``select="inner"`` picks each baseline's setting per outer fold on inner folds of the
    training speakers, and ``auto`` picks a method per outer fold the same way (see
    :mod:`train.select`); the choices are listed in compare.json (``selected``, ``chosen``,
    ``inner_uar``)."""
    from tqdm.auto import tqdm

    from mirage.augment.counts import parse_count
    from mirage.featstore.dask_utils import dask_client

    names = parse_methods(methods)
    check_mode(mode)
    normalise = check_normalise(normalise)
    from mirage.train.select import check_select

    select = check_select(select)
    cfg = ClassifierConfig.from_kwargs(kind=classifier, **(classifier_options or {}))
    if min_mi is not None and not 0.0 <= float(min_mi) <= 1.0:
        raise ConfigError(f"--min-mi: expected a number in [0, 1], got {min_mi}")
    gen_opts = {"num_threads": 1, **(generator_options or {})}
    if any(m in GENERATIVE for m in names):
        from mirage.augment.fit import check_fit_options

        check_fit_options(**gen_opts)  # fail before any work on a misspelt setting
    t0 = time.perf_counter()
    clear_store_cache()
    with dask_client(workers=workers, scheduler=scheduler) as client:
        real = load_real(store, mode=mode, storage_options=storage_options, client=client)
        folds = make_folds(real.items, real.metadata, evaluation)
        n_per_fold = {f.name: parse_count(n, len(f.train)) for f in folds}
        fold_stores = {}
        if normalise == "speaker" and any(m in GENERATIVE for m in names):
            fold_stores = {f.name: write_normalised_store(real, f, os.path.join(out, "generators", "_normalised",
                                                                                _slug(f.name) + ".zarr"))
                           for f in folds}
        generated = _run_generators(real.url, out, folds, real.items, names, mode=mode, n_per_fold=n_per_fold,
                                    min_mi=min_mi, lambda_mi=lambda_mi, seed=seed, storage_options=storage_options,
                                    generator_options=gen_opts, generate_options=dict(generate_options or {}),
                                    client=client, progress=progress, fold_stores=fold_stores)
        per_method: dict[str, list[FoldResult]] = {m: [] for m in names}
        extras: dict[str, dict[str, Any]] = {}
        for fold in tqdm(folds, desc="train compare: classifiers per fold", disable=not progress):
            real_f = prepare_fold(real, fold.train, fold.test, normalise)
            base: TrainingSet = assemble(real_f, fold.train, None, mode=mode, rng=np.random.default_rng(0),
                                         normalise=normalise)
            cls_seed = derive_seed(seed, "classifier", fold.name)
            settings = _select_fold(real, fold, names, select, default_n=str(n), cfg=cfg, mode=mode,
                                    normalise=normalise, seed=seed, baseline_options=baseline_options, extras=extras)
            for method in names:
                shards: list[str] = []
                run_as, setting = method, settings.get(method, {})
                if method == "auto":
                    run_as = extras["auto"]["chosen"][fold.name]
                    setting = settings.get("auto", {})
                if run_as == "none":
                    ts = base
                elif run_as in BASELINES:
                    n_syn = parse_count(setting["n"], len(fold.train)) if "n" in setting else n_per_fold[fold.name]
                    ts = baseline_set(base, run_as, n_syn, n_classes=len(real.labels), seed=derive_seed(seed, run_as, fold.name),
                                      options=(baseline_options or {}).get(run_as, {}))
                else:
                    info = generated[(method, fold.name)]
                    _, kept = read_manifests([info["manifest"]], storage_options=storage_options,
                                             allow_incomplete=True)  # made here; n_train_synthetic says how many
                    kept = assign_shards([fold], kept)[fold.name] if not kept.empty else kept
                    synth = load_synthetic(kept, real.labels, mode=mode, audio_dim=real.audio_dim,
                                           storage_options=storage_options, client=client)
                    ts = assemble(real_f, fold.train, synth, mode=mode,
                                  rng=np.random.default_rng(derive_seed(seed, "pairs", fold.name)), normalise=normalise)
                    shards = synth.shards
                per_method[method].append(evaluate_in_memory(real_f, fold, ts, cfg=setting_config(cfg, setting),
                                                             seed=cls_seed, shards=shards))
    config = {
        "store": real.url, "store_content_hash": real.metadata.get("content_hash"), "corpus": corpus_name(real.metadata),
        "methods": names, "n": str(n), "min_mi": min_mi, "mode": mode, "eval": evaluation, "seed": int(seed),
        "lambda_mi": lambda_mi, "classifier": dataclasses.asdict(cfg), "generator_options": gen_opts,
        "generate_options": dict(generate_options or {}),
        "baseline_options": baseline_options or {},
        **({"normalise": normalise} if normalise != "global" else {}),
        **({"select": select, "inner_folds": INNER_FOLDS, "baseline_grid": {k: list(v) for k, v in BASELINE_GRID.items()}}
           if select != "none" else {}),
    }
    table = _write_outputs(out, names, per_method, real.labels, config, extras=extras, storage_options=storage_options)
    log.info("train compare: %d methods x %d folds in %.1f s", len(names), len(folds), time.perf_counter() - t0)
    return CompareResult(out_path(out, "compare.json"), table, markdown_table(table, names))


def _select_fold(real: RealData, fold: Fold, names: Sequence[str], select: str, *, extras: dict[str, dict[str, Any]],
                 **kw) -> dict[str, dict[str, Any]]:
    """Per method, the setting used on ``fold`` (``--select inner``), and ``auto``'s choice; recorded in ``extras``."""
    if select == "none" and "auto" not in names:
        return {}
    from mirage.train.select import choose_auto, inner_folds, select_setting

    t0 = time.perf_counter()
    inner = inner_folds(real, fold.train)
    settings: dict[str, dict[str, Any]] = {}
    if select == "inner":
        for method in [m for m in names if m in BASELINES]:
            setting, score = select_setting(real, fold, method, folds=inner, **kw)
            settings[method] = setting
            row = extras.setdefault(method, {"selected": {}, "inner_uar": {}})
            row["selected"][fold.name], row["inner_uar"][fold.name] = setting, score
    if "auto" in names:
        pool = [m for m in names if m in BASELINES] or list(BASELINES)
        candidates = {"none": {}}
        for method in pool:
            if select == "inner" and method not in settings:
                settings[method] = select_setting(real, fold, method, folds=inner, **kw)[0]
            candidates[method] = settings.get(method, {})
        chosen, scores = choose_auto(real, fold, candidates, folds=inner, **kw) if inner else ("none", {})
        row = extras.setdefault("auto", {"chosen": {}, "chosen_setting": {}, "inner_uar": {}, "candidates": ["none", *pool]})
        row["chosen"][fold.name], row["chosen_setting"][fold.name], row["inner_uar"][fold.name] = \
            chosen, candidates.get(chosen, {}), scores
        settings["auto"] = candidates.get(chosen, {})
    log.info("fold %s: inner selection in %.1f s", fold.name, time.perf_counter() - t0)
    return settings


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
