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
import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mirage.featstore.settings import check_known, setting
from mirage.featstore.errors import ConfigError, TrainingDivergedError
from mirage.featstore.threads import fixed_threads

log = logging.getLogger(__name__)

KINDS = ("linear", "mlp")


@dataclass(frozen=True)
class ClassifierConfig:
    kind: str = setting("linear", "Classifier kind.", flag="--classifier", choices=KINDS, cli=False)  # shared option
    l2: float = setting(1e-3, "L2 coefficient: 0.5 * ||W||^2 (weights, not biases) added to the mean loss.", flag="--l2")
    hidden: int = setting(256, "MLP hidden width (--classifier mlp).", flag="--classifier-hidden")
    dropout: float = setting(0.2, "MLP dropout (--classifier mlp).", flag="--classifier-dropout")
    max_iter: int = setting(100, "L-BFGS iterations of the linear classifier (in memory).", flag="--classifier-max-iter")
    steps: int = setting(400, "Full-batch AdamW steps of the MLP (in memory).", flag="--classifier-steps")
    lr: float = setting(1e-3, "AdamW learning rate (MLP; streamed fits).", flag="--classifier-lr")
    stream_epochs: int = setting(15, "Passes over streamed data (--loader stream).", flag="--classifier-stream-epochs")
    batch_size: int = setting(512, "Streamed mini-batch size (--loader stream).", flag="--classifier-batch-size")
    synthetic_weight: float = setting(1.0, "Loss weight of a synthetic row relative to a real one.")
    # torch intra-op threads during fit/predict: fixed for reproducibility, so no flag
    num_threads: int = setting(1, "torch threads of the classifier.", cli=False)
    # synthetic rows as their own loss term and their selection (see train.distill); defaults = one weighted CE
    synthetic_loss: str = setting("weighted", "weighted: one weighted CE over real + synthetic rows. distill: real CE + "
                                  "T^2 KL to a real-only teacher + hard CE on synthetic rows, as separate terms.",
                                  choices=("weighted", "distill"))
    distill_temperature: float = setting(2.0, "--synthetic-loss distill: softmax temperature T of teacher and student.")
    distill_weight: float = setting(0.5, "--synthetic-loss distill: weight w_d of T^2 * KL(teacher_T || student_T) "
                                    "on synthetic rows.")
    synthetic_hard_weight: float = setting(0.5, "--synthetic-loss distill: weight w_h of the hard-label CE on synthetic rows.")
    keep_margin: tuple[float, float] | None = setting(
        None, "Keep synthetic rows that a real-only classifier of the fold places right with a margin "
              "p(y) - max other p in [LO, HI] (hard-but-correct), e.g. 0,0.9.", metavar="LO,HI", cli_kind="str")
    synthetic_speakers: str = setting(
        "none", "mix: move each synthetic row to a novel speaker — add a random convex mixture of two training "
                "speakers' mean offsets (standardised space), so synthetic rows carry the speaker variation "
                "leave-one-speaker-out tests; none: as generated.", choices=("none", "mix"))
    keep_nn_quantile: float | None = setting(
        None, "Keep synthetic rows nearer a real training row than this quantile of the real rows' "
              "nearest-other-real distances (standardised space).", metavar="Q")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "ClassifierConfig":
        check_known(cls, kwargs, "classifier")
        cfg = cls(**{k: v for k, v in kwargs.items() if v is not None})
        if cfg.kind not in KINDS:
            raise ConfigError(f"--classifier: expected one of {', '.join(KINDS)}, got {cfg.kind!r}")
        for name, flag in (("l2", "--l2"), ("synthetic_weight", "--synthetic-weight")):
            v = getattr(cfg, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"{flag}: expected a finite number >= 0, got {v!r}")
        if cfg.num_threads < 1:
            raise ConfigError(f"classifier num_threads: expected at least 1, got {cfg.num_threads!r}")
        for name, flag in (("hidden", "--classifier-hidden"), ("max_iter", "--classifier-max-iter"),
                           ("steps", "--classifier-steps"), ("stream_epochs", "--classifier-stream-epochs"),
                           ("batch_size", "--classifier-batch-size")):
            v = getattr(cfg, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{flag}: expected a positive integer, got {v!r}")
        if not 0.0 <= cfg.dropout < 1.0:
            raise ConfigError(f"--classifier-dropout: expected a fraction in [0, 1), got {cfg.dropout!r}")
        if not cfg.lr > 0:
            raise ConfigError(f"--classifier-lr: expected a number > 0, got {cfg.lr!r}")
        from mirage.train.distill import check_synthetic_options

        return check_synthetic_options(cfg)

    def to_json(self) -> dict[str, Any]:
        """Settings as recorded in metrics/config files; the synthetic-loss settings only when not at their
        defaults, so runs that do not use them keep the bytes they had before those settings existed."""
        out = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            if f.name in SYNTHETIC_LOSS_FIELDS and out[f.name] == f.default:
                del out[f.name]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


SYNTHETIC_LOSS_FIELDS = ("synthetic_loss", "distill_temperature", "distill_weight", "synthetic_hard_weight",
                         "keep_margin", "keep_nn_quantile", "synthetic_speakers")


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
