"""Robustness: can the target break when every feature moves inside a domain?

The domain (:mod:`~bnnembed.logic.explain.domain`) is ``R`` thermometer steps (feature ``f`` at
level ``v_f`` may take any level in ``[v_f - R, v_f + R]``) or an absolute amount ``delta`` per
feature (the levels whose cell meets ``[x_f - delta, x_f + delta]``). Then::

    ranges <- per feature, the domain's levels
    if IBP proves the target on ranges:          robust        (sound shortcut, no SAT call)
    w <- the oracle on ranges (SAT probe, exact branch and bound, SAT)
    if proven:                                   robust
    elif SAT:                                    not robust, counterexample levels w
    else (node, conflict or time budget out):    unknown

The caller turns ``w`` into a raw input within the budget and replays it through numpy.
"""

from __future__ import annotations

import time

import numpy as np

from .oracle import Oracle, Target


def robust(oracle: Oracle, ranges: dict[int, tuple[int, int]], target: Target,
           seconds: float | None = None) -> tuple[bool | None, np.ndarray | None]:
    """``(True, None)`` if the target holds for every valid input within ``ranges``,
    ``(False, levels)`` with a counterexample, ``(None, None)`` if the budgets ran out
    (``seconds`` bounds the branch and bound)."""
    oracle.stats.ibp_checks += 1
    if all(oracle.boxes[b].entails(ranges, answers) for b, answers in target):
        return True, None
    oracle.box_search.deadline = None if seconds is None else time.perf_counter() + seconds
    try:
        return oracle.check(ranges, target)
    finally:
        oracle.box_search.deadline = None
