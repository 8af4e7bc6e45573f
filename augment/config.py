"""Hyper-parameters of ``augment fit`` as one validated dataclass (stored in the checkpoint)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mirage.featstore.settings import check_int, check_known, setting
from mirage.featstore.errors import ConfigError


@dataclass(frozen=True)
class FitConfig:
    """Everything that shapes a fit. Defaults keep a ~500 item x ~1000 dim fit well under a
    minute on 2 CPU cores; ``epochs=None`` picks enough epochs for ~``target_steps`` updates.
    Training runs on the CPU: the networks are small MLPs that a GPU would not speed up."""

    # method
    lambda_mi: float = setting(1.0, "MI weight λ in G's loss; 0 = conditional-GAN ablation.")
    lambda_text: float = setting(1.0, "Relative weight of the text InfoNCE term inside the MI terms.")
    lambda_warmup: float = setting(0.0, "Fraction of GAN epochs over which λ ramps linearly from 0.")
    tau: float = setting(0.1, "Temperature of the contrastive / InfoNCE terms.")
    ce_margin_nats: float = setting(0.0, "Stop pushing a sample once Q_y's CE on it is below this (0 = off).")
    diversity: float = setting(0.0, "Mode-seeking term weight (Mao et al. 2019; 0 = off): keeps G(z1,c) != G(z2,c).")
    moment: float = setting(0.0, "Per-class mean/std matching weight (0 = off): keeps samples realistic.")
    mixup: float = setting(1.0, "Weight of the mix-up (real/fake interpolation) term in D's loss (0 = off).")
    cond_d: bool = setting(False, "Projection discriminator D(h, y) instead of D(h).")
    # speaker-aware InfoGAN (issue 12, lever 4a; augment.speakers): c = (y, s), off by default
    speaker_dims: int = setting(0, "Speaker code size (0 = off): G is also conditioned on its speaker's class-centred "
                                   "mean embedding, on this many leading PCs of the speaker means (at most speakers - 1).")
    lambda_speaker: float = setting(1.0, "Weight λ_s of the speaker MI term (Gaussian -log Q_s(s | ĥ), frozen ridge Q_s head).")
    speaker_mix_train: float = setting(0.5, "Share of stage-2 fakes conditioned on a novel speaker (a mixture of "
                                            "training speakers' codes, as generation draws them).")
    # feature space: standardise, then keep the principal components explaining this share of
    # the variance (whitened); >= 1 means plain standardisation
    pca_var: float = setting(0.99, "Share of feature variance kept by the whitened PCA the GAN works in (1 = none).")
    pca_max_dim: int | None = setting(None, "At most this many PCA components (default: no cap).")
    # sizes
    noise_dim: int = setting(32, "Size of z.")
    hidden: int = setting(128, "Hidden width of the MLPs.")
    proj_dim: int = setting(128, "Width of the contrastive projection heads.")
    # optimisation
    batch_size: int = setting(64, "Batch size (at least 2: the contrastive terms need negatives).")
    epochs: int | None = setting(None, "GAN (stage 2) epochs (default: enough for --target-steps updates; 0 = untrained G).")
    align_epochs: int | None = setting(None, "Alignment (stage 1) epochs (default: enough for --align-target-steps updates).")
    target_steps: int = setting(1200, "Stage-2 updates aimed at when --epochs is not given.")
    align_target_steps: int = setting(400, "Stage-1 updates aimed at when --align-epochs is not given.")
    lr_g: float = setting(1e-3, "Generator learning rate.")
    lr_d: float = setting(1e-3, "Discriminator learning rate.")
    lr_align: float = setting(1e-3, "Alignment-head learning rate.")
    weight_decay_align: float = setting(1e-4, "Weight decay of the alignment heads.")
    align_noise: float = setting(0.1, "Gaussian input noise (std, standardised units) when fitting the Q heads.")
    max_loss: float = setting(1e4, "A loss above this counts as exploded (the fit stops with an error).")
    eval_samples: int = setting(256, "Generated samples scored per epoch for the MI curves.")
    # torch intra-op threads during the fit (None: leave as is). 1 by default: these MLPs are
    # too small to gain from more, and on a shared box extra threads spin-wait (a 2-thread
    # EmoDB fit took 580 s wall next to other jobs, against ~25 s with one thread).
    num_threads: int | None = setting(1, "torch threads during the fit.", flag="--threads")

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
        if isinstance(self.speaker_dims, bool) or not isinstance(self.speaker_dims, int) or self.speaker_dims < 0:
            raise ConfigError(f"--speaker-dims: expected an integer >= 0 (0 = off), got {self.speaker_dims!r}")
        _nonneg("lambda_speaker")
        if not (isinstance(self.speaker_mix_train, (int, float)) and 0.0 <= self.speaker_mix_train <= 1.0):
            raise ConfigError(f"--speaker-mix-train: expected a share in [0, 1], got {self.speaker_mix_train!r}")
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


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that shapes an ``augment generate`` run besides the generator, its seed and the
    I/O: the one home of these defaults (the CLI's options are generated from the fields)."""

    n: str | int = setting("4x", "Nx (times the generator's real training items) or a count.", metavar="Nx|N")
    # taken as text so that a bad value gets the range in its message, not click's "not a float"
    min_mi: float = setting(0.0, "Drop shards whose normalised MI score is below this (0-1).", cli_kind="str",
                            metavar="[0-1]")
    mi_band: str | None = setting(None, "LO,HI: keep only samples whose per-sample MI score is in [LO, HI].",
                                  metavar="LO,HI")
    shard_size: int = setting(4096, "Rows per shard.")
    balanced: bool = setting(False, "Uniform labels instead of the training prior.")
    max_attempts: int = setting(5, "Tries per shard (fresh noise) before a shard below --min-mi is given up.")
    max_rounds: int = setting(8, "--mi-band: redraws per label quota before it is given up.")
    # speaker-aware generators only (augment.speakers); the others ignore these
    speaker_codes: str = setting("novel", "Speaker-aware generators: novel (mixtures and small extrapolations of the "
                                          "training speakers' codes) or train (the training speakers' own codes).",
                                 choices=("novel", "train"))
    speaker_mix: int = setting(2, "--speaker-codes novel: training speakers mixed into each code (at least 2).")
    speaker_extrapolate: float = setting(0.25, "--speaker-codes novel: largest stretch beyond the mixed speakers "
                                               "(0 = convex mixtures only).")
    # fixed during generation so the bytes do not depend on the machine's default thread count
    num_threads: int | None = setting(1, "torch threads during generation.", cli=False)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "GenerateConfig":
        from mirage.augment.counts import parse_unit_float

        check_known(cls, kwargs, "augment generate")
        given = {k: v for k, v in kwargs.items() if v is not None}
        if "min_mi" in given:
            given["min_mi"] = parse_unit_float(given["min_mi"], flag="--min-mi")
        cfg = cls(**given)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from mirage.augment.counts import check_count_spec, parse_band, parse_unit_float

        check_count_spec(self.n)
        parse_unit_float(self.min_mi, flag="--min-mi")
        parse_band(self.mi_band)
        for name in ("shard_size", "max_attempts", "max_rounds"):
            check_int(getattr(self, name), f"--{name.replace('_', '-')}")
        if self.speaker_codes not in ("novel", "train"):
            raise ConfigError(f"--speaker-codes: expected novel or train, got {self.speaker_codes!r}")
        if isinstance(self.speaker_mix, bool) or not isinstance(self.speaker_mix, int) or self.speaker_mix < 2:
            raise ConfigError(f"--speaker-mix: expected an integer >= 2 (speakers mixed per code), got {self.speaker_mix!r}")
        e = self.speaker_extrapolate
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e) or not 0 <= e <= 1:
            raise ConfigError(f"--speaker-extrapolate: expected a number in [0, 1], got {e!r}")
        if self.num_threads is not None and (isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int)
                                             or self.num_threads < 1):
            raise ConfigError(f"augment generate num_threads: expected a positive integer or None, got {self.num_threads!r}")

    @property
    def band(self) -> tuple[float, float]:
        from mirage.augment.counts import parse_band

        return parse_band(self.mi_band)
