"""Contrastive explanations: a subset-minimal set of features whose change can break the target.

For an input with feature levels ``v`` and a target that holds on it, find a subset-minimal set
``C`` such that, with every feature outside ``C`` pinned to ``v``, some valid input breaks the
target (``CNF AND x_notC = v_notC AND NOT target`` is SAT), together with such an input (the
*witness*)::

    w <- a numpy attack (every feature at its worst level), or SAT with nothing pinned
    if there is none: no contrastive explanation (the target holds on the whole input domain)
    C <- features where w differs from v                     # model-based shrinking
    for f in C, least relevant first:
        pin f too (everything outside C \\ {f} pinned to v):
        w' <- a numpy attack on C \\ {f}, else SAT
        if w' exists:  C <- features where w' differs from v;  w <- w'
    return C, w

Each feature left in ``C`` was tested with a superset of the final ``C`` free and found necessary,
so by monotonicity ``C`` is subset-minimal; the witness changes exactly the features of ``C`` and
is replayed through the numpy reference by the caller.
"""

from __future__ import annotations

import numpy as np

from .oracle import Oracle, Target, ranges_fixed


def contrastive(oracle: Oracle, levels: np.ndarray, target: Target):
    """``(C, witness_levels, undecided)`` or None when no input at all breaks the target;
    ``undecided`` lists features kept in ``C`` because the solver ran out of budget (``C`` is
    subset-minimal when it is empty)."""
    levels = np.asarray(levels, dtype=np.int64)
    if not oracle.replay.holds(levels, target)[0]:
        raise ValueError("the target does not hold on this input")
    worst, drop = oracle.replay.worst_levels(levels, target)
    F = oracle.n_features
    w = oracle.replay.attack(levels, list(range(F)), worst, target)
    if w is None:
        verdict, w = oracle.check({}, target)
        if verdict is True:
            return None
        if verdict is None:
            raise TimeoutError("the solver could not find whether any input breaks the target")
    C = set(np.flatnonzero(w != levels).tolist())
    order = [int(f) for f in np.argsort(drop, kind="stable")]
    undecided = []
    for f in order:
        if f not in C:
            continue
        free = sorted(C - {f})
        pinned = [g for g in range(F) if g not in free]
        cand = oracle.replay.attack(levels, free, worst, target)
        if cand is None:
            verdict, cand = oracle.check(ranges_fixed(levels, pinned), target)
            if verdict is None:
                undecided.append(f)
        if cand is not None:
            w = cand
            C = set(np.flatnonzero(w != levels).tolist())
    return sorted(C), w, undecided
