"""Shifted copies of image inputs (bnnembed.model.shifts): the numpy core of test-time shifts."""

from __future__ import annotations

import numpy as np
import pytest

from bnnembed.learn.data import load_data
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import bound_scores
from bnnembed.model.shifts import OUTSIDE, bit_sources, cut_points, shift_images, summed_scores

from firmware_fixtures import make_artifact


@pytest.fixture(scope="module")
def digits():
    ds = load_data("digits")
    enc, _ = fit_thermometer(ds.X, 3)
    return ds.X.astype(np.float32), enc


def test_shift_images_moves_pixels_and_fills_zeros():
    X = np.arange(1, 13, dtype=np.float32).reshape(1, 12)  # one 3 x 4 image
    im = X.reshape(3, 4)
    right = shift_images(X, (3, 4), 0, 1).reshape(3, 4)
    assert np.array_equal(right[:, 1:], im[:, :-1]) and not right[:, 0].any()
    up = shift_images(X, (3, 4), -1, 0).reshape(3, 4)
    assert np.array_equal(up[:-1], im[1:]) and not up[-1].any()
    assert np.array_equal(shift_images(X, (3, 4), 0, 0), X)
    assert not shift_images(X, (3, 4), 3, 0).any()  # moved out entirely


@pytest.mark.parametrize("dy,dx", [(0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (2, -1)])
def test_bit_sources_are_what_the_encoder_of_the_moved_image_compares(digits, dy, dx):
    """Encoding the moved image equals comparing each bit's source pixel (0 outside) with the bit's
    own threshold: the gather a device or a CNF would do instead of moving pixels."""
    X, enc = digits
    src = bit_sources(enc, (8, 8), dy, dx)
    values = np.where(src[None, :] == OUTSIDE, 0.0, X[:, np.maximum(src, 0)])
    assert np.array_equal(enc.encode(shift_images(X, (8, 8), dy, dx)),
                          (values >= enc.thresholds[None, :]).astype(np.uint8))
    assert (dy, dx) != (0, 0) or not (src == OUTSIDE).any()


def test_summed_scores_of_one_identity_copy_are_the_bound_scores(tmp_path):
    art = make_artifact(tmp_path / "a", "digits")
    X = load_data("digits").X[:300].astype(np.float32)
    assert np.array_equal(summed_scores(art.upper, art.encoder, X, (8, 8), [(0, 0)]),
                          bound_scores(art.upper, art.encoder.encode(X)))
    three = summed_scores(art.upper, art.encoder, X, (8, 8), [(0, 0), (0, 1), (0, -1)])
    by_hand = sum(bound_scores(art.upper, art.encoder.encode(shift_images(X, (8, 8), 0, d))) for d in (0, 1, -1))
    assert np.array_equal(three, by_hand)


def test_cut_points_are_the_encoders_own_for_the_identity_and_finer_for_copies(digits):
    _, enc = digits
    own = cut_points(enc, (8, 8), [(0, 0)])
    for f, col in enumerate(enc.feature_index):
        assert np.array_equal(own[int(col)], enc.feature_thresholds(f))
    finer = cut_points(enc, (8, 8), [(0, 0), (0, 1), (0, -1)])
    assert all(set(own[c].tolist()) <= set(finer[c].tolist()) for c in range(enc.n_features))
    assert sum(map(len, finer)) > sum(map(len, own))
