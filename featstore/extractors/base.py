"""The extractor interface shared by every audio and text embedding backend.

An extractor is a small picklable description (its config) plus lazily loaded weights:
``load()`` is called once per process right before the first ``embed``; nothing is read
from disk at construction, so extractors travel to Dask workers cheaply.
"""

from __future__ import annotations

import abc
import hashlib
import json
from typing import Any

import numpy as np


class Extractor(abc.ABC):
    #: "audio" or "text"
    kind: str = ""
    #: registry name ("logmel", "hf-audio", "minilm", ...)
    name: str = ""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able description stored in the feature store metadata.

        Always has ``extractor`` (name), ``dim`` and, for audio, ``sample_rate``; HF models
        add ``model``, ``revision``, ``layer``, ``pooling``.
        """

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Embedding size (may load the config, never the weights)."""

    def load(self) -> None:
        """Load weights; idempotent. Default: nothing to load."""

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode()).hexdigest()[:16]


class AudioExtractor(Extractor):
    kind = "audio"

    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Rate (Hz) the waves passed to ``embed`` must have."""

    @property
    def layer_states_shape(self) -> tuple[int, int] | None:
        """(L+1, dim) when the extractor keeps every hidden state (``layer="all"``), else None."""
        return None

    @property
    def stored_layer(self) -> int | None:
        """With every state kept: the index that also goes into the 2-D ``audio`` array."""
        return None

    @abc.abstractmethod
    def embed(self, waves: list[np.ndarray]) -> np.ndarray:
        """Embed a batch of 1-D float32 waves at ``sample_rate``; returns (B, dim) float32,
        or (B, L+1, dim) when :attr:`layer_states_shape` is set."""


class TextExtractor(Extractor):
    kind = "text"

    @abc.abstractmethod
    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed a batch of transcripts; returns (B, dim) float32."""
