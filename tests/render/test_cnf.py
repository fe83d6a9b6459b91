"""The CNF of a bound forces exactly the numpy reference's outputs (exhaustively on tiny nets)."""

from __future__ import annotations

import itertools
import json
import os
import sys

import numpy as np
import pytest
from pysat.solvers import Solver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cnf_checker import clause_matrix, cnf_answers, cnf_decisions  # noqa: E402

from bnnembed.artifact import load_artifact  # noqa: E402
from bnnembed.render.cnf import CardEncoding, cnf_path, encode_bound, read_dimacs, split_clauses, write_cnf  # noqa: E402
from bnnembed.learn.data import load_data  # noqa: E402
from bnnembed.model.encoding import fit_thermometer  # noqa: E402
from bnnembed.model.intmodel import BoundNet, IntLayer, bound_answers, forward_trace  # noqa: E402
from bnnembed.model.packing import pack_bits  # noqa: E402


def random_net(shape, rng, answer="yes", masked: bool = False) -> BoundNet:
    """Random bound; ``masked``: every layer reads a random half of its inputs (the first neuron
    of a layer of 3 or more reads all, the second none)."""
    layers = []
    for a, b in zip(shape, shape[1:]):
        w = rng.integers(0, 2, (b, a)).astype(np.uint8)
        if not masked:
            t = rng.integers(-1, a + 2, b)  # includes constant neurons (T <= 0, T > n)
            layers.append(IntLayer(a, pack_bits(w), t))
            continue
        m = rng.integers(0, 2, (b, a)).astype(np.uint8)
        if b >= 3:
            m[0], m[1] = 1, 0
        w &= m
        t = np.array([rng.integers(-1, n + 2) for n in m.sum(1)])  # T in -1..n_j + 1
        layers.append(IntLayer(a, pack_bits(w), t, pack_bits(m)))
    return BoundNet(answer, tuple(layers))


@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
@pytest.mark.parametrize("encoding", list(CardEncoding))
@pytest.mark.parametrize("shape", [[12, 7, 5, 1], [9, 9, 1], [3, 2, 1], [1, 1]])
def test_exhaustive_equivalence(encoding, shape, masked):
    rng = np.random.default_rng(sum(shape))
    net = random_net(shape, rng, masked=masked)
    X = np.array(list(itertools.product([0, 1], repeat=shape[0])), dtype=np.uint8)
    cnf = encode_bound(net, None, encoding)
    answers, hidden, n_solved = cnf_answers(cnf, X, hidden=True)
    assert n_solved == 0, "fixing the inputs must unit-propagate every neuron"
    np.testing.assert_array_equal(answers, bound_answers(net, X))
    for got, ref in zip(hidden, forward_trace(net, X)):
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("masked", [False, True], ids=["dense", "masked"])
@pytest.mark.parametrize("encoding", list(CardEncoding))
def test_cnf_decisions_exhaustive(encoding, masked):
    """The fast bit-parallel check agrees with numpy on every input, every neuron."""
    rng = np.random.default_rng(7)
    net = random_net([11, 9, 6, 1], rng, masked=masked)
    X = np.array(list(itertools.product([0, 1], repeat=11)), dtype=np.uint8)
    cnf = encode_bound(net, None, encoding)
    codes, hidden, n_solved = cnf_decisions(cnf, X, batch=512, hidden=True, sample=X[::97])
    assert n_solved == 0
    np.testing.assert_array_equal(codes, bound_answers(net, X).astype(np.int8))
    for got, ref in zip(hidden, forward_trace(net, X)):
        np.testing.assert_array_equal(got, ref)
    # the DIMACS text read back gives the same answers
    flat = np.array([v for c in cnf.clause_lists() for v in c + [0]], dtype=np.int64)
    np.testing.assert_array_equal(cnf_decisions(cnf, X, flat)[0], codes)


def test_cnf_decisions_catches_broken_cnf():
    """A missing clause leaves the decision open; an extra one removes models: both reported."""
    rng = np.random.default_rng(5)
    net = random_net([10, 6, 1], rng)
    X = np.array(list(itertools.product([0, 1], repeat=10)), dtype=np.uint8)
    cnf = encode_bound(net, None)
    mat = clause_matrix(cnf)
    ref = bound_answers(net, X).astype(np.int8)
    d = abs(cnf.decision)
    weakened = np.delete(mat, np.flatnonzero((np.abs(mat) == d).any(axis=1))[0], axis=0)
    codes, _, n_solved = cnf_decisions(cnf, X, weakened)
    assert n_solved > 0 and set(np.unique(codes[codes != ref])) == {2}
    extra = np.zeros((1, mat.shape[1]), dtype=mat.dtype)
    extra[0, :2] = [-int(cnf.x_vars[0]), -int(cnf.x_vars[1])]  # forbids x0 = x1 = 1
    codes, _, _ = cnf_decisions(cnf, X, np.concatenate([mat, extra]))
    killed = (X[:, 0] == 1) & (X[:, 1] == 1)
    assert np.all(codes[killed] == -1)
    np.testing.assert_array_equal(codes[~killed], ref[~killed])


def test_adder_size_and_order_constraints():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 20)).astype(np.float32)
    enc, _ = fit_thermometer(X, 4)
    net = random_net([enc.n_bits, 64, 16, 1], rng)
    cnf = encode_bound(net, enc, CardEncoding.ADDER)
    assert cnf.n_clauses / net.n_synapses() <= 20
    clauses = list(cnf.clause_lists())
    with Solver(name="g4", bootstrap_with=clauses) as s:
        # a non-thermometer code (bit 1 set, bit 0 clear) is not a model
        assert not s.solve(assumptions=[-int(cnf.x_vars[0]), int(cnf.x_vars[1])])
        assert s.solve(assumptions=[int(cnf.x_vars[0]), -int(cnf.x_vars[1])])


@pytest.mark.parametrize("fixture", ["digits_artifact", "digits_one_artifact"])
def test_artifact_cnf_files(fixture, request):
    digits_artifact = request.getfixturevalue(fixture)  # a pair; one network read both ways
    art = load_artifact(digits_artifact)  # hashes of the registered CNF files verified
    meta = json.load(open(cnf_path(digits_artifact, "cnf.json")))
    assert meta["model_hash"] == art.model_hash
    for name, net in (("upper", art.upper), ("lower", art.lower)):
        vm = meta["bounds"][name]
        n_vars, n_clauses, flat = read_dimacs(cnf_path(digits_artifact, vm["file"]))
        assert (n_vars, n_clauses) == (vm["n_vars"], vm["n_clauses"])
        cnf = encode_bound(net, art.encoder, meta["encoding"])
        assert sorted(map(tuple, split_clauses(flat))) == sorted(map(tuple, cnf.clause_lists()))
        assert vm["decision"] == cnf.decision
        assert [i["var"] for i in vm["inputs"]] == list(range(1, art.encoder.n_bits + 1))
        b = vm["inputs"][0]
        assert b["threshold"] == pytest.approx(float(art.encoder.thresholds[0]))
        assert b["feature"] in art.feature_names


@pytest.mark.parametrize("fixture", ["digits_artifact", "digits_one_artifact"])
def test_equivalence_real_and_random_inputs(fixture, request):
    digits_artifact = request.getfixturevalue(fixture)  # a pair; one network read both ways
    art = load_artifact(digits_artifact)
    ds = load_data("digits")
    rng = np.random.default_rng(0)
    real = art.encoder.encode(ds.X[:300])
    levels = np.stack([rng.integers(0, k + 1, 300) for k in np.diff(art.encoder.offsets)], 1)
    rand = art.encoder.bits_from_levels(levels)
    bits = np.concatenate([real, rand])
    n_vars, _, flat = read_dimacs(cnf_path(digits_artifact, "cnf_upper.cnf"))
    for net in (art.upper, art.lower):
        cnf = encode_bound(net, art.encoder)
        answers, _, n_solved = cnf_answers(cnf, bits)
        assert n_solved == 0
        np.testing.assert_array_equal(answers, bound_answers(net, bits))
    # the DIMACS file itself, read back
    cnf = encode_bound(art.upper, art.encoder)
    answers, _, _ = cnf_answers(cnf, bits[:100], clauses=split_clauses(flat))
    np.testing.assert_array_equal(answers, bound_answers(art.upper, bits[:100]))
    codes, _, n_solved = cnf_decisions(cnf, bits, flat)
    assert n_solved == 0
    np.testing.assert_array_equal(codes, bound_answers(art.upper, bits).astype(np.int8))


def test_write_cnf_other_encoding(tmp_path, bc_artifact):
    import shutil

    d = str(tmp_path / "a")
    shutil.copytree(bc_artifact, d)
    meta = write_cnf(d, "totalizer")
    assert meta["encoding"] == "totalizer"
    load_artifact(d)
