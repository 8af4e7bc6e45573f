"""``train cross --methods ...``: the augmentation methods of ``train compare`` across corpora.

Every method makes its synthetic rows from the *training* corpora only — the test corpus is
never seen, not by a baseline and not by a generator:

* ``none`` — the real-only classifier (the run's headline ``uar``);
* row-level baselines of :data:`train.methods.REGISTRY` (``smote``, ``mixup``, ``noise``,
  ``calibrate``) — rows made from the standardised training rows of every training corpus;
* ``cgan`` / ``infogan`` — one generator fitted on a store of the training rows (written to
  ``OUT/work/train.zarr``: the common labels, speakers prefixed by their corpus, the features
  after ``--normalise corpus`` if given), its shards standardised like the real rows.

There is one test corpus and no folds, so each method's Δ vs ``none`` is paired over the test
corpus's *speakers*: per-speaker UARs, a Wilcoxon signed-rank p and a seeded bootstrap 95% CI
of the mean Δ (:func:`train.stats.paired_vs_none`), speakers won/lost. ``mtl-aug`` and
``auto`` are not offered here (they need views / inner folds of one corpus).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError
from mirage.train.classifier import ClassifierConfig
from mirage.train.seeds import derive_seed

log = logging.getLogger(__name__)

#: compare's methods that make sense with no folds of one corpus
CROSS_METHODS = ("none", "smote", "mixup", "noise", "calibrate", "cgan", "infogan")
GENERATORS = ("cgan", "infogan")


def parse_cross_methods(methods: str | Sequence[str]) -> list[str]:
    names = [m.strip().lower() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    bad = [m for m in names if m not in CROSS_METHODS]
    if bad or not names:
        raise ConfigError(f"--methods: expected a comma-separated subset of {','.join(CROSS_METHODS)} in train cross, "
                          f"got {methods!r}")
    return list(dict.fromkeys(["none", *names]))


def run_methods(data, names: Sequence[str], out: str, *, cfg: ClassifierConfig, seed: int, n: str | int,
                min_mi: float | None, generator_options: dict[str, Any], storage_options: dict[str, Any] | None,
                none: tuple[dict[str, Any], dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Each method's summary and its speaker-paired statistics against ``none``."""
    from mirage.augment.counts import parse_count
    from mirage.train.cross import evaluate_cross
    from mirage.train.stats import paired_vs_none

    n_syn = parse_count(n, len(data.y_train))
    none_summary, none_spk = none
    table: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == "none":
            s, spk, n_made = none_summary, none_spk, 0
        else:
            x_syn, y_syn = synthetic_rows(data, name, n_syn, out, seed=seed, min_mi=min_mi,
                                          generator_options=generator_options, storage_options=storage_options)
            s, _, spk = evaluate_cross(data, cfg, seed=seed, x_syn=x_syn, y_syn=y_syn)
            n_made = len(y_syn)
        row = {"uar": s["uar"], "wa": s["wa"], "macro_f1": s["macro_f1"], "n_train_synthetic": int(n_made),
               "speaker_uar": spk}
        stats = paired_vs_none(spk, none_spk, seed=seed, is_none=name == "none")
        for k in ("won", "lost", "tied"):  # paired over test speakers, not folds
            stats[f"speakers_{k}"] = stats.pop(f"folds_{k}")
        row.update(stats)
        row["delta_uar_vs_none"] = s["uar"] - none_summary["uar"]
        table[name] = row
        log.info("train cross %s: UAR %.3f (%d synthetic rows)", name, s["uar"], n_made)
    return table


def synthetic_rows(data, name: str, n_syn: int, out: str, *, seed: int, min_mi: float | None,
                   generator_options: dict[str, Any], storage_options) -> tuple[np.ndarray, np.ndarray]:
    """(standardised synthetic rows, their class indices) of one method, from the training corpora only."""
    if name in GENERATORS:
        return _generated_rows(data, name, n_syn, out, seed=seed, min_mi=min_mi,
                               generator_options=generator_options, storage_options=storage_options)
    from mirage.train.methods import get

    method = get(name)
    x = data.scaler.transform(data.x_train)
    return method.rows(x, data.y_train, n_syn, n_classes=len(data.common), seed=derive_seed(seed, name, "cross"))


def training_store(data, url: str, storage_options) -> list[str]:
    """The training corpora's rows as one feature store, for the generators to fit on; returns its utt_ids."""
    from mirage.featstore.store import write_store

    speakers, utts = [], []
    for i, (p, ok, _) in enumerate(data.train_used):
        items = p.items[ok]
        prefix = f"{i}:{p.corpus or 'store'}/"
        speakers += [prefix + str(s) for s in items["speaker"].astype(str)]
        utts += [prefix + str(u) for u in items["utt_id"].astype(str)]
    table = pd.DataFrame({"utt_id": utts, "path": "", "speaker": speakers,
                          "label": [data.common[k] for k in data.y_train], "split": "train",
                          "duration_s": np.nan, "text": ""})
    meta = {"kind": "features", "corpus": "+".join(p.corpus or "store" for p in data.parts),
            "extractors": {"audio": {"extractor": str(data.parts[0].extractor), "dim": int(data.x_train.shape[1])}},
            "cross_training_rows": {"train": data.urls, "labels": data.common}}
    write_store(url, items=table, arrays={"audio": np.ascontiguousarray(data.x_train, dtype=np.float32)},
                metadata=meta, storage_options=storage_options, overwrite=True).close()
    return utts


def _generated_rows(data, name: str, n_syn: int, out: str, *, seed: int, min_mi: float | None,
                    generator_options: dict[str, Any], storage_options) -> tuple[np.ndarray, np.ndarray]:
    from mirage.train.compare import generate_for_fold
    from mirage.train.synthetic import load_synthetic, read_manifests

    store = os.path.join(out, "work", "train.zarr")
    utts = training_store(data, store, storage_options)  # same rows, same bytes on a rerun
    info = generate_for_fold(store, os.path.join(out, "generators", name), mode="ser", exclude_speakers=(),
                             include_utt_ids=utts, lambda_mi=generator_options.get("lambda_mi") if name == "infogan" else 0.0,
                             n_items=n_syn, min_mi=float(min_mi or 0.0) if name == "infogan" else 0.0,
                             seed=derive_seed(seed, "generator", name, "cross"), storage_options=storage_options,
                             generator_options={k: v for k, v in generator_options.items() if k != "lambda_mi"})
    _, kept = read_manifests([info["manifest"]], storage_options=storage_options, allow_incomplete=True)
    synth = load_synthetic(kept, data.common, mode="ser", audio_dim=data.x_train.shape[1],
                           storage_options=storage_options)
    return data.scaler.transform(synth.h), synth.y
