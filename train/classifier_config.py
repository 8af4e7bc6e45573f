"""The settings of a light classifier (:mod:`train.classifier`) as one validated dataclass.

Kept apart from the torch code, so building the command line (whose options are generated from
these fields) does not import torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from mirage.featstore.errors import ConfigError
from mirage.featstore.settings import check_int, check_known, setting

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
    def build(cls, classifier: "str | ClassifierConfig | None" = None,
              options: dict[str, Any] | None = None) -> "ClassifierConfig":
        """The run's classifier from an entry point's ``classifier`` (a kind, or a ClassifierConfig)
        and ``classifier_options`` (fields set over it), validated."""
        if isinstance(classifier, ClassifierConfig):
            return cls.from_kwargs(**{**dataclasses.asdict(classifier), **(options or {})}) if options else classifier
        return cls.from_kwargs(**({"kind": classifier} if classifier else {}), **(options or {}))

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
            check_int(getattr(cfg, name), flag)
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
