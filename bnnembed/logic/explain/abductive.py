"""Abductive explanations (sufficient reasons), by deletion over features.

For an input with feature levels ``v`` and a *target* that holds on it (bound states such as
"the upper bound answers yes"), find a subset-minimal set ``S`` of features such that every valid
input agreeing with ``v`` on ``S`` (each feature of ``S`` inside its current interval, every other
feature anywhere) keeps the target, i.e. ``CNF AND x_S = v_S AND NOT target`` is UNSAT::

    order  <- features, least relevant first (how far moving it alone lowers the target's margin)
    S      <- all features                                   # sufficient: the input itself
    # phase 1, cheap and sound: free a feature while interval propagation still proves the target
    for f in order:
        if IBP proves target with S \\ {f} pinned:  S <- S \\ {f}
    # phase 2, exact: plain deletion with the oracle (a SAT probe for counterexamples, then the
    # exact branch and bound of bab.py for proofs, then SAT with the rest of the conflict budget)
    for f in order, f in S:
        if a numpy attack breaks the target with S \\ {f} pinned:  keep f     # no oracle call needed
        elif the oracle proves the target with S \\ {f} pinned:      S <- S \\ {f}
    return S

``S`` stays sufficient throughout (phase 1 only drops what interval propagation proves, phase 2
only what the oracle proves), and it is minimal: a feature kept at its test was needed for a
superset of the final ``S``, so by monotonicity it is needed for ``S``.
"""

from __future__ import annotations

import time

import numpy as np

from .oracle import Oracle, Target, ranges_fixed


def abductive(oracle: Oracle, levels: np.ndarray, target: Target,
              seconds: float | None = None) -> tuple[list[int], list[int]]:
    """A sufficient set of (kept) features for ``target`` at ``levels``, and the features whose
    removal could not be decided within the budgets (kept, conservatively). When that second
    list is empty the set is subset-minimal. ``seconds`` bounds the exact phase: when it runs
    out, the features not yet tested are kept and listed as undecided."""
    levels = np.asarray(levels, dtype=np.int64)
    if not oracle.replay.holds(levels, target)[0]:
        raise ValueError("the target does not hold on this input")
    worst, drop = oracle.replay.worst_levels(levels, target)
    order = [int(f) for f in np.argsort(drop, kind="stable")]
    S = set(range(oracle.n_features))

    # phase 1: interval propagation, incremental first-layer sums per target bound
    boxes = oracle.boxes
    sums = {}
    for b, _ in target:
        cmin = np.zeros(oracle.nets[b].layers[0].n_out, np.int64)
        for f in range(oracle.n_features):
            cmin += boxes[b].column_range(f, int(levels[f]), int(levels[f]))[0]
        sums[b] = [cmin, cmin.copy()]
    for f in order:
        trial = {}
        for b, _ in target:
            fixed = boxes[b].column_range(f, int(levels[f]), int(levels[f]))[0]
            lo, hi = boxes[b].column_range(f, 0, int(oracle.n_levels[f]))
            trial[b] = (sums[b][0] - fixed + lo, sums[b][1] - fixed + hi)
        oracle.stats.ibp_checks += 1
        if all(boxes[b].certain(*trial[b], answers) for b, answers in target):
            S.discard(f)
            for b in trial:
                sums[b] = list(trial[b])

    # phase 2: deletion with the exact oracle
    undecided = []
    deadline = None if seconds is None else time.perf_counter() + seconds
    oracle.box_search.deadline = deadline
    for f in order:
        if f not in S:
            continue
        if deadline is not None and time.perf_counter() > deadline:
            undecided.append(f)
            continue
        rest = S - {f}
        free = [g for g in range(oracle.n_features) if g not in rest]
        if oracle.replay.attack(levels, free, worst, target) is not None:
            continue
        verdict, _ = oracle.check(ranges_fixed(levels, rest), target)
        if verdict is True:
            S = rest
        elif verdict is None:
            undecided.append(f)
    oracle.box_search.deadline = None
    return sorted(S), undecided
