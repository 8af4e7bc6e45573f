"""Variational MI lower bounds (nats) and the normalised MI score.

- I(y; ĥ) ≥ H(y) − E[CE(Q_y(ĥ), y)], H(y) the entropy of the label prior used to sample;
- I(t; ĥ) ≥ log B − E[InfoNCE(Q_t(ĥ), t)] over fixed scoring batches of B rows; with
  repeated sentences only the distinct texts of a batch are candidates, so B becomes the
  number of distinct texts (equal to B when texts are unique).
- score = mean over the applicable terms of bound / ceiling, clipped to [0, 1].

Pointwise versions (per sample): log Q_y(y|ĥ) − log p(y) with ceiling −log p(y), and
log B − ℓ_i with ceiling log B; their sum in nats is stored as ``mi_pointwise`` and the
per-sample normalised score as ``mi_score``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mirage.augment.losses import info_nce_unique

SCORE_BATCH = 128  # the fixed scoring batch size B of the text bound


def entropy_nats(prior: np.ndarray) -> float:
    p = np.asarray(prior, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mi_y_bound(logits: torch.Tensor, y: torch.Tensor, prior: np.ndarray) -> tuple[float, float]:
    """(H(y) − mean CE, H(y)) in nats."""
    ce = float(F.cross_entropy(logits.double(), y).item()) if len(y) else 0.0
    h = entropy_nats(prior)
    return h - ce, h


def mi_t_bound(q_t: torch.Tensor, t: torch.Tensor, text_ids: torch.Tensor, tau: float,
               batch: int = SCORE_BATCH) -> tuple[float, float]:
    """(mean over rows of log B_b − ℓ_i, mean of log B_b) in nats, B_b = distinct texts of row i's batch."""
    pw, ceil = pointwise_t(q_t, t, text_ids, tau, batch)
    return (float(pw.mean()), float(ceil.mean())) if len(pw) else (0.0, 0.0)


def pointwise_y(logits: torch.Tensor, y: torch.Tensor, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log Q_y(y|ĥ) − log p(y), −log p(y)) per sample, float64."""
    logq = torch.log_softmax(logits.double(), dim=1).gather(1, y[:, None]).squeeze(1).cpu().numpy()
    neg_logp = -np.log(np.asarray(prior, dtype=np.float64)[y.cpu().numpy()])
    return logq + neg_logp, neg_logp


def pointwise_t(q_t: torch.Tensor, t: torch.Tensor, text_ids: torch.Tensor, tau: float,
                batch: int = SCORE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """(log B_b − ℓ_i, log B_b) per sample over consecutive scoring batches of ``batch`` rows.

    All full batches are scored in one batched matmul; the remainder, if any, on its own.
    """
    n = len(q_t)
    n_full = (n // batch) * batch
    pw, ceil = [], []
    if n_full:
        a, b = _batched_pointwise_t(q_t[:n_full], t[:n_full], text_ids[:n_full], tau, batch)
        pw.append(a), ceil.append(b)
    if n_full < n:
        loss, n_distinct = info_nce_unique(q_t[n_full:].double(), t[n_full:].double(), text_ids[n_full:], tau)
        log_b = float(np.log(n_distinct.item()))
        pw.append(log_b - loss.detach().cpu().numpy())
        ceil.append(np.full(len(loss), log_b))
    if not pw:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(pw), np.concatenate(ceil)


def _batched_pointwise_t(q_t, t, ids, tau, batch):
    """Same as :func:`info_nce_unique` per batch: duplicate texts collapse onto their first row."""
    nb = len(q_t) // batch
    # Cosines in float32 (the wide part), the softmax in float64 (where precision matters).
    q = F.normalize(q_t.float(), dim=1).view(nb, batch, -1)
    k = F.normalize(t.float(), dim=1).view(nb, batch, -1)
    ids = ids.view(nb, batch)
    logits = (q @ k.transpose(1, 2)).double() / tau                       # (nb, B, B)
    same = ids[:, :, None] == ids[:, None, :]
    earlier = torch.tril(torch.ones(batch, batch, dtype=torch.bool), diagonal=-1)
    first = ~(same & earlier).any(dim=2)                                  # row j is its id's first occurrence
    target = same.to(torch.int8).argmax(dim=2)                            # first row holding query i's id
    masked = logits.masked_fill(~first[:, None, :], float("-inf"))
    loss = torch.logsumexp(masked, dim=2) - masked.gather(2, target[:, :, None]).squeeze(2)
    log_b = torch.log(first.sum(dim=1).double())[:, None].expand(nb, batch)
    return (log_b - loss).reshape(-1).cpu().numpy(), log_b.reshape(-1).cpu().numpy()


def normalised_score(terms: list[tuple[float, float]]) -> float:
    """Mean of bound/ceiling over terms with a positive ceiling, clipped to [0, 1]."""
    ratios = [b / c for b, c in terms if c > 1e-12]
    if not ratios:
        return 0.0
    return float(np.clip(np.mean(ratios), 0.0, 1.0))


@dataclass
class MIScore:
    """MI of one set of generated samples. ``mi_t_*`` are NaN for text-free generators."""

    mi_y_nats: float
    mi_y_ceiling_nats: float
    mi_t_nats: float
    mi_t_ceiling_nats: float
    score: float
    pointwise_nats: np.ndarray   # (n,) float32, sum of the pointwise terms
    pointwise_score: np.ndarray  # (n,) float32 in [0, 1]

    def summary(self) -> dict[str, float]:
        return {"mi_y_nats": self.mi_y_nats, "mi_t_nats": self.mi_t_nats, "mi_score": self.score}


@torch.no_grad()
def score_samples(logits_y: torch.Tensor, y: torch.Tensor, prior: np.ndarray, *,
                  q_t: torch.Tensor | None = None, t: torch.Tensor | None = None,
                  text_ids: torch.Tensor | None = None, tau: float = 0.1, batch: int = SCORE_BATCH) -> MIScore:
    """Bounds, normalised score and pointwise values from the heads' outputs on ĥ."""
    mi_y, h_y = mi_y_bound(logits_y, y, prior)
    pw_y, ceil_y = pointwise_y(logits_y, y, prior)
    terms = [(mi_y, h_y)]
    ratio_terms = [np.divide(pw_y, ceil_y, out=np.zeros_like(pw_y), where=ceil_y > 1e-12)] if h_y > 1e-12 else []
    pw = pw_y
    mi_t = ceil_t_mean = float("nan")
    if q_t is not None:
        pw_t, ceil_t = pointwise_t(q_t, t, text_ids, tau, batch)
        mi_t, ceil_t_mean = (float(pw_t.mean()), float(ceil_t.mean())) if len(pw_t) else (0.0, 0.0)
        terms.append((mi_t, ceil_t_mean))
        if ceil_t_mean > 1e-12:
            ratio_terms.append(np.divide(pw_t, ceil_t, out=np.zeros_like(pw_t), where=ceil_t > 1e-12))
        pw = pw + pw_t
    point_score = np.clip(np.mean(ratio_terms, axis=0), 0.0, 1.0) if ratio_terms else np.zeros(len(y))
    return MIScore(
        mi_y_nats=float(mi_y), mi_y_ceiling_nats=float(h_y), mi_t_nats=float(mi_t), mi_t_ceiling_nats=float(ceil_t_mean),
        score=normalised_score(terms), pointwise_nats=pw.astype(np.float32), pointwise_score=point_score.astype(np.float32),
    )
