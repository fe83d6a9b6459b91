"""``build --features K``: the bounds read at most K features, chosen for both by gate networks,
and the integer model stays exact (numpy = torch = CNF) with the ordinary format."""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from _cnf_checker import cnf_answers
from bnnembed.artifact import load_artifact
from bnnembed.cli.build import feature_count
from bnnembed.learn.build import build_artifact
from bnnembed.learn.config import BuildConfig, config_of
from bnnembed.learn.data import load_data
from bnnembed.learn.train import torch_threads
from bnnembed.learn.select import features_to_keep, select_features
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import bound_answers
from bnnembed.render.cnf import encode_bound


def test_feature_count_argument():
    assert feature_count("12") == 12 and feature_count("0.5") == 0.5
    for bad in ("0", "-3", "1.5", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            feature_count(bad)


def test_features_to_keep():
    assert features_to_keep(32, 64, 60) == 32
    assert features_to_keep(0.5, 64, 60) == 32  # a fraction of the data's columns
    assert features_to_keep(0.25, 30, 30) == 8  # rounded up
    assert features_to_keep(100, 64, 60) == 60  # never more than the encoder keeps
    assert features_to_keep(0.001, 64, 60) == 1


def test_selection_finds_the_features_the_target_depends_on():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 12)).astype(np.float32)
    target = X[:, 3] + X[:, 7] - X[:, 10] > 0
    enc, _ = fit_thermometer(X, 4)
    with torch_threads(1):
        keep, ranking = select_features(enc.encode(X), target, enc.bit_owner(), enc.n_kept, 3,
                                        hidden=(16,), epochs=6, seed=0)
    assert sorted(keep.tolist()) == [3, 7, 10]
    assert sorted(ranking.tolist()) == list(range(12)) and set(ranking[:3].tolist()) == {3, 7, 10}


@pytest.fixture(scope="module")
def sparse_build(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("sparse"))
    ds = load_data("breast_cancer")
    cfg = BuildConfig(hidden=(16,), epochs=3, augment=2, features=5, baseline=False)
    res = build_artifact(ds, out, cfg, progress=False)
    return out, res, ds


def test_sparse_build_reads_at_most_k_features(sparse_build):
    out, res, ds = sparse_build
    art = load_artifact(out)
    assert art.encoder.n_kept == 5 and art.upper.layers[0].n_in == art.encoder.n_bits
    read = [ds.feature_names[c] for c in art.encoder.feature_index]
    assert art.manifest["features"]["read"] == read
    assert art.manifest["features"]["names"] == list(ds.feature_names)  # the input format is unchanged
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["settings"]["features"] == 5 and m["model"]["features_read"] == 5
    assert m["feature_selection"]["ranked"][:5] and set(m["feature_selection"]["ranked"][:5]) == set(read)
    assert config_of(m).features == 5
    # the unread columns do not change any decision
    X = np.array(ds.X, dtype=np.float32)
    unread = np.setdiff1d(np.arange(X.shape[1]), art.encoder.feature_index)
    Y = X.copy()
    Y[:, unread] = np.random.default_rng(1).normal(size=(len(X), len(unread))) * 1e3
    np.testing.assert_array_equal(art.decide(Y), art.decide(X))


def test_sparse_build_is_exact_numpy_torch_cnf(sparse_build):
    out, res, ds = sparse_build
    assert not any(res.metrics["torch_numpy_mismatches"].values())
    assert res.metrics["torch_numpy_rows_checked"] > 0
    art = load_artifact(out)
    rng = np.random.default_rng(0)
    real = art.encoder.encode(ds.X)
    levels = np.stack([rng.integers(0, k + 1, 300) for k in np.diff(art.encoder.offsets)], 1)
    bits = np.concatenate([real, art.encoder.bits_from_levels(levels)])
    for net in (art.upper, art.lower):
        answers, _, n_solved = cnf_answers(encode_bound(net, art.encoder), bits)
        assert n_solved == 0
        np.testing.assert_array_equal(answers, bound_answers(net, bits))


def test_stability_penalty_moves_pre_activations_off_the_threshold_and_stays_exact():
    import torch

    from bnnembed.learn.train import TrainConfig, fold_batchnorm, torch_scores, train_bound
    from bnnembed.model.intmodel import bound_scores

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, (2000, 40)).astype(np.uint8)
    target = bits[:, :7].sum(1) + 2 * bits[:, 30] > 4
    with torch_threads(1):
        plain = train_bound(bits, target, TrainConfig(hidden=(24,), epochs=4, seed=0))
        stable = train_bound(bits, target, TrainConfig(hidden=(24,), epochs=4, seed=0, stability=1.0))
        x = torch.from_numpy(bits.astype(np.float32))
        with torch.no_grad():
            near = [float(m.logit_and_instability(x)[1]) for m in (plain, stable)]
    assert near[1] < near[0]
    assert np.array_equal(torch_scores(stable, bits), bound_scores(fold_batchnorm(stable, "yes"), bits))
