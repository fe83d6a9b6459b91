"""The integer model, pinned down for mutation testing: agreement counts, layer outputs and
scores against a brute-force count of equal bits, at word boundaries, across row blocks and at
the uint16 accumulator limit; the validation of layers and bounds; the decision codes."""

import numpy as np
import pytest

from bnnembed.model.intmodel import (BoundNet, Decision, IntLayer, agreement_counts, bound_answers, bound_scores,
                                     combine, decide, forward_trace, invalid_rows, layer_forward)
from bnnembed.model.packing import pack_bits


def _layer(rng, n_in, n_out, thresholds=None):
    w = rng.integers(0, 2, (n_out, n_in)).astype(np.uint8)
    t = rng.integers(0, n_in + 2, n_out) if thresholds is None else thresholds
    return w, IntLayer(n_in, pack_bits(w), t)


def _agree(x, w):
    return (x[:, None, :] == w[None, :, :]).sum(-1)


def test_decision_codes_and_labels():
    assert [int(d) for d in Decision] == [0, 1, 2, 3]
    assert [d.label for d in Decision] == ["no", "yes", "unknown", "invalid"]


def test_invalid_rows():
    X = np.array([[0, 1], [np.nan, 0], [0, np.inf], [-np.inf, 2], [1e39, 0], [-3.4e38, 3.4e38]])
    got = invalid_rows(X)
    assert got.dtype == bool and got.tolist() == [False, True, True, True, True, False]
    cube = np.zeros((3, 2, 2))
    cube[1, 1, 0] = np.nan
    assert invalid_rows(cube).tolist() == [False, True, False]


@pytest.mark.parametrize("n_in", [1, 31, 32, 33, 64, 65, 100])
def test_agreement_counts_equal_brute_force_across_blocks(n_in):
    rng = np.random.default_rng(n_in)
    w, layer = _layer(rng, n_in, 5)
    x = rng.integers(0, 2, (600, n_in)).astype(np.uint8)  # 256 + 256 + 88 rows
    got = agreement_counts(layer, pack_bits(x))
    assert got.dtype == np.int64 and got.shape == (600, 5)
    assert np.array_equal(got, _agree(x, w))
    assert np.array_equal(layer_forward(layer, pack_bits(x)), (_agree(x, w) >= layer.thresholds).astype(np.uint8))
    assert agreement_counts(layer, pack_bits(x[:0])).shape == (0, 5)
    assert np.array_equal(agreement_counts(layer, pack_bits(x[:1])), _agree(x[:1], w))


def test_agreement_counts_beyond_the_uint16_accumulator():
    for n_in in (65535, 65536):
        w = np.ones((1, n_in), np.uint8)
        layer = IntLayer(n_in, pack_bits(w), np.array([0]))
        x = np.zeros((2, n_in), np.uint8)
        x[1, :7] = 1
        assert agreement_counts(layer, pack_bits(x)).tolist() == [[0], [7]]


def test_bound_scores_and_trace_of_a_three_layer_net_equal_brute_force():
    rng = np.random.default_rng(11)
    w1, l1 = _layer(rng, 45, 70)  # 70 hidden: three output words, padded to whole words
    w2, l2 = _layer(rng, 70, 33)
    w3, l3 = _layer(rng, 33, 1, np.array([17]))
    net = BoundNet("yes", (l1, l2, l3))
    x = rng.integers(0, 2, (300, 45)).astype(np.uint8)
    h1 = (_agree(x, w1) >= l1.thresholds).astype(np.uint8)
    h2 = (_agree(h1, w2) >= l2.thresholds).astype(np.uint8)
    score = _agree(h2, w3)[:, 0]
    assert np.array_equal(bound_scores(net, x), score)
    trace = forward_trace(net, x)
    assert len(trace) == 3 and np.array_equal(trace[0], h1) and np.array_equal(trace[1], h2)
    assert np.array_equal(trace[2][:, 0], (score >= 17).astype(np.uint8))
    assert np.array_equal(bound_answers(net, x), score >= 17)
    at = int(np.median(score))  # some rows score exactly tau: they answer
    assert np.array_equal(bound_answers(net.with_tau(at), x), score >= at) and (score == at).any()


def test_layer_and_bound_properties():
    w = np.array([[1, 0, 1], [0, 0, 1]], np.uint8)
    layer = IntLayer(3, pack_bits(w).astype(np.int64), [2, 4])
    assert layer.weights.dtype == np.uint32 and layer.thresholds.dtype == np.int32
    assert layer.n_out == 2 and layer.weight_bits().tolist() == w.tolist()
    assert layer.with_thresholds([0, 1]).thresholds.tolist() == [0, 1]
    assert layer.with_thresholds([0, 1]).weights.tolist() == layer.weights.tolist()
    last = IntLayer(2, pack_bits(np.array([[1, 0]], np.uint8)), [1])
    net = BoundNet("no", (layer, last))
    assert (net.n_in, net.tau, net.score_range, net.shape, net.n_synapses()) == (3, 1, 2, [3, 2, 1], 8)
    assert type(net.tau) is int
    moved = net.with_tau(2)
    assert moved.tau == 2 and moved.answer == "no" and moved.layers[0] is layer and net.tau == 1


def test_layer_validation():
    IntLayer(32, np.full((1, 1), 0xFFFFFFFF, np.uint32), [0])  # no padding: every bit is real
    IntLayer(33, np.array([[0, 1]], np.uint32), [0])  # bit 32 is real
    with pytest.raises(ValueError, match="padding"):
        IntLayer(33, np.array([[0, 2]], np.uint32), [0])
    with pytest.raises(ValueError, match="padding"):
        IntLayer(63, np.array([[0, 0x80000000]], np.uint32), [0])
    with pytest.raises(ValueError, match="does not hold"):
        IntLayer(33, np.zeros((1, 1), np.uint32), [0])
    with pytest.raises(ValueError, match="does not hold"):
        IntLayer(3, np.zeros(1, np.uint32), [0])
    with pytest.raises(ValueError, match="thresholds shape"):
        IntLayer(3, np.zeros((2, 1), np.uint32), [0])


def test_bound_validation():
    one = IntLayer(3, np.zeros((1, 1), np.uint32), [1])
    two = IntLayer(3, np.zeros((2, 1), np.uint32), [1, 1])
    BoundNet("yes", (one,))
    with pytest.raises(ValueError, match="answer"):
        BoundNet("maybe", (one,))
    with pytest.raises(ValueError, match="exactly one neuron"):
        BoundNet("yes", ())
    with pytest.raises(ValueError, match="exactly one neuron"):
        BoundNet("yes", (two,))
    with pytest.raises(ValueError, match="do not chain"):
        BoundNet("yes", (two, one))


def test_combine_and_decide():
    got = combine([False, True, False, True], [False, False, True, True])
    assert got.dtype == np.int8 and got.tolist() == [2, 1, 0, 2]
    up = BoundNet("yes", (IntLayer(2, pack_bits(np.array([[0, 0]], np.uint8)), [2]),))  # yes iff x == 00
    lo = BoundNet("no", (IntLayer(2, pack_bits(np.array([[1, 1]], np.uint8)), [1]),))  # no iff any bit set
    x = np.array([[0, 0], [1, 0], [1, 1]], np.uint8)
    # 00: upper yes, lower 0 agreements -> YES; 10: NO; 11: NO
    assert decide(up, lo, x).tolist() == [1, 0, 0]
    lo2 = lo.with_tau(0)  # the lower bound always says no: 00 is UNKNOWN
    assert decide(up, lo2, x).tolist() == [2, 0, 0]


def test_messages_inputs_of_other_types_and_output_types():
    with pytest.raises(ValueError, match=r"^thresholds shape \(1,\) != \(2,\)$"):
        IntLayer(3, np.zeros((2, 1), np.uint32), [0])
    with pytest.raises(ValueError, match="^padding bits of the weights must be 0$"):
        IntLayer(3, np.array([[0b1000]], np.uint32), [0])
    one = IntLayer(3, np.zeros((1, 1), np.uint32), [1])
    with pytest.raises(ValueError, match="^answer must be 'yes' or 'no'$"):
        BoundNet("Yes", (one,))
    with pytest.raises(ValueError, match="^the last layer of a bound must have exactly one neuron$"):
        BoundNet("no", ())
    # packed words given as another integer type are read by value
    rng = np.random.default_rng(2)
    w, layer = _layer(rng, 40, 3)
    x = rng.integers(0, 2, (20, 40)).astype(np.uint8)
    assert np.array_equal(agreement_counts(layer, pack_bits(x).astype(np.int64)), _agree(x, w))
    assert layer_forward(layer, pack_bits(x)).dtype == np.uint8
    # 0/1 integer answers combine like booleans
    assert combine(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])).tolist() == [2, 1, 0, 2]


def test_invalid_rows_is_silent_on_overflow():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert invalid_rows(np.array([[1e39, 0.0], [1.0, 2.0]])).tolist() == [True, False]
