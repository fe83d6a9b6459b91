"""The integer model is exact: numpy bit-packed inference equals the torch model on every input."""

import numpy as np
import pytest
import torch

from bnnembed.model.intmodel import BoundNet, Decision, IntLayer, bound_scores, combine, decide, forward_trace
from bnnembed.model.packing import pack_bits
from bnnembed.learn.train import TrainConfig, fold_batchnorm, torch_hidden_bits, torch_scores, train_bound
from bnnembed.model.intmodel import flip_output


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (4000, 75)).astype(np.uint8)
    target = bits[:, :9].sum(1) + bits[:, 40] * 3 > 5
    model = train_bound(bits[:2000], target[:2000], TrainConfig(hidden=(48, 33), epochs=4, seed=1))
    return model, bits


def test_numpy_equals_torch_on_thousands_of_inputs(trained):
    model, bits = trained
    rng = np.random.default_rng(7)
    more = rng.integers(0, 2, (6000, bits.shape[1])).astype(np.uint8)
    allbits = np.concatenate([bits, more])
    net = fold_batchnorm(model, "yes")
    assert np.array_equal(torch_scores(model, allbits), bound_scores(net, allbits))
    for t_bits, n_bits in zip(torch_hidden_bits(model, allbits), forward_trace(net, allbits)):
        assert np.array_equal(t_bits, n_bits)


def test_fold_handles_negative_scale_and_constant_neurons(trained):
    model, bits = trained
    with torch.no_grad():
        bn = model.norms[0].bn
        bn.weight[:10] = -bn.weight[:10].abs()  # negative BatchNorm scale -> flipped weights
        bn.weight[10] = 0.0  # constant neuron
        bn.bias[10] = -1.0  # always fires
        bn.weight[11] = 0.0
        bn.bias[11] = 1.0  # never fires
    net = fold_batchnorm(model, "yes")
    assert net.layers[0].thresholds[10] == 0 and net.layers[0].thresholds[11] == bits.shape[1] + 1
    assert np.array_equal(torch_scores(model, bits), bound_scores(net, bits))
    for t_bits, n_bits in zip(torch_hidden_bits(model, bits), forward_trace(net, bits)):
        assert np.array_equal(t_bits, n_bits)


def test_exhaustive_small_net_against_brute_force():
    rng = np.random.default_rng(3)
    n_in = 10
    w1 = rng.integers(0, 2, (6, n_in)).astype(np.uint8)
    t1 = rng.integers(0, n_in + 2, 6)
    w2 = rng.integers(0, 2, (1, 6)).astype(np.uint8)
    net = BoundNet("yes", (IntLayer(n_in, pack_bits(w1), t1), IntLayer(6, pack_bits(w2), np.array([3]))))
    allx = ((np.arange(2 ** n_in)[:, None] >> np.arange(n_in)) & 1).astype(np.uint8)
    h = ((allx[:, None, :] == w1[None]).sum(-1) >= t1).astype(np.uint8)
    score = (h[:, None, :] == w2[None]).sum(-1)[:, 0]
    assert np.array_equal(bound_scores(net, allx), score)


def test_flip_output_reverses_the_score(trained):
    model, bits = trained
    net = fold_batchnorm(model, "yes")
    flipped = flip_output(net, "no")
    assert np.array_equal(bound_scores(flipped, bits), net.score_range - bound_scores(net, bits))


def test_combine_truth_table():
    yes = np.array([0, 1, 0, 1], bool)
    no = np.array([0, 0, 1, 1], bool)
    assert combine(yes, no).tolist() == [Decision.UNKNOWN, Decision.YES, Decision.NO, Decision.UNKNOWN]


def test_decide_matches_answers(trained):
    model, bits = trained
    up = fold_batchnorm(model, "yes")
    lo = flip_output(up, "no").with_tau(up.score_range - up.tau + 5)
    dec = decide(up, lo, bits)
    s = bound_scores(up, bits)
    assert np.all((dec == Decision.YES) == ((s >= up.tau) & ~(up.score_range - s >= lo.tau)))


def test_layer_validation():
    with pytest.raises(ValueError):
        IntLayer(33, np.zeros((2, 1), np.uint32), np.zeros(2))
    with pytest.raises(ValueError):
        IntLayer(3, np.array([[0b1000]], np.uint32), np.zeros(1))  # padding bit set
