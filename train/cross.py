"""``train cross``: train on one or more corpora, test on another (cross-corpus / cross-language SER).

Labels are mapped to a common set: each store label goes through ``--label-map`` (a JSON object
``{store_label: common_label}``; a null or empty value drops that label) or else through its
canonical name (:func:`featstore.corpora.csv_table.canonical_label`: ``anger`` -> ``angry`` ...);
the common set is the labels every training store and the test store share after mapping, and
items of other labels are left out (listed in ``metrics.json`` under ``dropped``). Features are
standardised on the training corpora only (``--normalise global``, the default; ``corpus``
z-scores each corpus with its own statistics — the test corpus's from its unlabelled features, a
transductive step; ``none``: raw), the linear classifier of :mod:`train.classifier` is trained on
every training row (all views of stores with augmented views; unlabelled rows are left out) and
tested on the test store's clean labelled rows.

``R/metrics.json``: ``uar`` (the headline), ``wa``, ``macro_f1``, ``uar_speaker_mean`` (mean of the
per-test-speaker UARs), ``confusion``, ``labels`` (the common label set, the confusion's order),
``chance_uar``, ``n_train``, ``n_test``, ``train``/``test`` (per store: path, corpus, rows used,
label counts), ``dropped`` and ``config``; plus ``R/confusion.png``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError
from mirage.featstore.standardize import Standardizer
from mirage.train.classifier import ClassifierConfig, fit_in_memory, predict
from mirage.train.experiment import CONFUSION_NAME, METRICS_NAME, locked_run
from mirage.train.metrics import confusion, plot_confusion, summary
from mirage.train.outputs import out_path, write_json
from mirage.train.seeds import derive_seed

log = logging.getLogger(__name__)

NORMALISATIONS = ("global", "corpus", "none")


@dataclass
class CrossResult:
    metrics_path: str
    metrics: dict[str, Any]

    @property
    def message(self) -> str:
        m = self.metrics
        return (f"cross-corpus UAR {m['uar']:.3f} on {m['test']['corpus'] or m['test']['store']} "
                f"({m['n_test']} items, labels {','.join(m['labels'])}; WA {m['wa']:.3f}, chance {m['chance_uar']:.3f}) "
                f"-> {self.metrics_path}")


def load_label_map(label_map: str | dict | None) -> dict[str, str | None]:
    """``--label-map``: a JSON file (or a dict) {store_label: common_label or null}."""
    if label_map is None:
        return {}
    if isinstance(label_map, dict):
        data = label_map
    else:
        try:
            with open(label_map, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"--label-map: expected a JSON file, got no such file {label_map}") from None
        except ValueError as exc:
            raise ConfigError(f"--label-map: expected a JSON object {{store_label: common_label}}, got unreadable "
                              f"JSON in {label_map} ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, (str, type(None))) for v in data.values()):
        raise ConfigError(f"--label-map: expected a JSON object {{store_label: common_label or null}}, got {data!r}"[:300])
    return {str(k).strip().lower(): (v.strip().lower() if isinstance(v, str) and v.strip() else None) for k, v in data.items()}


def map_labels(labels: pd.Series, mapping: dict[str, str | None]) -> pd.Series:
    from mirage.featstore.corpora.csv_table import canonical_label

    def one(lab: str) -> str | None:
        key = str(lab).strip().lower()
        if key in mapping:
            return mapping[key]
        return canonical_label(key)

    return labels.astype(str).map(one)


@dataclass
class _Part:
    url: str
    corpus: str
    items: pd.DataFrame   # used rows, with a ``common`` column (mapped label or None)
    h: np.ndarray
    extractor: Any


def _load(url: str, mapping, *, test: bool, storage_options) -> _Part:
    from mirage.featstore.items import labelled_mask
    from mirage.featstore.store import open_store
    from mirage.featstore.views import clean_mask
    from mirage.train.folds import corpus_name

    with open_store(url, storage_options=storage_options) as fs:
        if fs.metadata.get("kind", "features") != "features":
            raise ConfigError(f"{url}: expected a feature store, got a {fs.metadata.get('kind')} folder")
        if not fs.has("audio"):
            raise ConfigError(f"{url}: expected an audio feature array, got arrays {fs.array_names}")
        items = fs.items.sort_values("row", kind="stable").reset_index(drop=True)
        if "label" not in items.columns:
            raise ConfigError(f"{url}: expected items with a label column, got columns {list(items.columns)}")
        keep = labelled_mask(items["label"]) & (clean_mask(items) if test else True)
        items = items[keep].reset_index(drop=True)
        if items.empty:
            raise ConfigError(f"{url}: expected labelled items, got none")
        items["common"] = map_labels(items["label"], mapping)
        h = np.ascontiguousarray(fs.read("audio", items["row"].to_numpy()), dtype=np.float32).reshape(len(items), -1)
        ex = (fs.metadata.get("extractors") or {}).get("audio") or {}
        return _Part(fs.url, corpus_name(fs.metadata), items, h, ex.get("model") or ex.get("extractor"))


def _split_list(value: str | Sequence[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    out = [p.strip() for p in parts if p.strip()]
    if not out:
        raise ConfigError(f"--train: expected one or more feature stores (A[,B...]), got {value!r}")
    return out


@dataclass
class CrossData:
    """The training and test rows of a cross-corpus run, mapped to the common labels."""

    urls: list[str]
    parts: list[_Part]
    tpart: _Part
    train_used: list[tuple[_Part, np.ndarray, np.ndarray]]
    tok: np.ndarray
    common: list[str]
    dropped: dict[str, dict[str, int]]
    x_train: np.ndarray      # after --normalise corpus (if given), before the global standardiser
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    scaler: Standardizer     # fitted on the training corpora only
    test_speakers: np.ndarray


def prepare_cross(train: str | Sequence[str], test: str, *, mapping: dict, normalise: str,
                  storage_options: dict[str, Any] | None) -> CrossData:
    """Load, map and standardise the stores of a cross-corpus run (one-line errors for bad inputs)."""
    if normalise not in NORMALISATIONS:
        raise ConfigError(f"--normalise: expected one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
    urls = _split_list(train)
    if test in urls:
        raise ConfigError(f"--test: expected a store that is not also a training store, got {test} in --train")
    parts = [_load(u, mapping, test=False, storage_options=storage_options) for u in urls]
    tpart = _load(test, mapping, test=True, storage_options=storage_options)
    dims = {p.url: p.h.shape[1] for p in [*parts, tpart]}
    if len(set(dims.values())) > 1:
        raise ConfigError(f"expected stores of one feature space (same audio extractor), got audio widths {dims}; "
                          "extract every corpus with the same --audio-model")
    extractors = sorted({str(p.extractor) for p in [*parts, tpart]})
    if len(extractors) > 1:
        raise ConfigError(f"expected stores of one feature space, got audio extractors {extractors}; "
                          "extract every corpus with the same --audio-model")
    sets = [set(p.items["common"].dropna()) for p in [*parts, tpart]]
    common = sorted(set.intersection(*sets))
    if len(common) < 2:
        have = "; ".join(f"{p.url}: {','.join(sorted(s))}" for p, s in zip([*parts, tpart], sets))
        raise ConfigError(f"expected at least 2 emotion labels common to the training and test stores, got "
                          f"{common or 'none'} ({have}); pass --label-map FILE (JSON {{store_label: common_label}})")
    index = {lab: i for i, lab in enumerate(common)}
    dropped: dict[str, dict[str, int]] = {}
    used: list[tuple[_Part, np.ndarray, np.ndarray]] = []
    for p in [*parts, tpart]:
        ok = p.items["common"].isin(common).to_numpy()
        gone = p.items.loc[~ok, "label"].astype(str).value_counts().sort_index()
        if len(gone):
            dropped[p.url] = {str(k): int(v) for k, v in gone.items()}
        used.append((p, ok, p.items.loc[ok, "common"].map(index).to_numpy(np.int64)))
    train_used, (tp, tok, y_test) = used[:-1], used[-1]
    x_parts = [p.h[ok] for p, ok, _ in train_used]
    y_train = np.concatenate([y for _, _, y in train_used])
    x_test = tp.h[tok]
    if normalise == "corpus":
        x_parts = [Standardizer.fit(x).transform(x) for x in x_parts]
        x_test = Standardizer.fit(x_test).transform(x_test)
    x_train = np.concatenate(x_parts)
    if normalise == "none":
        scaler = Standardizer.identity(x_train.shape[1])
    else:
        scaler = Standardizer.fit(x_train)  # the training corpora only
    speakers = tp.items.loc[tok, "speaker"].astype(str).to_numpy() if "speaker" in tp.items else np.array([])
    return CrossData(urls, parts, tp, train_used, tok, common, dropped, x_train, y_train, x_test, y_test, scaler, speakers)


def evaluate_cross(data: CrossData, cfg: ClassifierConfig, *, seed: int, x_syn: np.ndarray | None = None,
                   y_syn: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray, dict[str, float]]:
    """Train on the training rows (+ standardised synthetic rows, weighted by ``cfg.synthetic_weight``) and test.

    Returns (summary metrics, confusion, per-test-speaker UAR)."""
    k = len(data.common)
    x = data.scaler.transform(data.x_train)
    y, w = data.y_train, None
    if x_syn is not None and len(x_syn):
        x = np.concatenate([x, np.asarray(x_syn, np.float32)])
        y = np.concatenate([y, np.asarray(y_syn, np.int64)])
        w = np.concatenate([np.ones(len(data.y_train), np.float32),
                            np.full(len(x_syn), cfg.synthetic_weight, np.float32)])
    model = fit_in_memory(x, y, w, n_classes=k, cfg=cfg, seed=derive_seed(seed, "cross"))
    pred = predict(model, data.scaler.transform(data.x_test), num_threads=cfg.num_threads)
    cm = confusion(data.y_test, pred, k)
    spk = {sp: summary(confusion(data.y_test[data.test_speakers == sp], pred[data.test_speakers == sp], k))["uar"]
           for sp in sorted(set(data.test_speakers))}
    return summary(cm), cm, spk


@locked_run(out_arg=2)  # cross(train, test, out): the lock belongs on out, never on the test store
def cross(train: str | Sequence[str], test: str, out: str, *, label_map: str | dict | None = None,
          classifier: str = "linear", seed: int = 0, normalise: str = "global",
          classifier_options: dict[str, Any] | None = None, methods: str | Sequence[str] | None = None,
          n: str | int = "4x", min_mi: float | None = None, generator_options: dict[str, Any] | None = None,
          storage_options: dict[str, Any] | None = None) -> CrossResult:
    """Train on ``train`` stores, test on ``test``; writes ``out/metrics.json`` and ``out/confusion.png``.

    ``methods`` (e.g. ``none,smote,calibrate,infogan``) also runs each augmentation method on the
    training corpora (generators fitted on them only) and adds ``methods`` to metrics.json
    (:mod:`train.cross_methods`); the headline ``uar`` stays the real-only classifier's."""
    from mirage.featstore.store.location import check_out_dir
    from mirage.train.experiment import round_floats

    check_out_dir(str(out))
    cfg = ClassifierConfig.from_kwargs(kind=classifier, **(classifier_options or {}))
    mapping = load_label_map(label_map)
    names = None
    if methods is not None:
        from mirage.train.cross_methods import parse_cross_methods

        names = parse_cross_methods(methods)
    data = prepare_cross(train, test, mapping=mapping, normalise=normalise, storage_options=storage_options)
    s, cm, spk = evaluate_cross(data, cfg, seed=seed)
    spk_uars = list(spk.values())
    common, tp, tok = data.common, data.tpart, data.tok

    def describe(p: _Part, ok: np.ndarray) -> dict[str, Any]:
        return {"store": p.url, "corpus": p.corpus, "n_items": int(ok.sum()),
                "labels": {str(a): int(b) for a, b in p.items.loc[ok, "common"].value_counts().sort_index().items()}}

    metrics = {
        "uar": s["uar"], "wa": s["wa"], "macro_f1": s["macro_f1"],
        "uar_speaker_mean": float(np.mean(spk_uars)) if spk_uars else None,
        "confusion": cm.tolist(), "labels": common, "chance_uar": 1.0 / len(common),
        "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
        "train": [describe(p, ok) for p, ok, _ in data.train_used], "test": describe(tp, tok), "dropped": data.dropped,
        "config": {"train": data.urls, "test": test, "label_map": mapping or None, "normalise": normalise, "seed": int(seed),
                   "classifier": cfg.to_json()},
    }
    if names is not None:
        from mirage.train.cross_methods import run_methods

        metrics["methods"] = run_methods(data, names, out, cfg=cfg, seed=seed, n=n, min_mi=min_mi,
                                         generator_options=generator_options or {}, storage_options=storage_options,
                                         none=(s, spk))
        metrics["config"].update({"methods": names, "n": str(n), "min_mi": min_mi})
    metrics = round_floats(metrics)
    path = write_json(out_path(out, METRICS_NAME), metrics, storage_options)
    plot_confusion(cm, common, out_path(out, CONFUSION_NAME), storage_options=storage_options,
                   title=f"train {','.join(p.corpus or '?' for p in data.parts)} -> test {tp.corpus or '?'}: UAR {s['uar']:.3f}")
    log.info("train cross: UAR %.3f (%d train rows, %d test rows, labels %s)", s["uar"], len(data.y_train),
             len(data.y_test), common)
    return CrossResult(path, metrics)
