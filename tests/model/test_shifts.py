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


# --------------------------------------------------------------------------------------------
# the decision over copies as one network (expand_copies), stored as the device stores it
# --------------------------------------------------------------------------------------------


def _random_image_bounds(seed: int, one_network: bool, masked: bool):
    from bnnembed.model.encoding import Thermometer

    from firmware_fixtures import one_network_lower, random_bound

    rng = np.random.default_rng(seed)
    X = rng.integers(0, 17, size=(400, 36)).astype(np.float32)  # 6 x 6 images
    X[:40] = 0  # blank images: every copy sees zeros
    enc, _ = fit_thermometer(X, 3)
    # some thresholds at or below 0: a pixel moved in from outside the image then reads 1
    t = enc.thresholds.copy()
    t[::7] = -1.0 - rng.random(len(t[::7])).astype(np.float32)
    t = np.concatenate([np.sort(t[enc.offsets[f]:enc.offsets[f + 1]]) for f in range(enc.n_kept)])
    enc = Thermometer(enc.n_features, enc.feature_index, enc.offsets, t)
    bits = enc.encode(X)
    up = random_bound("yes", bits, (12, 5), rng, 0.6 if masked else None)
    lo = one_network_lower(up) if one_network else random_bound("no", bits, (12, 5), rng, 0.6 if masked else None)
    return X, enc, up, lo


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("one_network,masked,seed", [(True, False, 0), (False, False, 1), (True, True, 2), (False, True, 3)])
def test_expanded_network_scores_are_the_summed_scores(k, one_network, masked, seed):
    """The one network over the copies' grid has, bit for bit, the summed score of the bounds on
    the moved images: pixels moved out of sight (with thresholds below 0, they read 1), masked
    first layers, a pair or one network."""
    from bnnembed.model.shifts import SHIFT_SETS, ShiftCopies, expand_copies

    X, enc, up, lo = _random_image_bounds(seed, one_network, masked)
    cp = ShiftCopies((6, 6), SHIFT_SETS[k], enc, up, lo, one_network)
    wide, eu, el = expand_copies(cp, 7, 9)
    assert (eu.tau, el.tau) == (7, 9)
    wb = wide.encode(X)
    assert np.array_equal(bound_scores(eu, wb), summed_scores(up, enc, X, (6, 6), SHIFT_SETS[k]))
    assert np.array_equal(bound_scores(el, wb), summed_scores(lo, enc, X, (6, 6), SHIFT_SETS[k]))
    assert eu.score_range == k * up.score_range
    if one_network:
        assert all(a is b for a, b in zip(eu.layers[:-1], el.layers[:-1]))
    # every comparison a copy makes is a bit of the grid, and nothing else is
    assert wide.n_bits == sum(len(g) for g in cut_points(enc, (6, 6), SHIFT_SETS[k]))


def test_copies_model_round_trips_as_format_5_and_older_readers_refuse_it(tmp_path, monkeypatch):
    import json

    import bnnembed.artifact as artifact_mod
    from bnnembed.artifact import load_artifact
    from bnnembed.errors import ArtifactError
    from bnnembed.model.model import Model

    art = make_artifact(tmp_path / "c", "digits", one_network=True, copies=3)
    m = art.model
    assert m.copies is not None and m.copies.k == 3 and m.one_network
    arrays = m.to_arrays()
    assert arrays["copies_shifts"].tolist() == [[0, 0], [0, 1], [0, -1]]
    assert arrays["copies_tau"].tolist() == [m.upper.tau, m.lower.tau]
    # stored as the device stores it: the trained encoder's bits, not the copies' grid
    assert int(arrays["upper_l0_n_in"]) == m.copies.encoder.n_bits < m.encoder.n_bits
    back = Model.from_arrays(arrays)
    assert back.model_hash == m.model_hash
    X = load_data("digits").X
    d = back.decide(X)
    assert np.array_equal(d, m.decide(X)) and len(np.unique(d)) == 3
    with open(tmp_path / "c" / "manifest.json") as fh:
        assert json.load(fh)["format_version"] == artifact_mod.FORMAT_VERSION == 5
    monkeypatch.setattr(artifact_mod, "FORMAT_VERSION", artifact_mod.ONE_NETWORK_FORMAT_VERSION)  # a 4 reader
    with pytest.raises(ArtifactError, match=r"artifact format 5 is newer than this bnnembed reads \(4\)"):
        load_artifact(str(tmp_path / "c"))


@pytest.mark.parametrize("shape,shifts,message", [
    ((8, 7), ((0, 0),), "does not hold 64 features"),
    ((8, 8), ((0, 0), (0, 0)), "distinct shifts"),
    ((8, 8), ((0, 8),), "out of sight"),
])
def test_copies_the_runtime_cannot_make_are_refused(tmp_path, shape, shifts, message):
    from bnnembed.model.shifts import ShiftCopies

    art = make_artifact(tmp_path / "a", "digits")
    with pytest.raises(ValueError, match=message):
        ShiftCopies(shape, shifts, art.encoder, art.upper, art.lower, False)


def test_one_network_copies_need_shared_hidden_layers(tmp_path):
    """Stored as one network, a lower bound with hidden layers of its own would lose them."""
    from bnnembed.model.shifts import ShiftCopies

    art = make_artifact(tmp_path / "pair", "digits")  # a pair: the lower bound's own hidden layers
    with pytest.raises(ValueError, match="hidden layers must be the upper's"):
        ShiftCopies((8, 8), ((0, 0), (0, 1)), art.encoder, art.upper, art.lower, True)
