"""The one standardiser: constant dimensions keep unit scale, streamed and in-memory fits agree."""

import numpy as np
import pytest

from mirage.featstore.errors import ConfigError
from mirage.featstore.standardize import Standardizer


def _rows(seed=0, n=1000):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32)
    x[:, 2] = -41.7  # a constant dimension far from 0 (a log-mel band of silence)
    return x


def test_constant_dimension_keeps_unit_scale_in_memory_and_streamed():
    x = _rows()
    x64 = x.astype(np.float64)
    streamed = Standardizer.from_moments(len(x), x64.sum(0), np.square(x64).sum(0))
    for s in (Standardizer.fit(x), streamed):
        # Σx²/n − mean² leaves rounding noise (~6e-6 here) for the constant column: it must not
        # become the divisor that blows that noise up to unit variance
        assert s.scale[2] == 1.0
        assert np.all(np.isfinite(s.transform(x)))
        assert np.allclose(s.transform(x)[:, 2], 0.0, atol=1e-5)


def test_streamed_fit_matches_in_memory_fit_and_inverse_round_trips():
    x = _rows(1)
    x64 = x.astype(np.float64)
    a = Standardizer.fit(x)
    b = Standardizer.from_moments(len(x), x64.sum(0), np.square(x64).sum(0))
    assert np.allclose(a.mean, b.mean) and np.allclose(a.scale, b.scale, rtol=1e-5)
    z = a.transform(x)
    assert np.allclose(z[:, [0, 1, 3]].std(0), 1.0, atol=1e-4)
    assert np.allclose(a.inverse(z), x, atol=1e-4)


def test_identity_and_empty_input():
    assert np.array_equal(Standardizer.identity(3).transform(np.ones((2, 3))), np.ones((2, 3), np.float32))
    with pytest.raises(ConfigError, match="at least one training row"):
        Standardizer.fit(np.zeros((0, 3)))
    with pytest.raises(ValueError):  # ConfigError subclasses ValueError
        Standardizer.from_moments(0, np.zeros(3), np.zeros(3))
