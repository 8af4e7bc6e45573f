"""``egemaps``: openSMILE eGeMAPSv02 functionals (88-d), the optional extra
``pip install 'mirage-ser[egemaps]'``. openSMILE computes its own utterance functionals,
so ``pooling`` does not apply (only "mean", the CLI default, is accepted) and
``config()["pooling"]`` reads "functionals"."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from mirage.featstore.errors import ConfigError, MissingDependencyError
from mirage.featstore.extractors.base import AudioExtractor

DIM = 88
SR = 16000
FEATURE_SET = "eGeMAPSv02"
#: one openSMILE process object is not safe to call from several threads at once
_SMILE_LOCK = threading.Lock()


def _opensmile():
    try:
        import opensmile
    except ImportError as exc:
        raise MissingDependencyError(
            "expected the optional package opensmile for the egemaps extractor, got none installed; "
            "run: pip install 'mirage-ser[egemaps]'"
        ) from exc
    return opensmile


class EGeMAPSExtractor(AudioExtractor):
    name = "egemaps"

    def __init__(self, pooling: str | None = None, layer: int | None = None, device: str = "cpu"):
        if pooling not in (None, "mean", "functionals"):
            raise ConfigError(f"expected no --audio-pooling for egemaps (it computes its own functionals), got {pooling!r}")
        if layer is not None:
            raise ConfigError(f"expected no --audio-layer for egemaps (it has no layers), got {layer!r}")
        self.device = device  # unused: openSMILE runs on the CPU
        self._smile = None

    def __getstate__(self):
        return {**self.__dict__, "_smile": None}

    def config(self) -> dict[str, Any]:
        version = getattr(_opensmile(), "__version__", None)
        return {
            "extractor": self.name,
            "feature_set": FEATURE_SET,
            "opensmile_version": version,
            "pooling": "functionals",
            "sample_rate": SR,
            "dim": DIM,
        }

    @property
    def dim(self) -> int:
        return DIM

    @property
    def sample_rate(self) -> int:
        return SR

    def load(self) -> None:
        if self._smile is None:
            smile = _opensmile()
            self._smile = smile.Smile(
                feature_set=smile.FeatureSet.eGeMAPSv02,
                feature_level=smile.FeatureLevel.Functionals,
            )

    def feature_names(self) -> list[str]:
        self.load()
        return list(self._smile.feature_names)

    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        self.load()
        out = np.zeros((len(waves), DIM), dtype=np.float32)
        for i, wave in enumerate(waves):
            with _SMILE_LOCK:
                frame = self._smile.process_signal(np.asarray(wave, dtype=np.float32), SR)
            out[i] = frame.to_numpy(dtype=np.float32).reshape(-1)
        return out
