"""The settings every evaluation run shares (``train fit`` and ``train compare``): one home of
their defaults, help texts and checks; :class:`train.fit_config.TrainFitConfig` and
:class:`train.compare_config.CompareConfig` extend it."""

from __future__ import annotations

from dataclasses import dataclass

from mirage.featstore.errors import ConfigError
from mirage.featstore.settings import check_int, setting


@dataclass(frozen=True)
class EvalSettings:
    mode: str = setting("ser", "ser: audio embedding h; multimodal: [h; t].", choices=("ser", "multimodal"))
    evaluation: str = setting("loso", "Leave-one-speaker-out (one session out for IEMOCAP) or the corpus's official split.",
                              flag="--eval", choices=("loso", "official"))
    seed: int = setting(0, "Seed of every random step.")
    normalise: str = setting("global", "global: z-score with the training fold's statistics (inductive). speaker: first "
                             "z-score each speaker's audio with that speaker's own mean/std, then globally; the test "
                             "speaker's statistics come from its own unlabelled test features (transductive). none: raw "
                             "features.", choices=("none", "global", "speaker"))
    min_mi: float | None = setting(None, "Skip synthetic shards whose normalised MI score is below this (0-1).",
                                   cli_kind="str", metavar="[0-1]")

    def __post_init__(self) -> None:
        from mirage.augment.counts import parse_unit_float  # the one home of the --min-mi check
        from mirage.train.dataset import check_mode, check_normalise

        check_mode(self.mode)
        object.__setattr__(self, "normalise", check_normalise(self.normalise))
        if self.evaluation not in ("loso", "official"):
            raise ConfigError(f"--eval: expected loso or official, got {self.evaluation!r}")
        check_int(self.seed, "--seed", minimum=-2**63, what="an integer")
        if self.min_mi is not None:
            object.__setattr__(self, "min_mi", parse_unit_float(self.min_mi, flag="--min-mi"))
