"""Hyper-parameters of ``augment fit`` as one validated dataclass (stored in the checkpoint)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mirage.featstore.settings import check_known
from mirage.featstore.errors import ConfigError


@dataclass(frozen=True)
class FitConfig:
    """Everything that shapes a fit. Defaults keep a ~500 item x ~1000 dim fit well under a
    minute on 2 CPU cores; ``epochs=None`` picks enough epochs for ~``target_steps`` updates.
    Training runs on the CPU: the networks are small MLPs that a GPU would not speed up."""

    # method
    lambda_mi: float = 1.0          # weight of the MI terms in G's loss; 0 = conditional-GAN ablation
    lambda_text: float = 1.0        # relative weight of the text InfoNCE term inside the MI terms
    lambda_warmup: float = 0.0      # fraction of stage-2 epochs over which lambda ramps linearly 0 -> lambda_mi
    tau: float = 0.1                # temperature of the contrastive / InfoNCE terms
    ce_margin_nats: float = 0.0     # hinge on G's emotion CE: no push once a sample's CE is below it
    diversity: float = 0.0          # mode-seeking term weight (Mao et al. 2019): keeps G(z1,c) != G(z2,c)
    moment: float = 0.0             # per-class mean/std matching to the real data (keeps samples realistic)
    mixup: float = 1.0              # weight of the mix-up (real/fake interpolation) term in D's loss
    cond_d: bool = False            # projection discriminator D(h, y) instead of D(h)
    # feature space: standardise, then keep the principal components explaining this share of
    # the variance (whitened); >= 1 means plain standardisation
    pca_var: float = 0.99
    pca_max_dim: int | None = None
    # sizes
    noise_dim: int = 32
    hidden: int = 128
    proj_dim: int = 128
    # optimisation
    batch_size: int = 64
    epochs: int | None = None       # stage 2 (GAN) epochs; 0 = untrained generator
    align_epochs: int | None = None # stage 1 (alignment) epochs
    target_steps: int = 1200        # stage-2 updates aimed at when epochs is None
    align_target_steps: int = 400   # stage-1 updates aimed at when align_epochs is None
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    lr_align: float = 1e-3
    weight_decay_align: float = 1e-4
    align_noise: float = 0.1        # Gaussian input noise (std, standardised units) when fitting Q heads
    max_loss: float = 1e4           # a loss above this counts as exploded
    eval_samples: int = 256         # generated samples scored per epoch for the MI curves
    # torch intra-op threads during the fit (None: leave as is). 1 by default: these MLPs are
    # too small to gain from more, and on a shared box extra threads spin-wait (a 2-thread
    # EmoDB fit took 580 s wall next to other jobs, against ~25 s with one thread).
    num_threads: int | None = 1

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "FitConfig":
        check_known(cls, kwargs, "augment fit")
        # None means "the default" so callers can pass CLI options through unchanged.
        cfg = cls(**{k: v for k, v in kwargs.items() if v is not None})
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def _nonneg(name: str) -> None:
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"--{name.replace('_', '-')}: expected a finite number >= 0, got {v!r}")

        for name in ("lambda_mi", "lambda_text", "ce_margin_nats", "diversity", "moment", "mixup", "weight_decay_align", "align_noise"):
            _nonneg(name)
        for name in ("tau", "lr_g", "lr_d", "lr_align", "max_loss"):
            _nonneg(name)
            if getattr(self, name) == 0:
                raise ConfigError(f"--{name.replace('_', '-')}: expected a number > 0, got 0")
        if not (isinstance(self.pca_var, (int, float)) and 0.0 < self.pca_var):
            raise ConfigError(f"--pca-var: expected a share of variance in (0, 1] (1 = no PCA), got {self.pca_var!r}")
        if self.pca_max_dim is not None and (not isinstance(self.pca_max_dim, int) or self.pca_max_dim < 1):
            raise ConfigError(f"--pca-max-dim: expected a positive integer, got {self.pca_max_dim!r}")
        if not 0.0 <= self.lambda_warmup <= 1.0:
            raise ConfigError(f"--lambda-warmup: expected a fraction in [0, 1], got {self.lambda_warmup!r}")
        for name in ("noise_dim", "hidden", "proj_dim", "batch_size", "target_steps", "align_target_steps", "eval_samples"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: expected a positive integer, got {v!r}")
        for name in ("epochs", "align_epochs"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 0):
                raise ConfigError(f"--{name.replace('_', '-')}: expected an integer >= 0, got {v!r}")
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size: expected at least 2 (contrastive terms need negatives), got {self.batch_size}")

    def resolved_epochs(self, n_items: int) -> tuple[int, int]:
        """(align_epochs, gan_epochs) for ``n_items`` training items."""
        steps_per_epoch = max(1, math.ceil(n_items / self.batch_size))

        def _auto(target: int) -> int:
            return int(min(400, max(2, math.ceil(target / steps_per_epoch))))

        align = self.align_epochs if self.align_epochs is not None else _auto(self.align_target_steps)
        gan = self.epochs if self.epochs is not None else _auto(self.target_steps)
        return align, gan

    def lambda_at(self, epoch: int, n_epochs: int) -> float:
        """λ for a 0-based stage-2 epoch under the linear warm-up."""
        warm = self.lambda_warmup * n_epochs
        if warm <= 0:
            return self.lambda_mi
        return self.lambda_mi * min(1.0, (epoch + 1) / warm)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
