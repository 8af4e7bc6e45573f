"""The settings of ``train compare`` as one validated dataclass, composed of the others.

``classifier`` is a :class:`train.classifier.ClassifierConfig`; ``generator`` and
``generation`` hold the :class:`augment.config.FitConfig` / :class:`augment.config.GenerateConfig`
fields set for the run's generators, validated by those dataclasses (they stay the one home
of their defaults; only the fields set here enter config.json and the job fingerprints);
``baselines`` maps a method to its options (``{"mixup": {"pairs": "same"}}``). The scalar
fields are ``train compare``'s options (:func:`cli.common.settings_options`). How the run
executes (Dask, storage options, progress) is a :class:`featstore.runtime.Runtime`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from mirage.featstore.errors import ConfigError
from mirage.featstore.settings import setting
from mirage.train.classifier_config import ClassifierConfig
from mirage.train.eval_settings import EvalSettings

#: What ``compare`` runs when not told: ``auto`` is left out (its inner folds multiply the cost).
DEFAULT_METHODS = "none,smote,mixup,noise,cgan,infogan"
#: Generator fields compare sets unless told: one torch thread per fit, so fits in parallel
#: Dask tasks do not oversubscribe the cores and the bytes do not depend on the worker count.
GENERATOR_DEFAULTS = {"num_threads": 1}


def parse_methods(methods: str | Sequence[str]) -> list[str]:
    """``"none,infogan"`` -> ["none", "infogan"] (lower-cased, de-duplicated, every name registered)."""
    from mirage.train.methods import REGISTRY

    names = [m.strip().lower() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    unknown = [m for m in names if m not in REGISTRY]
    if unknown or not names:
        raise ConfigError(f"--methods: expected a comma-separated subset of {','.join(REGISTRY)}, got {methods!r}")
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class CompareConfig(EvalSettings):
    methods: str = setting(DEFAULT_METHODS, "Comma-separated methods: none, smote, mixup, noise, calibrate (class "
                           "Gaussians with covariance borrowed from the nearest classes), cgan (λ=0), infogan "
                           "(MI-regularised), mtl-aug (the multitask network; needs a store with views), mtl-aug+infogan, "
                           "auto (per outer fold, none or an augmentation, chosen on inner folds).", metavar="M,...")
    n: str = setting("4x", "Synthetic rows per fold: Nx of the real training items, or a count.", metavar="Nx|N")
    select: str = setting("none", "inner: choose each method's grid setting per outer fold on inner leave-speakers-out "
                          "folds of its training speakers; method auto chooses among none and the augmentations the "
                          "same way.", choices=("none", "inner"))
    lambda_mi: float | None = setting(None, "MI weight of the infogan generator (augment's default).")
    cache: str | None = setting(None, "Keep fingerprinted generator fits/generations and fold results in DIR, shared by "
                                "runs; default: inside OUT (a rerun into the same OUT reuses them); off: no reuse.",
                                metavar="DIR|off")
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    generator: dict[str, Any] = field(default_factory=dict)    # FitConfig fields for cgan / infogan
    generation: dict[str, Any] = field(default_factory=dict)   # GenerateConfig fields for infogan
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> options

    @classmethod
    def from_kwargs(cls, *, classifier: str | ClassifierConfig | None = None,
                    classifier_options: dict[str, Any] | None = None, generator_options: dict[str, Any] | None = None,
                    generate_options: dict[str, Any] | None = None,
                    baseline_options: dict[str, dict[str, Any]] | None = None, **kwargs: Any) -> "CompareConfig":
        """From ``compare``'s keyword conveniences (``classifier="mlp"``, ``classifier_options``, ...)."""
        from mirage.featstore.settings import check_known

        check_known(cls, kwargs, "train compare")
        classifier = ClassifierConfig.build(classifier, classifier_options)
        given = {k: v for k, v in kwargs.items() if v is not None or k in ("min_mi", "lambda_mi", "cache")}
        if "methods" in given and not isinstance(given["methods"], str):
            given["methods"] = ",".join(given["methods"])
        return cls(**given, classifier=classifier, generator=dict(generator_options or {}),
                   generation=dict(generate_options or {}), baselines=dict(baseline_options or {}))

    def __post_init__(self) -> None:
        from mirage.augment.counts import check_count_spec  # the one home of the --n check
        from mirage.train.select import check_select

        super().__post_init__()
        object.__setattr__(self, "methods", ",".join(self.method_names))
        object.__setattr__(self, "select", check_select(self.select))
        check_count_spec(self.n)
        object.__setattr__(self, "n", str(self.n))
        if self.lambda_mi is not None and (isinstance(self.lambda_mi, bool) or not isinstance(self.lambda_mi, (int, float))
                                           or not self.lambda_mi >= 0):
            raise ConfigError(f"--lambda-mi: expected a number >= 0, got {self.lambda_mi!r}")
        if not isinstance(self.classifier, ClassifierConfig):
            raise ConfigError(f"classifier: expected a ClassifierConfig, got {type(self.classifier).__name__}")
        object.__setattr__(self, "generator", {**GENERATOR_DEFAULTS, **self.generator})
        if any(m in self.generative_methods for m in self.method_names):
            from mirage.augment.fit import check_fit_options

            check_fit_options(**self.generator)  # fail before any work on a misspelt or out-of-range setting
            self.generate_config()
        from mirage.train.methods import REGISTRY

        unknown = sorted(set(self.baselines) - set(REGISTRY))
        if unknown:
            raise ConfigError(f"baseline options: expected options of methods among {','.join(REGISTRY)}, got {unknown}")

    @property
    def method_names(self) -> list[str]:
        return parse_methods(self.methods)

    @property
    def generative_methods(self) -> tuple[str, ...]:
        from mirage.train.methods import REGISTRY

        return tuple(n for n, m in REGISTRY.items() if m.generator)

    def generate_config(self):
        from mirage.augment.config import GenerateConfig

        return GenerateConfig.from_kwargs(**self.generation)
