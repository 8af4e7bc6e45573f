"""Views in evaluation: which views a fold trains on (``--train-views``) and the noisy-speech
test (``--test-views noise:snr=20,10,5,0``).

Features are cached, so a test view must be in the store (``featstore extract --views``).
Each fold's classifier — trained as the settings say — is also tested on the given views of the
fold's own test items (rows whose ``source_utt_id`` is one of the clean test items), and
``metrics.json`` gains ``uar_by_view`` (view spec -> fold-mean UAR, ``clean`` = the headline
``uar_mean``), ``uar_by_view_std`` and ``uar_by_view_pooled``; ``uar_by_view.png`` draws the curve.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError
from mirage.featstore.views import CLEAN, parse_views, require_views, source_column, view_column
from mirage.train.folds import Fold
from mirage.train.metrics import summary
from mirage.train.outputs import out_path, save_figure

log = logging.getLogger(__name__)

VIEWS_PLOT = "uar_by_view.png"


def restrict_train(items: pd.DataFrame, folds: Sequence[Fold], train_views: str | Sequence[str] | None, *,
                   store: str = "the store") -> list[Fold]:
    """Folds whose training rows keep only the given views (None or ``all``: every view)."""
    if train_views is None or (isinstance(train_views, str) and train_views.strip().lower() == "all"):
        return list(folds)
    specs = require_views(items, train_views, option="--train-views", store=store)
    keep = view_column(items).isin([v.spec for v in specs]).to_numpy()
    out = []
    for f in folds:
        train = f.train[keep[f.train]]
        if not len(train):
            raise ConfigError(f"--train-views: expected training rows in fold {f.name}, got none of views "
                              f"{','.join(v.spec for v in specs)}")
        out.append(dataclasses.replace(f, train=train))
    return out


def view_tests(items: pd.DataFrame, folds: Sequence[Fold], test_views: str | Sequence[str], *,
               store: str = "the store") -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """(view specs, per fold: view spec -> positions of those views of the fold's test items)."""
    specs = [v.spec for v in require_views(items, test_views, option="--test-views", store=store)]
    views = view_column(items).to_numpy()
    sources = source_column(items).to_numpy()
    out: dict[str, dict[str, np.ndarray]] = {}
    for f in folds:
        test_sources = set(sources[f.test].tolist())
        in_test = np.fromiter((s in test_sources for s in sources), dtype=bool, count=len(sources))
        out[f.name] = {v: np.flatnonzero(in_test & (views == v)) for v in specs}
    return specs, out


def add_view_summary(metrics: dict[str, Any], results: Sequence, specs: Sequence[str]) -> dict[str, Any]:
    """``uar_by_view`` (fold-mean), ``uar_by_view_std`` and ``uar_by_view_pooled`` (clean first)."""
    from mirage.train.experiment import round_floats

    mean, std, pooled = {}, {}, {}
    if CLEAN not in specs:
        mean[CLEAN], std[CLEAN], pooled[CLEAN] = metrics["uar_mean"], metrics["uar_std"], metrics["uar_pooled"]
    for v in specs:
        uars = [summary(r.by_view[v])["uar"] for r in results if v in r.by_view and r.by_view[v].sum()]
        mean[v] = float(np.mean(uars)) if uars else float("nan")
        std[v] = float(np.std(uars)) if uars else float("nan")
        cm = np.sum([r.by_view[v] for r in results if v in r.by_view], axis=0)
        pooled[v] = summary(cm)["uar"]
    return round_floats({**metrics, "uar_by_view": mean, "uar_by_view_std": std, "uar_by_view_pooled": pooled})


def _snr(spec: str) -> float | None:
    m = re.fullmatch(r"noise:snr=([-+0-9.eE]+)(:.*)?", spec)
    return float(m.group(1)) if m else None


def plot_views(metrics: dict[str, Any], path: str, *, title: str = "", storage_options: dict[str, Any] | None = None) -> str:
    """UAR per test view: a curve over SNR when every view is noise (clean drawn at the right as ∞), else points."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    mean, std = metrics["uar_by_view"], metrics.get("uar_by_view_std", {})
    names = list(mean)
    fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=100)
    snrs = {n: _snr(n) for n in names if n != CLEAN}
    if snrs and all(s is not None for s in snrs.values()):
        order = sorted(snrs, key=lambda n: snrs[n])
        xs = [snrs[n] for n in order]
        ys = [mean[n] for n in order]
        es = [std.get(n) or 0.0 for n in order]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label="noisy test")
        if CLEAN in mean:
            x_clean = max(xs) + max(5.0, (max(xs) - min(xs)) * 0.25)
            ax.errorbar([x_clean], [mean[CLEAN]], yerr=[std.get(CLEAN) or 0.0], marker="s", color="#f58518", capsize=3,
                        label="clean")
            ax.set_xticks([*xs, x_clean], [*(format(x, "g") for x in xs), "clean"])
        ax.set_xlabel("test SNR (dB)")
    else:
        ax.errorbar(range(len(names)), [mean[n] for n in names], yerr=[std.get(n) or 0.0 for n in names], marker="o",
                    linestyle="none", capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_xlabel("test view")
    if "chance_uar" in metrics:
        ax.axhline(metrics["chance_uar"], color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_ylabel("fold-mean UAR")
    ax.legend(loc="lower right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.subplots_adjust(left=0.14, bottom=0.22, right=0.97, top=0.9)
    return save_figure(fig, path, storage_options)


def write_view_plot(out_dir: str, metrics: dict[str, Any], storage_options: dict[str, Any] | None = None) -> str:
    return plot_views(metrics, out_path(out_dir, VIEWS_PLOT), title="UAR under test views", storage_options=storage_options)


def check_view_options(test_views, normalise: str, loader: str) -> None:
    if not test_views:
        return
    parse_views(test_views, option="--test-views")
    if normalise == "speaker":
        raise ConfigError("--test-views: expected --normalise global or none, got --normalise speaker (per-speaker "
                          "statistics would mix the test speaker's clean and noisy rows)")
    if loader == "stream":
        raise ConfigError("--test-views: expected --loader memory or auto, got --loader stream")
