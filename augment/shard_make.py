"""One attempt at one shard slot: codes -> G -> the stage-1 heads -> MI scores -> arrays.

Each round's noise and text codes come from seeds derived from (seed, slot, attempt,
round), so a slot's content never depends on other slots or on where a run stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mirage.augment.checkpoint import GeneratorBundle
from mirage.augment.mi import MIScore, score_samples
from mirage.augment.sampling import CodeSpec
from mirage.augment.seeding import numpy_rng, torch_generator

_FORWARD_BATCH = 8192


@dataclass
class Shard:
    labels: np.ndarray
    arrays: dict[str, np.ndarray]
    code_rows: np.ndarray
    score: MIScore


@dataclass
class _Round:
    """The in-band candidates one sampling round kept, and that round's whole score."""

    h: torch.Tensor
    logits: torch.Tensor
    q_t: torch.Tensor | None
    code_rows: np.ndarray
    labels: np.ndarray
    pointwise_nats: np.ndarray
    pointwise_score: np.ndarray
    scored: MIScore


@torch.no_grad()
def _forward(bundle: GeneratorBundle, spec: CodeSpec, labels: np.ndarray, rows: np.ndarray, z: torch.Tensor):
    """ĥ (standardised), Q_y logits and Q_t output for the given codes."""
    y = torch.from_numpy(labels)
    t = torch.from_numpy(bundle.transform("text").forward(spec.text_codes[rows])) if bundle.use_text else None
    hs, ls, qs = [], [], []
    for s in range(0, len(labels), _FORWARD_BATCH):
        sl = slice(s, s + _FORWARD_BATCH)
        h = bundle.generator(z[sl], y[sl], None if t is None else t[sl])
        _, logits, q_t = bundle.align.heads(h)
        hs.append(h), ls.append(logits), qs.append(q_t)
    cat = lambda xs: None if xs[0] is None else torch.cat(xs)  # noqa: E731
    return y, t, cat(hs), cat(ls), cat(qs)


def _score(bundle, spec, prior, y, t, logits, q_t, rows) -> MIScore:
    kw = {}
    if t is not None:
        kw = {"q_t": q_t, "t": t, "text_ids": torch.from_numpy(spec.text_ids[rows]), "tau": float(bundle.config["tau"])}
    return score_samples(logits, y, prior, **kw)


def occurrence_rank(a: np.ndarray) -> np.ndarray:
    """For each element, how many equal elements precede it (0 for the first of its value)."""
    order = np.argsort(a, kind="stable")
    s = a[order]
    rank = np.empty(len(a), dtype=np.int64)
    rank[order] = np.arange(len(a)) - np.searchsorted(s, s, side="left")
    return rank


def make_shard(bundle: GeneratorBundle, spec: CodeSpec, labels: np.ndarray, prior: np.ndarray, *, seed: int,
               slot: int, attempt: int, band: tuple[float, float], max_rounds: int) -> Shard:
    """One attempt at one slot: fill each label's quota with in-band samples, keep the plan's order.

    Without a band, round 0 draws exactly the plan and keeps everything (the common path).
    """
    K = len(spec.labels)
    quota = np.bincount(labels, minlength=K)
    have = np.zeros(K, dtype=np.int64)
    full_band = band == (0.0, 1.0)
    pools: list[_Round] = []
    for rnd in range(max_rounds):
        deficit = quota - have
        if not deficit.any():
            break
        rng = numpy_rng(seed, "codes", slot, attempt, rnd)
        if full_band and rnd == 0:
            cand = labels.astype(np.int64)
        else:  # oversample the missing labels, in random order
            cand = np.repeat(np.arange(K), deficit * 2)
            cand = cand[rng.permutation(len(cand))]
        rows = spec.code_rows(cand, rng)
        z = torch.randn(len(cand), spec.noise_dim, generator=torch_generator(seed, "z", slot, attempt, rnd))
        y, t, h, logits, q_t = _forward(bundle, spec, cand, rows, z)
        scored = _score(bundle, spec, prior, y, t, logits, q_t, rows)
        ps = scored.pointwise_score
        ok = (ps >= band[0]) & (ps <= band[1])
        idx = np.flatnonzero(ok)
        idx = idx[occurrence_rank(cand[idx]) < deficit[cand[idx]]]  # first `deficit` in-band ones per label
        sel = torch.from_numpy(idx)
        pools.append(_Round(h[sel], logits[sel], None if q_t is None else q_t[sel], rows[idx], cand[idx],
                            scored.pointwise_nats[idx], ps[idx], scored))
        have += np.bincount(cand[idx], minlength=K)
    # Lay the kept samples out in the plan's (random) order; plan positions left unfilled are dropped.
    out_labels = labels[_plan_positions(labels, have)].astype(np.int64)
    if not len(out_labels):
        empty = MIScore(0.0, 0.0, float("nan"), float("nan"), 0.0, np.zeros(0, np.float32), np.zeros(0, np.float32))
        return Shard(labels=out_labels, arrays={}, code_rows=np.zeros(0, dtype=np.int64), score=empty)
    pool_labels = np.concatenate([p.labels for p in pools])
    by_label = np.argsort(pool_labels, kind="stable")
    starts = np.searchsorted(pool_labels[by_label], np.arange(K), side="left")
    take = torch.from_numpy(by_label[starts[out_labels] + occurrence_rank(out_labels)])
    h = torch.cat([p.h for p in pools])[take]
    logits = torch.cat([p.logits for p in pools])[take]
    q_t = torch.cat([p.q_t for p in pools])[take] if bundle.use_text else None
    rows = np.concatenate([p.code_rows for p in pools])[take.numpy()]
    if len(pools) == 1 and len(take) == len(pools[0].labels) and bool((take == torch.arange(len(take))).all()):
        score = pools[0].scored  # one round kept whole and in order: its scores are the shard's
    else:
        # Shard bounds over the final order; the per-sample scores stay those each sample was
        # selected with (the text term depends on its scoring batch, so rescoring would move
        # samples across the band edges).
        y = torch.from_numpy(out_labels)
        t = torch.from_numpy(bundle.transform("text").forward(spec.text_codes[rows])) if bundle.use_text else None
        score = _score(bundle, spec, prior, y, t, logits, q_t, rows)
        score.pointwise_nats = np.concatenate([p.pointwise_nats for p in pools])[take.numpy()]
        score.pointwise_score = np.concatenate([p.pointwise_score for p in pools])[take.numpy()]
    arrays = {"audio": bundle.transform("audio").inverse(h.numpy()),
              "mi_pointwise": score.pointwise_nats, "mi_score": score.pointwise_score}
    if bundle.use_text:
        arrays["text"] = spec.text_codes[rows].astype(np.float32)
        if bundle.config["mode"] == "multimodal":
            arrays["text_pred"] = bundle.transform("text").inverse(q_t.numpy())
    return Shard(labels=out_labels, arrays=arrays, code_rows=rows, score=score)


def _plan_positions(plan: np.ndarray, n_kept: np.ndarray) -> np.ndarray:
    """Indices of the plan positions that get a sample: the first ``n_kept[k]`` of each label."""
    return np.flatnonzero(occurrence_rank(plan) < np.asarray(n_kept)[plan])
