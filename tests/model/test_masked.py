"""Masked layers (a neuron reads only the input bits of its mask): the numpy reference against a
plain per-bit sum, the canonical-form checks, serialisation (npz, artifact format) and the
interval engine's soundness on a masked bound."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

from bnnembed.artifact import DENSE_FORMAT_VERSION, MASKED_FORMAT_VERSION, load_artifact, write_artifact
from bnnembed.errors import ArtifactError
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intervals import LevelBoxes
from bnnembed.model.intmodel import (BoundNet, IntLayer, agreement_counts, bound_answers, bound_scores,
                                     forward_trace)
from bnnembed.model.model import Model
from bnnembed.model.packing import pack_bits


def masked_layer(rng, n_in: int, n_out: int, density: float = 0.5, t_lo: int = -1) -> IntLayer:
    """Random masked layer: weights 0 outside the mask, thresholds over 0..n_j + 1 (and beyond)."""
    m = (rng.random((n_out, n_in)) < density).astype(np.uint8)
    if n_out >= 3:
        m[0], m[1] = 1, 0  # reads every bit / reads none
    w = rng.integers(0, 2, (n_out, n_in)).astype(np.uint8) & m
    n_read = m.sum(1)
    t = np.array([rng.integers(t_lo, n + 2) for n in n_read], np.int32)
    return IntLayer(n_in, pack_bits(w), t, pack_bits(m))


def masked_net(shape, rng, answer="yes", density=0.5, dense_layers=()) -> BoundNet:
    layers = []
    for i, (a, b) in enumerate(zip(shape, shape[1:])):
        if i in dense_layers:
            w = rng.integers(0, 2, (b, a)).astype(np.uint8)
            layers.append(IntLayer(a, pack_bits(w), rng.integers(-1, a + 2, b)))
        else:
            layers.append(masked_layer(rng, a, b, density))
    return BoundNet(answer, tuple(layers))


def _reference_counts(layer: IntLayer, bits: np.ndarray) -> np.ndarray:
    """sum over the read bits of [a_i == w_ji], bit by bit."""
    w, r = layer.weight_bits().astype(np.int64), layer.read_bits().astype(np.int64)
    agree = (bits[:, None, :].astype(np.int64) == w[None, :, :]).astype(np.int64)
    return (agree * r[None, :, :]).sum(-1)


@pytest.mark.parametrize("n_in", [1, 31, 32, 33, 64, 65, 130])
def test_agreement_counts_read_only_the_mask(n_in):
    rng = np.random.default_rng(n_in)
    layer = masked_layer(rng, n_in, 7)
    bits = rng.integers(0, 2, (300, n_in)).astype(np.uint8)
    got = agreement_counts(layer, pack_bits(bits))
    np.testing.assert_array_equal(got, _reference_counts(layer, bits))
    assert (got <= layer.n_read[None, :]).all()
    np.testing.assert_array_equal(layer.n_read, layer.read_bits().sum(1))
    # a full mask is the dense layer
    full = IntLayer(n_in, layer.weights, layer.thresholds, pack_bits(np.ones((7, n_in), np.uint8)))
    dense = IntLayer(n_in, layer.weights, layer.thresholds)
    np.testing.assert_array_equal(agreement_counts(full, pack_bits(bits)), agreement_counts(dense, pack_bits(bits)))


def test_unread_bits_do_not_matter():
    rng = np.random.default_rng(3)
    net = masked_net([10, 6, 1], rng, density=0.4)
    X = np.array(list(itertools.product([0, 1], repeat=10)), dtype=np.uint8)
    s = bound_scores(net, X)
    assert s.min() >= 0 and s.max() <= net.score_range == int(net.layers[-1].n_read[0])
    unread = np.flatnonzero(net.layers[0].read_bits().sum(0) == 0)
    if len(unread):  # flipping a bit no first-layer neuron reads changes nothing
        Y = X.copy()
        Y[:, unread] ^= 1
        np.testing.assert_array_equal(bound_scores(net, Y), s)


def test_canonical_form_is_checked():
    w = pack_bits(np.array([[1, 0, 1]], np.uint8))
    with pytest.raises(ValueError, match="outside the mask"):
        IntLayer(3, w, np.array([1], np.int32), pack_bits(np.array([[1, 1, 0]], np.uint8)))
    with pytest.raises(ValueError, match="mask shape"):
        IntLayer(3, w, np.array([1], np.int32), np.zeros((2, 1), np.uint32))
    with pytest.raises(ValueError, match="padding bits of the mask"):
        IntLayer(3, w, np.array([1], np.int32), np.array([[0xFF]], np.uint32))
    layer = IntLayer(3, w, np.array([1], np.int32), pack_bits(np.array([[1, 0, 1]], np.uint8)))
    assert layer.with_thresholds(np.array([2])).mask is not None


def _encoder_and_nets(rng, bits_per_feature=3, n_features=4, masked=True):
    X = rng.normal(size=(300, n_features)).astype(np.float32)
    enc, _ = fit_thermometer(X, bits_per_feature)
    make = (lambda a: masked_net([enc.n_bits, 6, 5, 4, 1], rng, a, 0.5, dense_layers=(1,))) if masked else \
        (lambda a: masked_net([enc.n_bits, 5, 1], rng, a, 1.0, dense_layers=(0, 1)))
    return X, enc, make("yes"), make("no")


def test_serialisation_round_trip_and_format(tmp_path):
    rng = np.random.default_rng(0)
    X, enc, up, lo = _encoder_and_nets(rng)
    model = Model(enc, up, lo)
    arrays = model.to_arrays()
    assert "upper_l0_mask" in arrays and "upper_l1_mask" not in arrays and "upper_l3_mask" in arrays
    back = Model.from_arrays(arrays)
    assert back.model_hash == model.model_hash
    for a, b in zip(back.upper.layers + back.lower.layers, up.layers + lo.layers):
        assert (a.mask is None) == (b.mask is None)
        if a.mask is not None:
            np.testing.assert_array_equal(a.mask, b.mask)
            assert not a.mask.flags.writeable
    np.testing.assert_array_equal(back.decide(X), model.decide(X))
    # the artifact: format 3 with masks, and a reader of format 2 refuses it in one line
    d = str(tmp_path / "masked")
    write_artifact(d, {"features": {"names": ["a", "b", "c", "d"]}}, enc, up, lo)
    art = load_artifact(d)
    assert art.manifest["format_version"] == MASKED_FORMAT_VERSION == 3
    assert art.model_hash == model.model_hash
    np.testing.assert_array_equal(art.decide(X), model.decide(X))
    import bnnembed.artifact as artifact_mod

    old = artifact_mod.FORMAT_VERSION
    artifact_mod.FORMAT_VERSION = DENSE_FORMAT_VERSION
    try:
        with pytest.raises(ArtifactError, match=r"artifact format 3 is newer than this bnnembed reads \(2\); upgrade"):
            load_artifact(d)
    finally:
        artifact_mod.FORMAT_VERSION = old


def test_dense_artifact_keeps_format_2(tmp_path):
    rng = np.random.default_rng(1)
    X, enc, up, lo = _encoder_and_nets(rng, masked=False)
    d = str(tmp_path / "dense")
    write_artifact(d, {"features": {"names": ["a", "b", "c", "d"]}}, enc, up, lo)
    with open(os.path.join(d, "manifest.json")) as fh:
        assert json.load(fh)["format_version"] == DENSE_FORMAT_VERSION == 2
    assert not any(k.endswith("_mask") for k in Model(enc, up, lo).to_arrays())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interval_engine_sound_on_masked_bounds(seed):
    """Every input of a random level box scores inside the engine's range, the first layer's
    counts inside its per-neuron ranges, and a box it calls certain is decided that way."""
    rng = np.random.default_rng(seed)
    _, enc, up, lo = _encoder_and_nets(rng, bits_per_feature=3, n_features=4)
    K = np.diff(enc.offsets)
    certain = 0
    for bound in (up, lo):
        boxes = LevelBoxes(bound, enc)
        for _ in range(40):
            a = np.array([rng.integers(0, k + 1) for k in K])
            b = np.array([rng.integers(x, k + 1) for x, k in zip(a, K)])
            grid = np.array(list(itertools.product(*[range(int(x), int(y) + 1) for x, y in zip(a, b)])))
            bits = enc.bits_from_levels(grid)
            s = bound_scores(bound, bits)
            s_lo, s_hi, _ = boxes.score_range(a, b)
            assert s_lo <= s.min() and s.max() <= s_hi
            cmin, cmax = boxes.first_layer_range({f: (int(a[f]), int(b[f])) for f in range(enc.n_kept)})
            c0 = agreement_counts(bound.layers[0], pack_bits(bits))
            assert (cmin[None, :] <= c0).all() and (c0 <= cmax[None, :]).all()
            trace = forward_trace(bound, bits)
            for (fires, silent), h in zip(boxes.stable(a, b), trace):  # a dense, then a masked layer
                h = h.astype(bool)
                assert h[:, fires].all() and not h[:, silent].any()
            answers = bound_answers(bound, bits)
            for want in (True, False):
                if boxes.entails({f: (int(a[f]), int(b[f])) for f in range(enc.n_kept)}, want):
                    certain += 1
                    assert (answers == want).all()
            # a single point: the engine is exact there
            if len(grid) == 1:
                assert s_lo == s_hi == s[0]
    assert certain > 0
