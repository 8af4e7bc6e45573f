"""Light emotion classifiers (linear by default, optional small MLP) and standardisation.

Training targets are class probabilities (one-hot for real items, soft for mix-up), each
row with a weight (``synthetic_weight`` for synthetic rows). In memory, the linear head is
fitted full-batch with L-BFGS (L2-regularised multinomial logistic regression) and the MLP
with full-batch AdamW; streamed data is fitted with mini-batch AdamW over
:class:`~train.loaders.BlockStream` epochs. Every fit runs under a fixed torch thread
count and its own seeded RNG, so the same seed gives the same weights.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mirage.featstore.errors import TrainingDivergedError
from mirage.featstore.threads import fixed_threads
from mirage.train.classifier_config import KINDS, SYNTHETIC_LOSS_FIELDS, ClassifierConfig  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from mirage.featstore.standardize import Standardizer

log = logging.getLogger(__name__)

@contextlib.contextmanager
def seeded(seed: int, num_threads: int) -> Iterator[None]:
    """Own RNG state and thread count for one fit; the caller's are restored afterwards."""
    with fixed_threads(num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def build_model(cfg: ClassifierConfig, in_dim: int, n_classes: int) -> nn.Module:
    if cfg.kind == "linear":
        return nn.Linear(in_dim, n_classes)
    return nn.Sequential(nn.Linear(in_dim, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, n_classes))


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p for n, p in model.named_parameters() if n.endswith("weight")]


def l2_penalty(model: nn.Module, l2: float) -> torch.Tensor | float:
    return 0.5 * l2 * sum((p * p).sum() for p in _weights(model)) if l2 else 0.0


def _loss(model: nn.Module, x: torch.Tensor, target: torch.Tensor, w: torch.Tensor, l2: float) -> torch.Tensor:
    logits = model(x)
    if target.dtype == torch.int64:
        per_row = F.cross_entropy(logits, target, reduction="none")
    else:
        per_row = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
    loss = (per_row * w).sum() / w.sum().clamp_min(1e-12)
    if l2:
        loss = loss + 0.5 * l2 * sum((p * p).sum() for p in _weights(model))
    return loss


def _check(loss: torch.Tensor, where: str) -> None:
    if not math.isfinite(float(loss.detach())):
        raise TrainingDivergedError(f"classifier: expected a finite loss, got {float(loss.detach())} {where}; "
                                    "check the features for NaN/inf or lower the learning rate")


def targets(y: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, K) float32 probabilities from int labels or already-soft labels."""
    y = np.asarray(y)
    if y.ndim == 2:
        return y.astype(np.float32, copy=False)
    out = np.zeros((len(y), n_classes), dtype=np.float32)
    out[np.arange(len(y)), y.astype(np.int64)] = 1.0
    return out


def fit_in_memory(x: np.ndarray, y: np.ndarray, w: np.ndarray | None, *, n_classes: int,
                  cfg: ClassifierConfig, seed: int) -> nn.Module:
    """Fit on standardised rows ``x`` with int or soft labels ``y`` and row weights ``w``."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(targets(y, n_classes))
    wt = torch.from_numpy(np.ones(len(x), np.float32) if w is None else np.asarray(w, np.float32))
    return fit_objective(lambda model: _loss(model, xt, yt, wt, cfg.l2), in_dim=x.shape[1], n_classes=n_classes,
                         cfg=cfg, seed=seed)


def fit_objective(objective, *, in_dim: int, n_classes: int, cfg: ClassifierConfig, seed: int) -> nn.Module:
    """Minimise ``objective(model)`` (a scalar, full batch) over a fresh model: L-BFGS (linear) or AdamW (MLP)."""
    with seeded(seed, cfg.num_threads):
        model = build_model(cfg, in_dim, n_classes)
        if cfg.kind == "linear":
            opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=cfg.max_iter, history_size=20,
                                    tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")

            def closure():
                opt.zero_grad()
                loss = objective(model)
                loss.backward()
                return loss

            _check(opt.step(closure), "after L-BFGS")
        else:
            opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
            model.train()
            for step in range(cfg.steps):
                opt.zero_grad()
                loss = objective(model)
                loss.backward()
                opt.step()
                if step % 50 == 0:
                    _check(loss, f"at step {step}")
        model.eval()
        return model


def fit_streaming(stream, scaler: Standardizer, *, n_classes: int, cfg: ClassifierConfig, seed: int,
                  num_workers: int = 0) -> nn.Module:
    """Mini-batch AdamW over ``cfg.stream_epochs`` epochs of a :class:`~train.loaders.BlockStream`."""
    from mirage.train.loaders import make_loader

    with seeded(seed, cfg.num_threads):
        model = build_model(cfg, stream.dim, n_classes)
        opt = torch.optim.AdamW(model.parameters(), lr=max(cfg.lr, 3e-3 if cfg.kind == "linear" else cfg.lr), weight_decay=0.0)
        loader = make_loader(stream, num_workers=num_workers)
        model.train()
        for epoch in range(cfg.stream_epochs):
            stream.set_epoch(epoch)
            total, rows = 0.0, 0
            for xb, yb, wb in loader:
                opt.zero_grad()
                loss = _loss(model, scaler.torch(xb), yb, wb, cfg.l2)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(xb)
                rows += len(xb)
            _check(torch.tensor(total), f"in epoch {epoch}")
            log.debug("stream epoch %d: loss %.4f over %d rows", epoch, total / max(1, rows), rows)
        model.eval()
        return model


@torch.inference_mode()
def predict(model: nn.Module, x: np.ndarray, *, num_threads: int = 1, batch_rows: int = 65536) -> np.ndarray:
    """Class indices for standardised rows ``x``."""
    with fixed_threads(num_threads):
        out = [model(torch.from_numpy(np.ascontiguousarray(x[i: i + batch_rows], dtype=np.float32))).argmax(dim=1).numpy()
               for i in range(0, len(x), batch_rows)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
