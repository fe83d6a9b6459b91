"""Robustness: can the target break when every feature moves a little?

"A little" is either ``R`` thermometer steps (feature ``f`` at level ``v_f`` may take any level in
``[v_f - R, v_f + R]``) or an absolute amount ``delta`` per feature (any level reachable by a value
in ``[x_f - delta_f, x_f + delta_f]``, found by encoding those two values). Then::

    ranges <- per feature, the allowed levels
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


def radius_ranges(oracle: Oracle, levels: np.ndarray, radius: int) -> dict[int, tuple[int, int]]:
    """Levels within ``radius`` thermometer steps of ``levels``."""
    if radius < 0:
        raise ValueError("radius must be >= 0")
    return {f: (max(0, int(levels[f]) - radius), min(int(oracle.n_levels[f]), int(levels[f]) + radius))
            for f in range(oracle.n_features)}


def delta_ranges(oracle: Oracle, x: np.ndarray, delta) -> dict[int, tuple[int, int]]:
    """Levels reachable by moving each raw feature by at most ``delta`` (scalar or per column)."""
    x = np.asarray(x, dtype=np.float32)
    d = np.broadcast_to(np.asarray(delta, dtype=np.float32), x.shape)
    lo = oracle.enc.levels(oracle.enc.encode((x - d)[None, :]))[0]
    hi = oracle.enc.levels(oracle.enc.encode((x + d)[None, :]))[0]
    return {f: (int(lo[f]), int(hi[f])) for f in range(oracle.n_features)}


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
