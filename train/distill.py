"""Synthetic rows as their own loss term, and hard-but-correct selection of them, for one fold.

``synthetic_loss="weighted"`` (the default) is one weighted cross-entropy over real and
synthetic rows together (``synthetic_weight`` per synthetic row) — the fit every method had.

``synthetic_loss="distill"`` follows He et al. (ICLR 2023, "Is synthetic data from generative
models ready for image recognition?"): a real-only *teacher* is fitted on the fold's real
training rows first (the same fit, seed and settings as method ``none``), then the student
minimises, with real and synthetic rows as separate means (so the number of synthetic rows
does not scale the real term)::

    CE(real) + synthetic_weight * (w_d * T^2 * KL(p_teacher^T || p_student^T) + w_h * CE_hard)(synthetic)

``w_d = distill_weight`` (0.5), ``T = distill_temperature`` (2), ``w_h = synthetic_hard_weight``
(0.5); T^2 keeps the KL gradient's scale independent of T (Hinton et al. 2015).

Hard-but-correct selection (either loss): ``keep_margin=(lo, hi)`` keeps the synthetic rows
that the real-only classifier places right with a probability margin p(y) - max_{k!=y} p(k)
inside the band (a band such as 0.0,0.9 drops both mislabelled-looking and trivially easy
rows); ``keep_nn_quantile=q`` keeps the rows whose nearest real training row (Euclidean, in
the classifier's standardised space) is nearer than the q-quantile of the real rows'
nearest-other-real distances — samples off the real data's support are dropped. Only the
fold's training rows are used; its test speakers are never seen.

``synthetic_speakers="mix"`` gives each synthetic row a *novel speaker* before any of this: the
row moves by ``a * m_i + (1 - a) * m_j - m`` — ``m_i``, ``m_j`` the mean offsets of two distinct
training speakers (standardised space), ``m`` their average over speakers, ``a ~ U(0, 1)`` —
so rows generated around the pooled class modes spread over the range of speakers the fold
holds (generated rows showed almost no spread of their own: recall ~0 in ``augment inspect``).
Seeded by the classifier seed; only training speakers' statistics are used.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mirage.featstore.errors import ConfigError

log = logging.getLogger(__name__)

SYNTHETIC_LOSSES = ("weighted", "distill")
SYNTHETIC_SPEAKERS = ("none", "mix")
_CHUNK_ROWS = 2048  # synthetic rows per distance block: memory stays O(chunk x n_real)


def check_synthetic_options(cfg):
    """``cfg`` with ``keep_margin`` as a float pair; a ConfigError naming the flag otherwise."""
    if cfg.synthetic_speakers not in SYNTHETIC_SPEAKERS:
        raise ConfigError(f"--synthetic-speakers: expected one of {', '.join(SYNTHETIC_SPEAKERS)}, got {cfg.synthetic_speakers!r}")
    if cfg.synthetic_loss not in SYNTHETIC_LOSSES:
        raise ConfigError(f"--synthetic-loss: expected one of {', '.join(SYNTHETIC_LOSSES)}, got {cfg.synthetic_loss!r}")
    if not (math.isfinite(cfg.distill_temperature) and cfg.distill_temperature > 0):
        raise ConfigError(f"--distill-temperature: expected a number > 0, got {cfg.distill_temperature!r}")
    for name in ("distill_weight", "synthetic_hard_weight"):
        v = getattr(cfg, name)
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"--{name.replace('_', '-')}: expected a number >= 0, got {v!r}")
    band = cfg.keep_margin
    if band is not None:
        try:
            lo, hi = (float(v) for v in (band.split(",") if isinstance(band, str) else band))
        except (TypeError, ValueError):
            raise ConfigError(f"--keep-margin: expected LO,HI (two numbers), got {band!r}") from None
        if not -1.0 <= lo <= hi <= 1.0:
            raise ConfigError(f"--keep-margin: expected -1 <= LO <= HI <= 1 (a probability margin), got {band!r}")
        cfg = dataclasses.replace(cfg, keep_margin=(lo, hi))
    q = cfg.keep_nn_quantile
    if q is not None and not (isinstance(q, (int, float)) and 0.0 < float(q) <= 1.0):
        raise ConfigError(f"--keep-nn-quantile: expected a quantile in (0, 1], got {q!r}")
    return cfg


def uses_teacher(cfg) -> bool:
    return cfg.synthetic_loss == "distill" or cfg.keep_margin is not None


def separate_terms(cfg) -> bool:
    """True when a fit needs the real/synthetic split (anything but the plain weighted fit)."""
    return uses_teacher(cfg) or cfg.keep_nn_quantile is not None or cfg.synthetic_speakers != "none"


def mix_speakers(x_real: np.ndarray, speakers: np.ndarray, x_syn: np.ndarray, *, seed: int) -> np.ndarray:
    """``x_syn`` moved to novel speakers: + a convex mixture of two training speakers' mean offsets."""
    from mirage.train.seeds import derive_seed

    names = np.unique(speakers)
    if len(names) < 2 or not len(x_syn):
        return x_syn
    means = np.stack([x_real[speakers == s].mean(axis=0) for s in names]).astype(np.float64)
    offsets = means - means.mean(axis=0)
    rng = np.random.default_rng(derive_seed(seed, "synthetic-speakers"))
    i = rng.integers(0, len(names), size=len(x_syn))
    j = (i + rng.integers(1, len(names), size=len(x_syn))) % len(names)  # a different speaker
    a = rng.random(len(x_syn))[:, None]
    return (x_syn + a * offsets[i] + (1.0 - a) * offsets[j]).astype(np.float32)


def fit_fold(ts, *, n_classes: int, cfg, seed: int) -> tuple[nn.Module, int]:
    """The fold's classifier on a :class:`~train.dataset.TrainingSet`, and the synthetic rows it used."""
    from mirage.train.classifier import fit_in_memory, targets

    if not ts.n_syn or not separate_terms(cfg):
        x = np.concatenate([ts.x_real, ts.x_syn]) if ts.n_syn else ts.x_real
        y = np.concatenate([targets(ts.y_real, n_classes), targets(ts.y_syn, n_classes)]) if ts.n_syn else ts.y_real
        w = np.concatenate([np.ones(ts.n_real, np.float32), np.full(ts.n_syn, cfg.synthetic_weight, np.float32)])
        return fit_in_memory(x, y, w, n_classes=n_classes, cfg=cfg, seed=seed), ts.n_syn
    if cfg.synthetic_speakers == "mix":
        if ts.speakers_real is None:
            raise ConfigError("--synthetic-speakers mix: expected the real rows' speakers, got none (the store has no speaker column)")
        ts = dataclasses.replace(ts, x_syn=mix_speakers(ts.x_real, ts.speakers_real, ts.x_syn, seed=seed))
    teacher = fit_in_memory(ts.x_real, ts.y_real, None, n_classes=n_classes, cfg=cfg, seed=seed) if uses_teacher(cfg) else None
    keep = select_rows(ts.x_real, ts.x_syn, ts.y_syn, teacher=teacher, cfg=cfg, n_classes=n_classes)
    x_syn, y_syn = ts.x_syn[keep], np.asarray(ts.y_syn)[keep]
    log.info("synthetic rows: %d of %d kept (keep_margin %s, keep_nn_quantile %s)", len(x_syn), ts.n_syn,
             cfg.keep_margin, cfg.keep_nn_quantile)
    if cfg.synthetic_loss == "weighted" or not len(x_syn):
        x = np.concatenate([ts.x_real, x_syn])
        y = np.concatenate([targets(ts.y_real, n_classes), targets(y_syn, n_classes)])
        w = np.concatenate([np.ones(ts.n_real, np.float32), np.full(len(x_syn), cfg.synthetic_weight, np.float32)])
        return fit_in_memory(x, y, w, n_classes=n_classes, cfg=cfg, seed=seed), len(x_syn)
    return fit_distilled(ts.x_real, ts.y_real, x_syn, y_syn, teacher, n_classes=n_classes, cfg=cfg, seed=seed), len(x_syn)


def fit_distilled(x_real: np.ndarray, y_real: np.ndarray, x_syn: np.ndarray, y_syn: np.ndarray, teacher: nn.Module, *,
                  n_classes: int, cfg, seed: int) -> nn.Module:
    """Student = real CE + synthetic_weight * (w_d T^2 KL(teacher_T || student_T) + w_h hard CE) on synthetic rows."""
    from mirage.train.classifier import fit_objective, l2_penalty, targets

    xr = torch.from_numpy(np.ascontiguousarray(x_real, dtype=np.float32))
    yr = torch.from_numpy(targets(y_real, n_classes))
    xs = torch.from_numpy(np.ascontiguousarray(x_syn, dtype=np.float32))
    ys = torch.from_numpy(targets(y_syn, n_classes))
    temp = float(cfg.distill_temperature)
    with torch.no_grad():
        p_teacher = F.softmax(teacher(xs) / temp, dim=1)

    def objective(model: nn.Module) -> torch.Tensor:
        ce_real = -(yr * F.log_softmax(model(xr), dim=1)).sum(dim=1).mean()
        logits = model(xs)
        kl = F.kl_div(F.log_softmax(logits / temp, dim=1), p_teacher, reduction="batchmean") * temp * temp
        hard = -(ys * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
        syn = cfg.distill_weight * kl + cfg.synthetic_hard_weight * hard
        return ce_real + cfg.synthetic_weight * syn + l2_penalty(model, cfg.l2)

    return fit_objective(objective, in_dim=x_real.shape[1], n_classes=n_classes, cfg=cfg, seed=seed)


@torch.inference_mode()
def class_margin(model: nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """p(y) - max_{k != y} p(k) under ``model`` for rows ``x`` with int labels ``y`` (negative = misplaced)."""
    p = F.softmax(model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))), dim=1).numpy().astype(np.float64)
    own = p[np.arange(len(y)), y]
    p[np.arange(len(y)), y] = -np.inf
    return own - p.max(axis=1)


def nearest_distance(x: np.ndarray, ref: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance of each row of ``x`` to its nearest row of ``ref`` (blocks of rows: bounded memory)."""
    ref64 = np.asarray(ref, dtype=np.float64)
    ref_sq = np.square(ref64).sum(axis=1)
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), _CHUNK_ROWS):
        xb = np.asarray(x[start:start + _CHUNK_ROWS], dtype=np.float64)
        d2 = np.square(xb).sum(axis=1)[:, None] + ref_sq[None, :] - 2.0 * xb @ ref64.T
        if exclude_self:
            d2[np.arange(len(xb)), np.arange(start, start + len(xb))] = np.inf
        out[start:start + len(xb)] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def select_rows(x_real: np.ndarray, x_syn: np.ndarray, y_syn: np.ndarray, *, teacher: nn.Module | None, cfg,
                n_classes: int) -> np.ndarray:
    """Boolean mask of the synthetic rows kept by ``keep_margin`` and ``keep_nn_quantile`` (all when neither)."""
    y = np.asarray(y_syn)
    labels = y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)  # soft (mix-up) labels: their main class
    keep = np.ones(len(x_syn), dtype=bool)
    if cfg.keep_margin is not None:
        lo, hi = cfg.keep_margin
        m = class_margin(teacher, x_syn, labels)
        keep &= (m >= lo) & (m <= hi)
    if cfg.keep_nn_quantile is not None and len(x_real) > 1:
        radius = float(np.quantile(nearest_distance(x_real, x_real, exclude_self=True), float(cfg.keep_nn_quantile)))
        keep &= nearest_distance(x_syn, x_real) <= radius
    return keep
