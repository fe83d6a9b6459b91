"""``build --design``: what decides the design, the one network's widths, and what the artifact
records. Sharing is decided by the tables (same weights, thresholds and masks), never assumed."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bnnembed.artifact import load_artifact
from bnnembed.learn.config import (BuildConfig, _dense_bounds, auto_design, auto_hidden, config_of,
                                   design_hidden)
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import BoundNet, IntLayer, flip_output, same_layer, shares_hidden
from bnnembed.model.model import Model
from bnnembed.model.packing import n_words, pack_bits
from bnnembed.render.c import decision_macs, row_word_defines
from bnnembed.render.footprint import model_footprint


def _layer(n_in, n_out, seed, mask=None, t=1):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 2, (n_out, n_in), dtype=np.uint8)
    if mask is not None:
        w &= mask
    return IntLayer(n_in, pack_bits(w), np.full(n_out, t, np.int32), None if mask is None else pack_bits(mask))


def test_same_layer_compares_weights_thresholds_and_masks():
    a = _layer(40, 6, 0)
    assert same_layer(a, _layer(40, 6, 0)) and not same_layer(a, _layer(40, 6, 1))
    assert not same_layer(a, _layer(40, 6, 0, t=2))  # all-zero placeholders differing in thresholds
    ones = np.ones((6, 40), np.uint8)
    half = ones.copy()
    half[:, 20:] = 0
    # equal weights and thresholds, different masks (the weights are 0 outside both masks)
    m1, m2 = _layer(40, 6, 0, mask=half), _layer(40, 6, 0, mask=half)
    assert same_layer(m1, m2)
    other = half.copy()
    other[0, 39] = 1
    w = m1.weight_bits()
    assert not same_layer(m1, IntLayer(40, pack_bits(w), m1.thresholds, pack_bits(other)))
    # no mask against an all-ones mask: the same function, stored differently, so not shared
    dense = _layer(40, 6, 0)
    assert not same_layer(dense, IntLayer(40, dense.weights, dense.thresholds, pack_bits(ones)))


def test_shares_hidden_needs_every_hidden_layer():
    h1, h2, out = _layer(40, 8, 0), _layer(8, 4, 1), _layer(4, 1, 2)
    up = BoundNet("yes", (h1, h2, out))
    assert shares_hidden(up, flip_output(up, "no"))
    assert not shares_hidden(up, BoundNet("no", (h1, _layer(8, 4, 3), out)))
    assert not shares_hidden(up, BoundNet("no", (h1, _layer(8, 1, 4))))  # fewer layers
    assert not shares_hidden(BoundNet("yes", (_layer(40, 1, 5),)), BoundNet("no", (_layer(40, 1, 5),)))


def test_a_stored_pair_stays_a_pair_byte_for_byte():
    """A pair whose hidden tables happen to be equal, stored in full (as before one-network
    artifacts existed), loads as a pair and serialises to the same bytes (the same hash)."""
    enc, _ = fit_thermometer(np.random.default_rng(0).normal(size=(100, 5)), 3)
    h, out = _layer(enc.n_bits, 6, 0), _layer(6, 1, 1)
    up, lo = BoundNet("yes", (h, out)), BoundNet("no", (_layer(enc.n_bits, 6, 0), _layer(6, 1, 2)))
    from bnnembed.model.model import bound_to_arrays
    full = {**enc.to_arrays(), **bound_to_arrays(up, "upper_"), **bound_to_arrays(lo, "lower_")}
    m = Model.from_arrays(full)
    assert not m.one_network and m.design == "pair" and "lower_shared_layers" not in m.to_arrays()
    fresh = Model(enc, up, lo)  # a new model with equal tables is one network
    assert fresh.one_network and "lower_shared_layers" in fresh.to_arrays()
    with pytest.raises(ValueError, match="every hidden layer"):
        Model.from_arrays({**fresh.to_arrays(), "lower_shared_layers": np.array(0 + 2, np.int32)})


def test_design_defaults():
    """Images get one network, tables the pair; one network keeps the pair's widths (half the
    pair's flash), and --flash-budget sizes the chosen design."""
    assert auto_design(True) == "one" and auto_design(False) == "pair"
    for n_features, k in ((30, 5), (100, 7)):  # under and over 512 input bits
        enc, _ = fit_thermometer(np.random.default_rng(0).normal(size=(300, n_features)), k)
        for design in ("one", "pair"):
            assert design_hidden(BuildConfig(design=design), enc) == auto_hidden(enc.n_bits)
        pair = model_footprint(enc, *_dense_bounds(enc, auto_hidden(enc.n_bits))).flash_bytes
        one = model_footprint(enc, *_dense_bounds(enc, auto_hidden(enc.n_bits), one_network=True)).flash_bytes
        assert one < pair
        # the same budget holds a wider one network than pair
        wide_one = design_hidden(BuildConfig(design="one", flash_budget=pair), enc)
        assert design_hidden(BuildConfig(design="pair", flash_budget=pair), enc) == auto_hidden(enc.n_bits)
        assert wide_one[0] > auto_hidden(enc.n_bits)[0]


def test_macs_and_row_lengths_count_shared_layers_once():
    enc, _ = fit_thermometer(np.random.default_rng(0).normal(size=(100, 90)), 8)  # 720 bits: 23 words
    up, lo_pair = _dense_bounds(enc, (416, 416))
    one_up, one_lo = _dense_bounds(enc, (416, 416), one_network=True)
    hidden = enc.n_bits * 416 + 416 * 416
    assert decision_macs(up, lo_pair) == 2 * (hidden + 416)
    assert decision_macs(one_up, one_lo) == hidden + 2 * 416
    assert decision_macs(one_up, one_lo, hidden_only=True) == hidden
    m = Model(enc, one_up, one_lo)
    assert row_word_defines(m) == {"BNN_ROW_WORDS_0": "13u", "BNN_ROW_WORDS_1": f"{n_words(enc.n_bits)}u"}
    many = BoundNet("yes", tuple(_layer(a, b, i) for i, (a, b) in enumerate(
        zip([enc.n_bits, 300, 200, 100, 40, 20], [300, 200, 100, 40, 20, 1]))))
    assert row_word_defines(Model(enc, many, flip_output(many, "no"))) == {}  # five lengths: every shape


def test_one_network_artifact_records_its_design(digits_one_artifact):
    art = load_artifact(digits_one_artifact)
    b = art.manifest["bounds"]
    assert b["design"] == "one" and b["lower"]["hidden_layers_of"] == "upper" and art.model.one_network
    m = art.metrics
    assert m["model"]["design"] == m["settings"]["design"] == "one" and m["baseline"] is None
    assert m["model"]["asymmetry"] == 1.0
    cfg = config_of(m)
    assert cfg.design == "one" and cfg.hidden == (64, 32)
    assert 0.5 < m["bnn_agreement"] <= 1.0
    with open(os.path.join(digits_one_artifact, "manifest.json")) as fh:
        assert json.load(fh)["format_version"] == 4
