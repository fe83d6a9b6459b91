"""Masked layers in the logic engines: the MILP rows of a bound and the explainer's native
cardinality oracle force exactly the numpy reference's outputs (every input of tiny nets)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnembed.artifact import Artifact
from bnnembed.logic.certify._milp import MilpBuilder
from bnnembed.logic.certify.bound_milp import Bits, bound_rows
from bnnembed.logic.explain.oracle import Backend, Bound, Oracle
from bnnembed.model.encoding import fit_thermometer
from bnnembed.model.intmodel import BoundNet, IntLayer, bound_answers, bound_scores
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
    rng = np.random.default_rng(seed)
    n_in = 6
    net = _masked_bound(rng, (n_in, 5, 4, 1))
    for assignment in itertools.product((0, 1), repeat=n_in):
        a = np.array(assignment, dtype=np.uint8)
        want = int(bound_scores(net, a[None, :])[0])
        for sense in (False, True):
            b = MilpBuilder()
            v = b.add_vars(a.astype(float), a.astype(float), integer=True)
            score, L, U = bound_rows(b, net, Bits(v, np.zeros(n_in, np.int64)))
            assert 0 <= L <= want <= U <= net.score_range
            b.set_objective(score[0], score[1])
            sol = b.solve(5.0, maximize=sense)
            assert sol.status == "optimal"
            assert round(sol.objective + score[2]) == want


@pytest.mark.parametrize("backend", list(Backend))
def test_oracle_backends_force_the_numpy_answers_masked(backend):
    """Every level code of a 3-feature thermometer pinned: the solver's bound outputs are the
    numpy answers (both the CNF and the native cardinality backend)."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    enc, _ = fit_thermometer(X, 3)
    upper = _masked_bound(rng, (enc.n_bits, 6, 4, 1), "yes")
    lower = _masked_bound(rng, (enc.n_bits, 5, 1), "no")
    art = Artifact("", {"model_hash": "masked", "features": {"names": ["a", "b", "c"]}}, enc, upper, lower)
    K = np.diff(enc.offsets)
    levels = np.array(list(itertools.product(*[range(k + 1) for k in K])))
    bits = enc.bits_from_levels(levels)
    want = {Bound.UPPER: bound_answers(upper, bits), Bound.LOWER: bound_answers(lower, bits)}
    with Oracle(art, backend=backend) as o:
        outs = {b: o.output(b) for b in (Bound.UPPER, Bound.LOWER)}
        for r, lv in enumerate(levels):
            assumptions = o.assumptions({f: (int(L), int(L)) for f, L in enumerate(lv)})
            assert o.solver.solve(assumptions=assumptions)
            model = set(o.solver.get_model())
            for b, lit in outs.items():
                assert (lit in model) == bool(want[b][r]), (b, lv)
