"""Whole-word input bits: Thermometer.keep_bits encodes exactly the kept columns, and
whole_word_bits / fit_packed_thermometer leave out the least informative bits only when a few bits
spill over a 32-bit word boundary."""

from __future__ import annotations

import numpy as np
import pytest

from bnnembed.model.encoding import fit_packed_thermometer, fit_thermometer, whole_word_bits


def _spilling_rows(n_bits_target: int, rng) -> np.ndarray:
    """Rows whose 1-bit thermometer has ``n_bits_target`` bits (one per non-constant column)."""
    return rng.normal(size=(400, n_bits_target)).astype(np.float32)


def test_keep_bits_encodes_exactly_the_kept_columns_and_drops_emptied_features():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 6, size=(300, 5)).astype(np.float32)
    enc, _ = fit_thermometer(X, 3)
    owner = enc.bit_owner()
    cols = [c for c in range(enc.n_bits) if owner[c] != 2][1:]  # feature 2 loses every bit, feature 0 one
    sub = enc.keep_bits(cols)
    assert sub.n_bits == len(cols) and 2 not in set(sub.feature_index.tolist())
    more = rng.normal(loc=3, scale=3, size=(500, 5)).astype(np.float32)
    np.testing.assert_array_equal(sub.encode(more), enc.encode(more)[:, cols])
    for f in range(sub.n_kept):  # still thermometers: sorted thresholds
        assert np.all(np.diff(sub.feature_thresholds(f)) > 0)
    with pytest.raises(ValueError):
        enc.keep_bits([])
    with pytest.raises(ValueError):
        enc.keep_bits([enc.n_bits])


def test_whole_word_bits_leaves_out_the_least_informative_spill():
    rng = np.random.default_rng(1)
    bits = (rng.random((1000, 67)) < 0.5).astype(np.uint8)
    bits[:, 10] = (rng.random(1000) < 0.01)  # nearly constant: least information
    bits[:, 40] = (rng.random(1000) < 0.02)
    bits[:, 50] = (rng.random(1000) < 0.97)
    keep = whole_word_bits(bits)
    assert len(keep) == 64 and set(range(67)) - set(keep.tolist()) == {10, 40, 50}
    assert np.all(np.diff(keep) > 0)


@pytest.mark.parametrize("n,kept", [(64, 64), (72, 64), (73, 73), (95, 95), (20, 20), (40, 32)])
def test_whole_word_bits_trims_at_most_eight_bits_and_never_below_a_word(n, kept):
    bits = (np.random.default_rng(n).random((200, n)) < 0.3).astype(np.uint8)
    assert len(whole_word_bits(bits)) == kept


def test_fit_packed_thermometer_trims_unless_asked_not_to():
    X = _spilling_rows(66, np.random.default_rng(2))
    X[:, 7] = (np.arange(len(X)) == 3)  # sparse: one threshold, set on one row, trimmed first
    enc, dropped, trimmed, unread = fit_packed_thermometer(X, 1)
    assert (enc.n_bits, trimmed, dropped) == (64, 2, []) and 7 in unread and len(unread) <= 2
    assert 7 not in enc.feature_index.tolist()
    full, _, none, no_unread = fit_packed_thermometer(X, 1, trim=False)
    assert (full.n_bits, none, no_unread) == (66, 0, [])
    keep = whole_word_bits(full.encode(X))
    np.testing.assert_array_equal(enc.encode(X), full.encode(X)[:, keep])
