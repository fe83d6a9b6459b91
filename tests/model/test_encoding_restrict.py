"""Thermometer.restrict: an encoder reading fewer features encodes exactly the kept columns of the
full one, with the ordinary format."""

from __future__ import annotations

import numpy as np
import pytest

from bnnembed.model.encoding import Thermometer, fit_thermometer


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(size=(300, 6)), np.zeros((300, 1)), rng.integers(0, 4, (300, 3))], 1)
    enc, dropped = fit_thermometer(X, 4)
    assert dropped == [6]
    return enc, X, rng


@pytest.mark.parametrize("keep", [[0], [2, 5], [8, 0, 3], list(range(9))])
def test_restricted_encoder_encodes_exactly_the_kept_columns(fitted, keep):
    enc, X, rng = fitted
    sub = enc.restrict(keep)
    ks = sorted(set(keep))
    assert sub.n_kept == len(ks) and sub.n_features == enc.n_features
    np.testing.assert_array_equal(sub.feature_index, enc.feature_index[ks])
    more = np.concatenate([X, rng.normal(scale=3, size=(200, X.shape[1]))]).astype(np.float32)
    cols = enc.bit_columns(keep)
    np.testing.assert_array_equal(sub.encode(more), enc.encode(more)[:, cols])
    for i, f in enumerate(ks):  # each kept feature keeps its thresholds and intervals
        np.testing.assert_array_equal(sub.feature_thresholds(i), enc.feature_thresholds(f))
        assert sub.interval(i, 1) == enc.interval(f, 1)
    np.testing.assert_array_equal(sub.levels(sub.encode(more)), enc.levels(enc.encode(more))[:, ks])


def test_restricted_encoder_round_trips_and_ignores_unread_columns(fitted):
    enc, X, _ = fitted
    sub = enc.restrict([1, 4])
    back = Thermometer.from_arrays(sub.to_arrays())
    for a, b in zip(sub.to_arrays().values(), back.to_arrays().values()):
        np.testing.assert_array_equal(a, b)
    Y = np.array(X, dtype=np.float32)
    unread = np.setdiff1d(np.arange(X.shape[1]), sub.feature_index)
    Y[:, unread] = 1e6  # the features it does not read do not matter
    np.testing.assert_array_equal(sub.encode(Y), sub.encode(X))
    levels = sub.levels(sub.encode(X))
    np.testing.assert_array_equal(sub.bits_from_levels(levels), sub.encode(X))


def test_restrict_refuses_empty_or_unknown_features(fitted):
    enc = fitted[0]
    with pytest.raises(ValueError):
        enc.restrict([])
    with pytest.raises(ValueError):
        enc.restrict([enc.n_kept])
