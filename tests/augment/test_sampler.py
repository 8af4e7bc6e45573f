"""A fitted generator sampled in memory (``mirage.FittedGenerator.sample``)."""

from __future__ import annotations

import numpy as np
import pytest

from mirage.augment.sampler import FittedGenerator
from mirage.featstore.errors import ConfigError
from mirage.featstore.store import open_store


def test_sample_gives_store_space_rows_for_the_asked_labels(trained_model, store_path):
    gen = FittedGenerator(str(trained_model))
    batch = gen.sample(12, labels="angry" if "angry" in gen.labels else gen.labels[0], seed=3)
    store = open_store(str(store_path))
    assert batch.audio.shape == (12, store.dim("audio")) and batch.audio.dtype == np.float32
    assert len(set(batch.labels)) == 1 and batch.mi_score.shape == (12,)
    again = gen.sample(12, labels=batch.labels, seed=3)
    np.testing.assert_array_equal(again.audio, batch.audio)
    other = gen.sample(12, labels=batch.labels, seed=4)
    assert not np.allclose(other.audio, batch.audio)
    real = store.read("audio")
    assert abs(float(batch.audio.mean()) - float(real.mean())) < 3 * float(real.std())  # in the store's space, not z-scores


def test_sample_draws_labels_from_the_prior_and_checks_names(trained_model):
    gen = FittedGenerator(str(trained_model))
    drawn = gen.sample(40, seed=0)
    assert set(drawn.labels) <= set(gen.labels) and len(drawn.labels) == 40
    with pytest.raises(ConfigError, match="labels"):
        gen.sample(3, labels=["nope"] * 3)
    with pytest.raises(ConfigError, match="positive integer"):
        gen.sample(0)
