"""A fitted generator in memory: ``FittedGenerator(model_dir).sample(n, labels=...)``.

For notebooks: the same generator, codes and seeding as ``augment generate`` (with no MI
filter and no shards), returning arrays in the feature store's space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from mirage.featstore.errors import ConfigError


@dataclass
class Sample:
    """``n`` generated rows: ``audio`` (n, Da) in the store's space, their label names, the
    text codes they were conditioned on (or None), each row's normalised MI score, and for a
    speaker-aware generator each row's speaker code (augment.speakers; else None)."""

    audio: np.ndarray
    labels: list[str]
    text: np.ndarray | None
    mi_score: np.ndarray
    speaker_code: np.ndarray | None = None


class FittedGenerator:
    """A generator checkpoint (``augment fit``'s output); nothing is loaded until used."""

    def __init__(self, model_dir: str, storage_options: dict[str, Any] | None = None):
        self.model_dir = str(model_dir)
        self.storage_options = storage_options
        self._bundle = None

    def __repr__(self) -> str:
        return f"FittedGenerator({self.model_dir!r})"

    @property
    def bundle(self):
        if self._bundle is None:
            from mirage.augment.checkpoint import load_checkpoint

            self._bundle = load_checkpoint(self.model_dir, self.storage_options)
        return self._bundle

    @property
    def labels(self) -> list[str]:
        return list(self.bundle.config["labels"])

    def sample(self, n: int, labels: str | Sequence[str] | None = None, *, seed: int = 0,
               balanced: bool = False, **speaker_settings: Any) -> Sample:
        """``n`` rows; ``labels``: one label name for all, one name per row, or None (drawn
        from the training prior, or uniformly with ``balanced``). ``speaker_settings``:
        GenerateConfig's speaker_codes / speaker_mix / speaker_extrapolate."""
        import torch

        from mirage.augment.config import GenerateConfig
        from mirage.augment.generate import _forward, _score
        from mirage.augment.sampling import CodeSpec
        from mirage.augment.seeding import numpy_rng, torch_generator
        from mirage.augment.speakers import prepare_generation

        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n: expected a positive integer, got {n!r}")
        unknown = sorted(set(speaker_settings) - {"speaker_codes", "speaker_mix", "speaker_extrapolate"})
        if unknown:
            raise ConfigError(f"sample: unknown setting(s) {unknown}; expected speaker_codes, speaker_mix, speaker_extrapolate")
        gc = GenerateConfig.from_kwargs(**speaker_settings)
        # a copy: the cached bundle keeps its plain generator
        bundle, spec, _ = prepare_generation(self.bundle, CodeSpec.from_bundle(self.bundle), gc)
        names = list(spec.labels)
        if labels is None:
            y = spec.label_plan(int(n), balanced=balanced, seed=seed)
        else:
            wanted = [labels] * int(n) if isinstance(labels, str) else list(labels)
            if len(wanted) != n:
                raise ConfigError(f"labels: expected one label or {n} labels, got {len(wanted)}")
            unknown = sorted(set(wanted) - set(names))
            if unknown:
                raise ConfigError(f"labels: expected names among {names}, got {unknown}")
            y = np.array([names.index(lab) for lab in wanted], dtype=np.int64)
        rows = spec.code_rows(y, numpy_rng(seed, "sample-codes"))
        z = torch.randn(len(y), spec.noise_dim, generator=torch_generator(seed, "sample-z"))
        with torch.inference_mode():
            yt, t, h, logits, q_t = _forward(bundle, spec, y, rows, z)
            prior = spec.sampling_prior(balanced)
            score = _score(bundle, spec, prior, yt, t, logits, q_t, rows)
        text = bundle.transform("text").inverse(t.numpy()) if t is not None else None
        coded = getattr(bundle.generator, "speaker_codes", None)
        codes = coded(z[:, bundle.generator.noise_dim:]) if coded is not None else None
        return Sample(bundle.transform("audio").inverse(h.numpy()), [names[i] for i in y], text,
                      np.asarray(score.pointwise_score, dtype=np.float32), codes)
