"""The settings of ``train fit`` as one validated dataclass.

The one home of ``train fit``'s defaults and of the rules that tie its settings together (which
loader a setting needs, what ``--final`` and ``--method mtl-aug`` allow); its options are
generated from these fields. ``classifier`` is a :class:`train.classifier.ClassifierConfig`,
``mtl`` the options of ``--method mtl-aug`` (:class:`train.mtl.MtlConfig`'s fields). Checks that
need the store (does it hold ``audio_layers``?) stay in :func:`train.fit.fit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mirage.featstore.errors import ConfigError
from mirage.featstore.settings import check_int, check_known, setting
from mirage.train.classifier_config import ClassifierConfig
from mirage.train.eval_settings import EvalSettings

LOADERS = ("auto", "memory", "stream")


@dataclass(frozen=True)
class TrainFitConfig(EvalSettings):
    method: str = setting("linear-probe", "linear-probe: the --classifier on the embedding. mtl-aug: a multitask network "
                          "(emotion head + augmentation-type head + clean-embedding decoder on a shared trunk) trained "
                          "on every view, unlabelled rows feeding only the auxiliary losses.",
                          choices=("linear-probe", "mtl-aug"))
    loader: str = setting("auto", "Hold the data in memory or stream it per fold (auto: stream above --max-memory-mb).",
                          choices=LOADERS)
    max_memory_mb: float = setting(2048.0, "Above this estimate of the fold data, --loader auto streams.")
    loader_workers: int = setting(0, "DataLoader worker processes for streamed training (started with spawn).")
    layer: int | str | None = setting(
        None, "Train on hidden state K of the store's audio_layers (featstore extract --audio-layer all), their mean, or "
              "a softmax-weighted sum learned on each training fold (default: the store's audio array).",
        cli_kind="str", metavar="K|mean|weighted")
    test_views: str | None = setting(
        None, "Also test each fold's classifier on these views of its test items, e.g. noise:snr=20,10,5,0 (views the "
              "store holds; reports uar_by_view and OUT/uar_by_view.png).", metavar="SPEC,...")
    train_views: str | None = setting(
        None, "Train on these views only (default: every view the store holds; tests use clean rows).",
        metavar="SPEC,...|all")
    attack: str | None = setting(
        None, "Also test each fold's classifier on adversarially perturbed (L∞, white-box) standardised test "
              "embeddings; reports uar_under_attack.", metavar="fgsm:eps=E|pgd:eps=E[:steps=N],...")
    final: bool = setting(False, "Also train on every labelled item and save the classifier to OUT/model (for "
                                 "`train predict`).")
    allow_incomplete: bool = setting(False, "Use a --synthetic set that holds fewer items than its `augment generate` "
                                            "run asked for (complete: false); refused by default.")
    mtl_ablations: bool = setting(False, "mtl-aug: also run without each auxiliary task and single-task "
                                         "(OUT/ablations.json, ablations.png).")
    synthetic: tuple[str, ...] = ()   # shard sets (folders or manifest.parquet); a repeatable CLI option
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    mtl: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, *, classifier: str | ClassifierConfig | None = None,
                    classifier_options: dict[str, Any] | None = None, mtl_options: dict[str, Any] | None = None,
                    **kwargs: Any) -> "TrainFitConfig":
        """From ``fit``'s keyword conveniences (``classifier="mlp"``, ``classifier_options``, ``mtl_options``)."""
        check_known(cls, kwargs, "train fit")
        classifier = ClassifierConfig.build(classifier, classifier_options)
        given = {k: v for k, v in kwargs.items() if v is not None or k in ("min_mi", "layer", "test_views",
                                                                          "train_views", "attack")}
        return cls(**given, classifier=classifier, mtl=dict(mtl_options or {}))

    def __post_init__(self) -> None:
        super().__post_init__()
        from mirage.train.attack import parse_attacks
        from mirage.train.mtl import check_method
        from mirage.train.noisy import check_view_options

        object.__setattr__(self, "method", check_method(self.method))
        syn = (self.synthetic,) if isinstance(self.synthetic, str) else tuple(str(s) for s in self.synthetic)
        object.__setattr__(self, "synthetic", syn)
        if self.layer is not None:
            from mirage.train.layers import parse_layer

            object.__setattr__(self, "layer", parse_layer(self.layer))
        for name in ("test_views", "train_views", "attack"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                object.__setattr__(self, name, ",".join(v))
        if self.loader not in LOADERS:
            raise ConfigError(f"--loader: expected one of {', '.join(LOADERS)}, got {self.loader!r}")
        if not isinstance(self.max_memory_mb, (int, float)) or isinstance(self.max_memory_mb, bool) or not self.max_memory_mb > 0:
            raise ConfigError(f"--max-memory-mb: expected a number > 0, got {self.max_memory_mb!r}")
        check_int(self.loader_workers, "--loader-workers", minimum=0, what="a number of processes >= 0")
        if self.method == "mtl-aug":
            self._check_mtl()
            return
        if self.mtl or self.mtl_ablations:
            raise ConfigError("--mtl-option/--mtl-ablations: expected --method mtl-aug, got --method " + self.method)
        stream = self.loader == "stream"
        if self.layer is not None and self.synthetic:
            raise ConfigError("--layer: synthetic shards live in the space of the store's audio array; expected no "
                              "--synthetic with --layer (extract with --audio-layer K and fit the generator on that store "
                              "instead)")
        if self.layer is not None and stream:
            raise ConfigError("--layer: expected --loader memory or auto (layer views are built in memory), got --loader stream")
        if self.normalise != "global" and stream:
            raise ConfigError(f"--normalise {self.normalise}: expected --loader memory or auto (streamed training "
                              "standardises globally), got --loader stream")
        check_view_options(self.test_views, self.normalise, self.loader)
        if parse_attacks(self.attack) and stream:
            raise ConfigError("--attack: expected --loader memory or auto, got --loader stream")
        if self.final and (self.synthetic or stream or self.normalise == "speaker"):
            raise ConfigError("--final: expected real data held in memory with --normalise global or none (no --synthetic, "
                              "no --loader stream, no --normalise speaker: a saved model cannot know a new speaker's "
                              "statistics)")

    def _check_mtl(self) -> None:
        clashes = [flag for flag, bad in (("--synthetic", bool(self.synthetic)), ("--layer", self.layer is not None),
                                          ("--mode multimodal", self.mode != "ser"),
                                          ("--normalise " + self.normalise, self.normalise != "global"),
                                          ("--final", self.final)) if bad]
        if clashes:
            raise ConfigError(f"--method mtl-aug: expected --mode ser, --normalise global and no --synthetic/--layer/"
                              f"--final, got {', '.join(clashes)}")
