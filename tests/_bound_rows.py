"""A bound's MILP rows checked against numpy on every input of a tiny net (dense or masked)."""

from __future__ import annotations

import itertools

import numpy as np

from bnnembed.logic.certify._milp import MilpBuilder
from bnnembed.logic.certify.bound_milp import Bits, bound_rows
from bnnembed.model.intmodel import BoundNet, bound_scores


def assert_rows_force_the_numpy_score(net: BoundNet) -> None:
    """For every input of ``net``, the rows' score is pinned (min = max) to the numpy score, inside
    the rows' own bounds ``0 <= L <= score <= U <= score_range``."""
    n_in = net.n_in
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
