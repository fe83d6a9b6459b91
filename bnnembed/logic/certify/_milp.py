"""A small builder for mixed-integer programs, solved with HiGHS through highspy.

Variables and rows are accumulated in Python (rows as sparse index/value arrays) and handed to
HiGHS in one column-wise matrix (:meth:`MilpBuilder.highs_lp`, the one place it is assembled).
Solves run single-threaded under a time limit. Coefficients HiGHS would ignore are replaced by
a relaxation of their row (see ``SMALL_COEFFICIENT``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

import numpy as np

INF = float("inf")
# HiGHS silently ignores matrix entries below this (its ``small_matrix_value``); ``add_row``
# drops them itself and widens the row by the dropped terms' range over the variables' bounds,
# so every model handed to HiGHS is a relaxation of the one asked for: an infeasible verdict
# (a certificate) stays sound, and solutions are replayed anyway.
SMALL_COEFFICIENT = 1e-9
_BANNER_DONE = False


def _new_highs():
    """A silent HiGHS instance (the first construction in a process prints a banner on stdout,
    which would corrupt ``--json`` output, so stdout is redirected around it)."""
    global _BANNER_DONE
    import highspy

    if _BANNER_DONE:
        h = highspy.Highs()
    else:
        sys.stdout.flush()
        saved = os.dup(1)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        _BANNER_DONE = True
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    return h


@dataclass
class Solution:
    """Outcome of a MILP solve."""

    status: str  # "infeasible", "optimal", "feasible" (time limit with a solution), "timeout", "error"
    x: np.ndarray | None
    objective: float | None
    dual_bound: float | None
    seconds: float
    nodes: int = 0


class MilpBuilder:
    """Accumulates variables ``lb <= x <= ub`` (optionally integer) and rows ``lo <= a.x <= hi``."""

    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integer: list[bool] = []
        self.cost: list[float] = []
        self._ri: list[np.ndarray] = []
        self._rv: list[np.ndarray] = []
        self.row_lo: list[float] = []
        self.row_hi: list[float] = []

    @property
    def n_vars(self) -> int:
        return len(self.lb)

    @property
    def n_binaries(self) -> int:
        return int(sum(self.integer))

    def add_vars(self, lb, ub, integer: bool = False) -> np.ndarray:
        lb = np.atleast_1d(np.asarray(lb, dtype=np.float64))
        ub = np.atleast_1d(np.asarray(ub, dtype=np.float64))
        lb, ub = np.broadcast_arrays(lb, ub)
        start = len(self.lb)
        self.lb.extend(lb.tolist())
        self.ub.extend(ub.tolist())
        self.integer.extend([integer] * len(lb))
        self.cost.extend([0.0] * len(lb))
        return np.arange(start, start + len(lb))

    def add_row(self, idx, val, lo: float = -INF, hi: float = INF) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        val = np.asarray(val, dtype=np.float64)
        if len(idx) != len(np.unique(idx)):  # merge repeated variables
            idx, inv = np.unique(idx, return_inverse=True)
            val = np.bincount(inv, weights=val, minlength=len(idx))
        tiny = (val != 0) & (np.abs(val) < SMALL_COEFFICIENT)
        if tiny.any():  # relax the row by the dropped terms' range instead of letting HiGHS drop them
            lb = np.asarray(self.lb)[idx[tiny]]
            ub = np.asarray(self.ub)[idx[tiny]]
            v = val[tiny]
            ends = np.stack([v * lb, v * ub])  # v != 0, so an infinite bound gives +-inf, not nan
            if np.isfinite(lo):
                lo -= float(ends.max(0).sum())
            if np.isfinite(hi):
                hi -= float(ends.min(0).sum())
        keep = (val != 0) & ~tiny
        self._ri.append(idx[keep])
        self._rv.append(val[keep])
        self.row_lo.append(float(lo))
        self.row_hi.append(float(hi))

    def set_objective(self, idx, val) -> None:
        self.cost = [0.0] * len(self.lb)
        for i, v in zip(np.asarray(idx).tolist(), np.asarray(val, dtype=np.float64).tolist()):
            self.cost[i] += v

    def highs_lp(self, *, maximize: bool = False):
        """The model as one ``highspy.HighsLp``: bounds, costs, rows as a column-wise matrix, and
        integrality when some variable is integer (for :meth:`solve`, or for a caller that keeps
        one HiGHS instance and changes its objective, as the LP tightening does)."""
        import highspy

        lp = highspy.HighsLp()
        n, m = len(self.lb), len(self.row_lo)
        lp.num_col_, lp.num_row_ = n, m
        lp.col_cost_ = np.asarray(self.cost, dtype=np.float64)
        lp.col_lower_ = np.asarray(self.lb, dtype=np.float64)
        lp.col_upper_ = np.asarray(self.ub, dtype=np.float64)
        lp.row_lower_ = np.asarray(self.row_lo, dtype=np.float64)
        lp.row_upper_ = np.asarray(self.row_hi, dtype=np.float64)
        if maximize:
            lp.sense_ = highspy.ObjSense.kMaximize
        if m:
            rows = np.concatenate([np.full(len(i), r, dtype=np.int64) for r, i in enumerate(self._ri)])
            cols = np.concatenate(self._ri)
            vals = np.concatenate(self._rv)
        else:
            rows = cols = np.zeros(0, np.int64)
            vals = np.zeros(0)
        order = np.lexsort((rows, cols))
        counts = np.bincount(cols, minlength=n)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        lp.a_matrix_.index_ = rows[order].astype(np.int32)
        lp.a_matrix_.value_ = vals[order]
        if any(self.integer):
            lp.integrality_ = [highspy.HighsVarType.kInteger if b else highspy.HighsVarType.kContinuous
                               for b in self.integer]
        return lp

    def solve(self, time_limit: float, *, maximize: bool = False, objective_target: float | None = None,
              mip_rel_gap: float | None = None, verbose: bool = False) -> Solution:
        import highspy

        t0 = time.perf_counter()
        h = _new_highs()
        h.setOptionValue("time_limit", float(max(time_limit, 0.01)))
        if verbose:
            h.setOptionValue("output_flag", True)
        if mip_rel_gap is not None:
            h.setOptionValue("mip_rel_gap", float(mip_rel_gap))
        if objective_target is not None:
            # HiGHS minimises internally; the target is in the user's objective sense
            h.setOptionValue("objective_target", float(objective_target))
        lp = self.highs_lp(maximize=maximize)
        if h.passModel(lp) == highspy.HighsStatus.kError:
            raise RuntimeError("HiGHS refused the model (see its log)")
        h.run()
        ms = h.getModelStatus()
        info = h.getInfo()
        S = highspy.HighsModelStatus
        has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value, dtype=np.float64) if has_sol else None
        obj = float(info.objective_function_value) if has_sol else None
        dual = float(info.mip_dual_bound) if any(self.integer) else obj
        nodes = int(getattr(info, "mip_node_count", 0))
        if ms == S.kInfeasible:
            status = "infeasible"
        elif ms == S.kOptimal:
            status = "optimal"
        elif has_sol:
            status = "feasible"
        elif ms in (S.kTimeLimit, S.kInterrupt, S.kSolutionLimit, S.kIterationLimit):
            status = "timeout"
        else:
            status = "error:" + h.modelStatusToString(ms)
        return Solution(status, x, obj, dual, time.perf_counter() - t0, nodes)
