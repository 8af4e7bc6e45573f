"""The code spec as data and how codes are drawn: label plans (training prior or
balanced), text codes from training items of the same label, and noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mirage.augment.checkpoint import GeneratorBundle
from mirage.augment.seeding import numpy_rng
from mirage.featstore.apportion import largest_remainder


def exact_counts(n: int, p: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``n`` closest to ``n * p`` (largest remainder, ties to lower index)."""
    return largest_remainder(n, p)


@dataclass
class CodeSpec:
    """What G is conditioned on, read from a checkpoint: K classes with a prior, optional
    text codes (one per training item, with the item's label) and the noise size."""

    labels: list[str]
    prior: np.ndarray              # training label prior
    code_labels: np.ndarray        # (N,) label of each text-code row
    noise_dim: int
    text_codes: np.ndarray | None = None   # (N, Dt) raw text embeddings
    text_ids: np.ndarray | None = None     # (N,) identity of each row's sentence

    @classmethod
    def from_bundle(cls, b: GeneratorBundle) -> "CodeSpec":
        t = b.tensors
        return cls(labels=list(b.config["labels"]), prior=np.asarray(b.config["label_prior"], dtype=np.float64),
                   code_labels=t["code_labels"].astype(np.int64), noise_dim=int(b.config["latent"]["noise_dim"]),
                   text_codes=t.get("text_codes"), text_ids=t.get("code_text_ids"))

    def sampling_prior(self, balanced: bool) -> np.ndarray:
        """The label distribution generation draws from (uniform over the trained classes when balanced)."""
        if not balanced:
            return self.prior / self.prior.sum()
        present = (self.prior > 0).astype(np.float64)
        return present / present.sum()

    def label_plan(self, n: int, *, balanced: bool, seed: int) -> np.ndarray:
        """``n`` labels with exact prior proportions in a seeded random order."""
        counts = exact_counts(n, self.sampling_prior(balanced))
        labels = np.repeat(np.arange(len(counts)), counts)
        return labels[numpy_rng(seed, "labels").permutation(n)]

    def code_rows(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each label a random training row of that label (its text is the text code)."""
        rows = np.empty(len(labels), dtype=np.int64)
        for k in np.unique(labels):
            pool = np.flatnonzero(self.code_labels == k)
            where = np.flatnonzero(labels == k)
            rows[where] = pool[rng.integers(0, len(pool), size=len(where))]
        return rows
