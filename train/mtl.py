"""``train fit --method mtl-aug``: the MTL-AUG multitask network on cached embeddings.

A light torch network on the (fold-standardised) audio embedding h:

* a shared trunk ``Linear(D, H) - ReLU - Dropout - Linear(H, H) - ReLU``;
* an emotion head (K classes) — cross-entropy on *labelled* rows only;
* an augmentation-type head (one class per ``aug_type`` in the store: clean, noise, speed,
  pitch, reverb) — cross-entropy on every training row, labelled or not (no meta labels needed:
  the targets come from the views themselves);
* a decoder ``Linear(H, H) - ReLU - Linear(H, D)`` that reconstructs the standardised embedding
  of the *clean* view of the same ``source_utt_id`` from any view (mean squared error; rows whose
  source has no clean view in the store are left out of it) — also on every row.

Loss = ``w_emotion`` · CE_emotion + ``w_aug`` · CE_aug + ``w_recon`` · MSE_recon, trained with
seeded mini-batch AdamW (same seed, same weights). Setting ``w_aug`` or ``w_recon`` to 0 ablates
that task (``ablations=True`` runs the full model, each auxiliary task removed, and the
single-task network, under the same folds and seeds, into ``ablations.json`` + a bar PNG).
On a store without views, the augmentation head has one class and is skipped, and the decoder
reconstructs the row itself (an autoencoder regulariser).

Folds are those of ``train fit`` (:func:`train.folds.make_folds`): every view of the training
speakers trains (unlabelled rows too), the clean labelled rows of the test speakers test;
``test_views`` works as in ``train fit`` (see :mod:`train.noisy`). Results go through
:func:`train.experiment.summarize` / :func:`~train.experiment.write_metrics`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mirage.featstore.errors import ConfigError, TrainingDivergedError
from mirage.featstore.standardize import Standardizer
from mirage.train.classifier import seeded
from mirage.train.experiment import FoldResult, round_floats, summarize, write_metrics, locked_run
from mirage.train.fit import FitResult
from mirage.train.folds import Fold, corpus_name, make_folds
from mirage.train.metrics import confusion, plot_bars
from mirage.train.outputs import out_path, write_json
from mirage.train.seeds import derive_seed
from mirage.featstore.threads import fixed_threads

log = logging.getLogger(__name__)

METHOD = "mtl-aug"
METHODS = ("linear-probe", METHOD)
ABLATIONS_NAME = "ablations.json"
ABLATIONS_PLOT = "ablations.png"


@dataclass(frozen=True)
class MtlConfig:
    hidden: int = 256            # trunk width
    dropout: float = 0.2         # trunk dropout
    lr: float = 1e-3             # AdamW learning rate
    weight_decay: float = 1e-4   # AdamW weight decay
    epochs: int = 60             # passes over the fold's training rows
    batch_size: int = 128        # rows per step
    w_emotion: float = 1.0       # weight of the emotion cross-entropy (labelled rows)
    w_aug: float = 0.3           # weight of the augmentation-type cross-entropy (0: ablated)
    w_recon: float = 0.3         # weight of the clean-embedding reconstruction MSE (0: ablated)
    num_threads: int = 1         # torch threads during fit/predict (fixed for reproducibility)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "MtlConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ConfigError(f"--mtl-option: expected settings among {sorted(names)}, got {unknown}")
        try:
            cfg = cls(**{k: type(getattr(cls, k))(v) for k, v in kwargs.items() if v is not None})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--mtl-option: expected numbers, got {kwargs} ({exc})") from None
        bad = [f"{k}={getattr(cfg, k)}" for k, ok in (
            ("hidden", cfg.hidden >= 1), ("dropout", 0 <= cfg.dropout < 1), ("lr", cfg.lr > 0),
            ("weight_decay", cfg.weight_decay >= 0), ("epochs", cfg.epochs >= 1), ("batch_size", cfg.batch_size >= 1),
            ("w_emotion", cfg.w_emotion > 0), ("w_aug", cfg.w_aug >= 0), ("w_recon", cfg.w_recon >= 0),
            ("num_threads", cfg.num_threads >= 1)) if not ok]
        if bad:
            raise ConfigError(f"--mtl-option: expected hidden, epochs, batch_size, num_threads >= 1, 0 <= dropout < 1, "
                              f"lr > 0, w_emotion > 0 and weight_decay, w_aug, w_recon >= 0, got {', '.join(bad)}")
        return cfg


def check_method(method: str | None) -> str:
    m = (method or METHODS[0]).lower()
    if m not in METHODS:
        raise ConfigError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    return m


@dataclass
class MtlData:
    items: pd.DataFrame        # every usable row (labelled or not) in row order
    labels: list[str]
    y: np.ndarray              # class index, -1 = unlabelled
    aug_types: list[str]
    a: np.ndarray              # aug-type index
    clean: np.ndarray          # position of the clean view of the same source (-1: none)
    h: np.ndarray              # (N, D) audio embeddings
    metadata: dict[str, Any]
    url: str

    def features(self, idx: np.ndarray) -> np.ndarray:
        return self.h[idx]


def load_mtl_data(store, *, storage_options: dict[str, Any] | None = None) -> MtlData:
    """The store's rows in memory; a store opened here (from a URL) is closed again."""
    from mirage.featstore.store import opened

    with opened(store, storage_options) as fs:
        return _mtl_data(fs)


def _mtl_data(fs) -> MtlData:
    from mirage.featstore.items import labelled_mask

    if not fs.has("audio"):
        raise ConfigError(f"{fs.url}: expected an audio feature array, got arrays {fs.array_names}; extract audio features first")
    items = fs.items.sort_values("row", kind="stable").reset_index(drop=True)
    if "label" not in items.columns or items.empty:
        raise ConfigError(f"{fs.url}: expected items with a label column, got {len(items)} items and columns {list(items.columns)}")
    lab = labelled_mask(items["label"])
    labels = sorted(items.loc[lab, "label"].astype(str).unique().tolist())
    if len(labels) < 2:
        raise ConfigError(f"{fs.url}: expected at least 2 emotion labels among the labelled items, got {labels}")
    index = {l: i for i, l in enumerate(labels)}
    y = np.full(len(items), -1, dtype=np.int64)
    y[lab] = items.loc[lab, "label"].astype(str).map(index).to_numpy(np.int64)
    aug = items["aug_type"].astype(str) if "aug_type" in items.columns else pd.Series("clean", index=items.index)
    aug_types = sorted(set(aug))
    a = aug.map({t: i for i, t in enumerate(aug_types)}).to_numpy(np.int64)
    if "source_utt_id" in items.columns:
        src = items["source_utt_id"].astype(str)
        clean_pos = pd.Series(np.flatnonzero((aug == "clean").to_numpy()),
                              index=src[(aug == "clean").to_numpy()].to_numpy())
        found = clean_pos.reindex(src.to_numpy()).to_numpy()
        clean = np.where(np.isnan(found), -1, np.nan_to_num(found, nan=-1)).astype(np.int64)
    else:
        clean = np.arange(len(items), dtype=np.int64)  # no views: reconstruct the row itself
    h = np.ascontiguousarray(fs.read("audio", items["row"].to_numpy()), dtype=np.float32)
    h = h.reshape(len(h), -1)
    return MtlData(items, labels, y, aug_types, a, clean, h, dict(fs.metadata), fs.url)


def _net(in_dim: int, n_classes: int, n_aug: int, cfg: MtlConfig):
    import torch
    from torch import nn

    class MtlNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout),
                                       nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU())
            self.emotion = nn.Linear(cfg.hidden, n_classes)
            self.aug = nn.Linear(cfg.hidden, max(1, n_aug))
            self.decoder = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, in_dim))

        def forward(self, x: torch.Tensor):
            z = self.trunk(x)
            return self.emotion(z), self.aug(z), self.decoder(z)

    return MtlNet()


def fit_mtl_fold(x: np.ndarray, y: np.ndarray, a: np.ndarray, target: np.ndarray, has_target: np.ndarray, *,
                 n_classes: int, n_aug: int, cfg: MtlConfig, seed: int):
    """Train one fold's network on standardised rows; returns (model, final epoch's mean losses)."""
    import torch
    from torch.nn import functional as F

    with seeded(seed, cfg.num_threads):
        model = _net(x.shape[1], n_classes, n_aug, cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        xt, yt, at = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(a)
        tt, mt = torch.from_numpy(target), torch.from_numpy(has_target)
        gen = torch.Generator().manual_seed(int(seed))
        use_aug = cfg.w_aug > 0 and n_aug > 1
        use_rec = cfg.w_recon > 0 and bool(has_target.any())
        n = len(x)
        losses: dict[str, float] = {}
        model.train()
        for epoch in range(cfg.epochs):
            perm = torch.randperm(n, generator=gen)
            sums = {"emotion": 0.0, "aug": 0.0, "recon": 0.0}
            for i in range(0, n, cfg.batch_size):
                b = perm[i: i + cfg.batch_size]
                emo, aug, rec = model(xt[b])
                lab = yt[b] >= 0
                zero = emo.sum() * 0.0
                le = F.cross_entropy(emo[lab], yt[b][lab]) if bool(lab.any()) else zero
                la = F.cross_entropy(aug, at[b]) if use_aug else zero
                m = mt[b]
                lr_ = F.mse_loss(rec[m], tt[b][m]) if use_rec and bool(m.any()) else zero
                loss = cfg.w_emotion * le + cfg.w_aug * la + cfg.w_recon * lr_
                opt.zero_grad()
                loss.backward()
                opt.step()
                for k, v in (("emotion", le), ("aug", la), ("recon", lr_)):
                    sums[k] += float(v.detach()) * len(b)
            if not math.isfinite(sum(sums.values())):
                raise TrainingDivergedError(f"mtl-aug: expected finite losses, got {sums} in epoch {epoch}; "
                                            "check the features for NaN/inf or lower --mtl-option lr")
            losses = {k: v / n for k, v in sums.items()}
        model.eval()
    return model, losses


def predict_mtl(model, x: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
    import torch

    with fixed_threads(num_threads), torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(x, np.float32)))[0].argmax(dim=1).numpy()


def _evaluate(data: MtlData, folds: Sequence[Fold], cfg: MtlConfig, *, seed: int,
              per_view: dict[str, dict[str, np.ndarray]], progress: bool = False, attacks: Sequence = ()) -> list[FoldResult]:
    from tqdm.auto import tqdm

    return [evaluate_fold(data, fold, cfg, seed=seed, per_view=per_view.get(fold.name, {}), attacks=attacks)
            for fold in tqdm(folds, desc="train fit mtl-aug: folds", disable=not progress)]


def evaluate_fold(data: MtlData, fold: Fold, cfg: MtlConfig, *, seed: int, per_view: dict[str, np.ndarray] | None = None,
                  attacks: Sequence = (), synthetic: tuple[np.ndarray, np.ndarray] | None = None,
                  method: str = METHOD) -> FoldResult:
    """One fold's network (seeded by (seed, ``method``, fold) only), tested on the fold's test rows
    (and on ``per_view``'s positions); ``train compare --methods mtl-aug`` calls it per fold too.

    ``synthetic`` = (ĥ in the store's space, class indices): generated rows join the training
    rows as one more augmentation type, ``generated`` — the aug-type head learns to tell them
    from real views, the emotion head trains on their labels, and they have no clean view to
    reconstruct (``mtl-aug+infogan``)."""
    k, n_aug = len(data.labels), len(data.aug_types)
    tr = fold.train
    scaler = Standardizer.fit(data.h[tr])
    xs = scaler.transform(data.h)
    in_train = np.zeros(len(xs), dtype=bool)
    in_train[tr] = True
    c = data.clean[tr]
    has = (c >= 0) & in_train[np.maximum(c, 0)]
    target = np.where(has[:, None], xs[np.maximum(c, 0)], 0.0).astype(np.float32)
    if not (data.y[tr] >= 0).any():
        raise ConfigError(f"fold {fold.name}: expected labelled training rows, got none")
    x_fit, y_fit, a_fit = xs[tr], data.y[tr], data.a[tr]
    n_syn = 0
    if synthetic is not None and len(synthetic[1]):
        h_syn, y_syn = synthetic
        n_syn = len(y_syn)
        x_fit = np.concatenate([x_fit, scaler.transform(np.asarray(h_syn, np.float32))])
        y_fit = np.concatenate([y_fit, np.asarray(y_syn, np.int64)])
        a_fit = np.concatenate([a_fit, np.full(n_syn, n_aug, np.int64)])  # one more aug type: "generated"
        target = np.concatenate([target, np.zeros((n_syn, target.shape[1]), np.float32)])
        has = np.concatenate([has, np.zeros(n_syn, bool)])
        n_aug += 1
    model, losses = fit_mtl_fold(np.ascontiguousarray(x_fit, dtype=np.float32), y_fit, a_fit, target, has,
                                 n_classes=k, n_aug=n_aug, cfg=cfg, seed=derive_seed(seed, method, fold.name))
    pred = predict_mtl(model, xs[fold.test], num_threads=cfg.num_threads)
    n_lab = int((data.y[tr] >= 0).sum())
    combos = {"labelled": n_lab, "unlabelled": int(len(tr) - n_lab),
              **{f"aug={t}": int((data.a[tr] == i).sum()) for i, t in enumerate(data.aug_types)}}
    if n_syn:
        combos["aug=generated"] = n_syn
    res = FoldResult(fold.name, fold.test_speakers, confusion(data.y[fold.test], pred, k), len(tr), n_syn, combos, [])
    for view, pos in (per_view or {}).items():
        res.by_view[view] = confusion(data.y[pos], predict_mtl(model, xs[pos], num_threads=cfg.num_threads), k)
    if attacks:
        from mirage.train.attack import attack_confusions

        res.by_attack = attack_confusions(lambda x: model(x)[0], lambda x: predict_mtl(model, x, num_threads=cfg.num_threads),
                                          xs[fold.test], data.y[fold.test], attacks, k, num_threads=cfg.num_threads)
    log.info("fold %s: mtl-aug UAR %.3f (%d labelled + %d unlabelled training rows; final losses %s)", fold.name,
             res.uar, n_lab, len(tr) - n_lab, {kk: round(v, 4) for kk, v in losses.items()})
    return res


def ablation_variants(cfg: MtlConfig) -> dict[str, MtlConfig]:
    r = dataclasses.replace
    return {"mtl-aug": cfg, "no-aug-task": r(cfg, w_aug=0.0), "no-recon-task": r(cfg, w_recon=0.0),
            "single-task": r(cfg, w_aug=0.0, w_recon=0.0)}


@locked_run
def fit_mtl(store: str, out: str, *, evaluation: str = "loso", seed: int = 0, options: dict[str, Any] | None = None,
            test_views: str | Sequence[str] | None = None, train_views: str | Sequence[str] | None = None,
            ablations: bool = False, storage_options: dict[str, Any] | None = None, progress: bool = False,
            attack: str | Sequence[str] | None = None) -> FitResult:
    """Evaluate MTL-AUG under ``train fit``'s folds; writes ``out/metrics.json`` (+ confusion PNG,
    ``uar_by_view`` with ``test_views``, ``ablations.json`` + PNG with ``ablations``)."""
    from mirage.featstore.store.location import check_out_dir
    from mirage.train.noisy import add_view_summary, check_view_options, restrict_train, view_tests, write_view_plot

    check_out_dir(str(out))
    cfg = MtlConfig.from_kwargs(**(options or {}))
    check_view_options(test_views, "global", "memory")
    from mirage.train.attack import add_attack_summary, parse_attacks

    attacks = parse_attacks(attack)
    t0 = time.perf_counter()
    data = load_mtl_data(store, storage_options=storage_options)
    folds = restrict_train(data.items, make_folds(data.items, data.metadata, evaluation), train_views, store=data.url)
    view_specs, per_view = view_tests(data.items, folds, test_views, store=data.url) if test_views else ([], {})
    n_unl = int((data.y < 0).sum())
    base_config = {
        "store": data.url, "store_content_hash": data.metadata.get("content_hash"), "corpus": corpus_name(data.metadata),
        "method": METHOD, "mode": "ser", "eval": evaluation, "seed": int(seed), "aug_types": data.aug_types,
        "n_unlabelled": n_unl, "synthetic": [], "min_mi": None, "loader": "memory",
        **({"test_views": view_specs} if view_specs else {}),
        **({"attack": [a.spec for a in attacks]} if attacks else {}),
        **({"train_views": train_views if isinstance(train_views, str) else ",".join(train_views)} if train_views else {}),
    }
    variants = ablation_variants(cfg) if ablations else {"mtl-aug": cfg}
    table = {}
    main_metrics = None
    for name, vcfg in variants.items():
        results = _evaluate(data, folds, vcfg, seed=seed, per_view=per_view, progress=progress, attacks=attacks)
        metrics = summarize(results, data.labels, {**base_config, "mtl": dataclasses.asdict(vcfg), "variant": name})
        if view_specs:
            metrics = add_view_summary(metrics, results, view_specs)
        if attacks:
            metrics = add_attack_summary(metrics, results, attacks)
        if main_metrics is None:
            main_metrics = metrics
        table[name] = {"uar_mean": metrics["uar_mean"], "uar_std": metrics["uar_std"], "uar_pooled": metrics["uar_pooled"],
                       "fold_uars": [f["uar"] for f in metrics["folds"]], "w_aug": vcfg.w_aug, "w_recon": vcfg.w_recon,
                       **({"uar_by_view": metrics["uar_by_view"]} if view_specs else {}),
                       **({"uar_under_attack": metrics["uar_under_attack"]} if attacks else {})}
    path = write_metrics(out, main_metrics, title=f"mtl-aug: UAR {main_metrics['uar_mean']:.3f} ± "
                                                  f"{main_metrics['uar_std']:.3f} ({main_metrics['n_folds']} folds)",
                         storage_options=storage_options)
    if view_specs:
        write_view_plot(out, main_metrics, storage_options)
    if ablations:
        _write_ablations(out, table, main_metrics, storage_options)
    log.info("train fit --method mtl-aug: %d folds in %.1f s", len(folds), time.perf_counter() - t0)
    return FitResult(path, main_metrics)


def _write_ablations(out: str, table: dict[str, dict], metrics: dict[str, Any],
                     storage_options: dict[str, Any] | None = None) -> None:
    doc = round_floats({"variants": table, "labels": metrics["labels"], "chance_uar": metrics["chance_uar"],
                        "n_folds": metrics["n_folds"], "eval": metrics["config"]["eval"], "seed": metrics["config"]["seed"]})
    write_json(out_path(out, ABLATIONS_NAME), doc, storage_options)
    names = list(table)
    plot_bars(names, [table[n]["uar_mean"] for n in names], [table[n]["uar_std"] for n in names],
              out_path(out, ABLATIONS_PLOT), chance=metrics["chance_uar"], storage_options=storage_options,
              points=[table[n]["uar_pooled"] for n in names], points_label="pooled UAR")
