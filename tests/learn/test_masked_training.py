"""Training with a masked (ternary) first layer: the mask grows to the share asked for, and the
folded integer model (masks, per-neuron thresholds over n_j read bits, flipped neurons) agrees
with the torch model on every input checked, hidden bits included."""

from __future__ import annotations

import numpy as np
import torch

from bnnembed.learn.train import (MaskedBinaryDense, TrainConfig, fold_batchnorm, torch_hidden_bits,
                                  torch_scores, train_bound)
from bnnembed.model.intmodel import bound_scores, flip_output, forward_trace


def _data(rng, n=1500, n_bits=40):
    bits = (rng.random((n, n_bits)) < 0.5).astype(np.uint8)
    target = (bits[:, :8].sum(1) + bits[:, 20] * 2 >= 5)
    return bits, target


def test_masked_first_layer_folds_exactly():
    rng = np.random.default_rng(0)
    bits, target = _data(rng)
    cfg = TrainConfig(hidden=(12, 6), epochs=4, batch_size=64, seed=0, mask_first_layer=0.7)
    model = train_bound(bits, target, cfg)
    first = model.hidden[0]
    assert isinstance(first, MaskedBinaryDense)
    share = 1.0 - first.read_bits().mean()
    assert abs(share - 0.7) < 0.02
    with torch.no_grad():  # negative BatchNorm scales: neurons whose folded weights flip within the mask
        for norm in model.norms:
            norm.bn.weight[::3] *= -1
    net = fold_batchnorm(model, "yes")
    layer0 = net.layers[0]
    assert layer0.mask is not None and all(layer.mask is None for layer in net.layers[1:])
    np.testing.assert_array_equal(layer0.read_bits(), first.read_bits())
    assert (layer0.thresholds >= 0).all() and (layer0.thresholds <= layer0.n_read + 1).all()
    X = np.concatenate([bits, (rng.random((4000, bits.shape[1])) < rng.random((4000, 1))).astype(np.uint8)])
    np.testing.assert_array_equal(torch_scores(model, X), bound_scores(net, X))
    for got, want in zip(torch_hidden_bits(model, X), forward_trace(net, X)):
        np.testing.assert_array_equal(got, want)
    # the one-network baseline's reading backwards keeps the masks
    lo = flip_output(net, "no")
    np.testing.assert_array_equal(bound_scores(lo, X), net.score_range - bound_scores(net, X))


def test_dense_training_unchanged_by_the_option():
    """mask_first_layer=0 builds the dense network: no mask anywhere, same scores as before."""
    rng = np.random.default_rng(1)
    bits, target = _data(rng, n=600)
    cfg = TrainConfig(hidden=(8,), epochs=2, batch_size=64, seed=0)
    model = train_bound(bits, target, cfg)
    assert not any(isinstance(layer, MaskedBinaryDense) for layer in model.hidden)
    net = fold_batchnorm(model, "yes")
    assert all(layer.mask is None for layer in net.layers)
    np.testing.assert_array_equal(torch_scores(model, bits), bound_scores(net, bits))


def test_cli_refuses_a_bad_mask_share(tmp_path, capsys):
    from bnnembed.cli import main

    code = main(["build", "--data", "breast_cancer", "--mask-first-layer", "1", "--out", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert code != 0 and "--mask-first-layer must be at least 0 and below 1" in err
    assert len(err.strip().splitlines()) == 1
