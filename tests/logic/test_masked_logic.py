"""Masked layers in the logic engines: the MILP rows of a bound and the explainer's native
cardinality oracle force exactly the numpy reference's outputs (every input of tiny nets)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from _bound_rows import assert_rows_force_the_numpy_score
from bnnembed.artifact import Artifact
from bnnembed.logic.explain.oracle import Backend, Bound, Oracle
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import BoundNet, IntLayer, bound_answers, bound_scores, flip_output
from bnnembed.model.packing import pack_bits


def _masked_bound(rng, widths, answer="yes") -> BoundNet:
    layers = []
    for a, b in zip(widths, widths[1:]):
        m = rng.integers(0, 2, (b, a)).astype(np.uint8)
        if b >= 3:
            m[0], m[1] = 1, 0  # reads every bit / reads none
        w = rng.integers(0, 2, (b, a)).astype(np.uint8) & m
        T = np.array([rng.integers(0, n + 2) for n in m.sum(1)], np.int32)
        layers.append(IntLayer(a, pack_bits(w), T, pack_bits(m)))
    return BoundNet(answer, tuple(layers))


@pytest.mark.parametrize("seed", [0, 1])
def test_bound_rows_force_the_numpy_score_masked(seed):
    assert_rows_force_the_numpy_score(_masked_bound(np.random.default_rng(seed), (6, 5, 4, 1)))


@pytest.mark.parametrize("one_network", [False, True])
@pytest.mark.parametrize("backend", list(Backend))
def test_oracle_backends_force_the_numpy_answers_masked(backend, one_network):
    """Every level code of a 3-feature thermometer pinned: the solver's bound outputs are the
    numpy answers (both the CNF and the native cardinality backend), for a pair and for one network
    read both ways."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    enc, _ = fit_thermometer(X, 3)
    upper = _masked_bound(rng, (enc.n_bits, 6, 4, 1), "yes")
    lower = flip_output(upper, "no") if one_network else _masked_bound(rng, (enc.n_bits, 5, 1), "no")
    K = np.diff(enc.offsets)
    levels = np.array(list(itertools.product(*[range(k + 1) for k in K])))
    bits = enc.bits_from_levels(levels)
    if one_network:  # the lower's tau at its median score, so its answer varies over the codes
        lower = lower.with_tau(int(np.median(bound_scores(lower, bits))))
    art = Artifact("", {"model_hash": "masked", "features": {"names": ["a", "b", "c"]}}, enc, upper, lower)
    want = {Bound.UPPER: bound_answers(upper, bits), Bound.LOWER: bound_answers(lower, bits)}
    with Oracle(art, backend=backend) as o:
        outs = {b: o.output(b) for b in (Bound.UPPER, Bound.LOWER)}
        for r, lv in enumerate(levels):
            assumptions = o.assumptions({f: (int(L), int(L)) for f, L in enumerate(lv)})
            assert o.solver.solve(assumptions=assumptions)
            model = set(o.solver.get_model())
            for b, lit in outs.items():
                assert (lit in model) == bool(want[b][r]), (b, lv)
    if one_network:
        assert 0 < want[Bound.LOWER].mean() < 1  # the lower bound's answer varies
