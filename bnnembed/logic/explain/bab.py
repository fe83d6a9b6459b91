"""Exact box queries by branch and bound over feature levels, in numpy.

The question every explanation asks is *does a target (bound states) hold on every valid input
whose feature levels lie in a box* ``lo_f <= level_f <= hi_f``? A CDCL solver answers it on the
exact CNF, but on dense XNOR layers its learnt clauses are over input bits and it ends up
enumerating the free inputs one full network propagation at a time. This module answers the same
question exactly, and usually thousands of times faster, by splitting the box over feature levels:

- **bound** a box: the first layer's agreement count of every neuron is a *separable* sum over
  features, so its exact minimum and maximum over the box are sums of per-feature minima and maxima
  over the allowed levels (a table of ``neurons x levels``); neurons that surely fire or surely
  stay silent then bound the next layers by interval propagation. If the target's bounds are
  proven, the whole box is settled (sound);
- **leaf**: a box of at most ``leaf_points`` level combinations is run through the numpy
  reference in one batch (exact);
- **split** otherwise on the free feature that moves the undecided first-layer neurons most,
  halving its level range; depth first, so a counterexample is found early.

Every verdict is exact: ``True`` when every leaf is proven or enumerated, ``False`` with levels
that the numpy reference confirms break the target, ``None`` only when the node budget (or the caller's deadline) ran out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class BoxStats:
    queries: int = 0
    nodes: int = 0
    points: int = 0
    undecided: int = 0


class BoxSearch:
    """Branch and bound over one oracle's feature levels (see the module docstring)."""

    def __init__(self, oracle, leaf_points: int = 64, node_budget: int = 200_000) -> None:
        self.o = oracle
        self.leaf_points = leaf_points
        self.node_budget = node_budget
        self.stats = BoxStats()
        self.deadline: float | None = None  # time.perf_counter() value after which queries give up

    # ---------------------------------------------------------------- bounding
    def feature_ranges(self, b, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per first-layer neuron and feature, the min and max agreement the feature adds over
        its allowed levels: two ``(n_neurons, n_features)`` arrays."""
        return self.o.boxes[b].feature_ranges(lo, hi)

    def column_range(self, b, f: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Min and max agreement feature ``f`` at levels ``lo..hi`` adds to each first-layer neuron."""
        return self.o.boxes[b].column_range(f, lo, hi)

    def bound_box(self, b, answers: bool, mn: np.ndarray, mx: np.ndarray):
        """``(state, unstable)`` of bound ``b`` on a box given its per-feature first-layer ranges
        ``mn``/``mx``: state +1 if the bound surely keeps ``answers`` on the box, -1 if it surely
        breaks it everywhere, 0 if undecided; ``unstable`` marks the first-layer neurons that may
        go either way (used to pick a split) and ``room`` how far the output's count range reaches
        past its threshold on the breaking side (used to visit the likelier child first)."""
        return self.o.boxes[b].state(mn, mx, answers)

    # ---------------------------------------------------------------- search
    def decide(self, lo: np.ndarray, hi: np.ndarray, target) -> tuple[bool | None, np.ndarray | None]:
        """Does ``target`` hold on every valid input with levels in ``[lo, hi]``? ``(True, None)``,
        ``(False, levels)`` with a counterexample confirmed by numpy, or ``(None, None)`` when the
        node budget ran out.

        Each node carries, per target bound, the ``(neurons, features)`` min/max tables of its box,
        so a child only recomputes the column of the feature it split."""
        self.stats.queries += 1
        lo = np.asarray(lo, np.int64).copy()
        hi = np.asarray(hi, np.int64).copy()
        bad = self.greedy_attack(lo, hi, target)
        if bad is not None:
            return False, bad
        tabs = {b: self.feature_ranges(b, lo, hi) for b, _ in target}
        stack = [(lo, hi, tabs, self._evaluate(target, lo, tabs))]
        nodes = 0
        while stack:
            lo, hi, tabs, evals = stack.pop()
            nodes += 1
            self.stats.nodes += 1
            if nodes > self.node_budget or (self.deadline is not None and nodes % 16 == 0
                                             and time.perf_counter() > self.deadline):
                self.stats.undecided += 1
                return None, None
            if evals is None:  # one bound surely breaks on the whole box
                return False, lo.copy()
            spread, _ = evals
            if spread is None:  # proven
                continue
            width = hi - lo
            size = float(np.prod((width + 1).astype(np.float64)))
            if size <= self.leaf_points:
                bad = self._enumerate(lo, hi, target)
                if bad is not None:
                    return False, bad
                continue
            spread = np.where(width > 0, spread.astype(np.float64) + 1e-3 * width, -1.0)
            f = int(np.argmax(spread))
            mid = (int(lo[f]) + int(hi[f])) // 2
            children = []
            for a, z in ((int(lo[f]), mid), (mid + 1, int(hi[f]))):
                clo, chi = lo.copy(), hi.copy()
                clo[f], chi[f] = a, z
                ctabs = {}
                for b in tabs:
                    mn, mx = tabs[b][0].copy(), tabs[b][1].copy()
                    mn[:, f], mx[:, f] = self.column_range(b, f, a, z)
                    ctabs[b] = (mn, mx)
                children.append((clo, chi, ctabs, self._evaluate(target, clo, ctabs)))
            stack.extend(children[::-1])  # lower levels first (measured: fewer nodes than by room)
        return True, None

    def _evaluate(self, target, lo: np.ndarray, tabs):
        """Bound a node: None if some target bound surely breaks on the whole box (``lo`` is then a
        counterexample, checked by numpy), else ``(spread, room)``: ``spread`` the per-feature
        split scores (None when every target bound is proven) and ``room`` the breaking room."""
        spread, room = None, 0.0
        for b, answers in target:
            mn, mx = tabs[b]
            state, unstable, r = self.bound_box(b, answers, mn, mx)
            if state == -1 and not self.o.replay.holds(lo[None, :], target)[0]:
                return None
            if state != 1:
                rng = mx - mn
                sc = rng[unstable].sum(0) if unstable is not None and unstable.any() else rng.sum(0)
                spread = sc if spread is None else spread + sc
                room = max(room, r)
        return spread, room

    def greedy_attack(self, lo: np.ndarray, hi: np.ndarray, target, start: np.ndarray | None = None,
                      passes: int = 12) -> np.ndarray | None:
        """Local search for a counterexample in the box: from ``start`` (default: the middle),
        repeatedly take the single-feature level change that most lowers the target's margin.
        Refutations are most of an explanation's queries, and this finds them in a few batched
        numpy evaluations where depth-first splitting needs thousands of nodes."""
        x = ((lo + hi) // 2) if start is None else np.clip(start, lo, hi)
        free = np.flatnonzero(hi > lo)
        if free.size == 0:
            return None
        cur = float(self.o.replay.margin(x[None, :], target)[0])
        for _ in range(passes):
            if cur < 0:
                return x
            moves = [(f, L) for f in free for L in range(int(lo[f]), int(hi[f]) + 1) if L != x[f]]
            cand = np.repeat(x[None, :], len(moves), axis=0)
            for k, (f, L) in enumerate(moves):
                cand[k, f] = L
            m = self.o.replay.margin(cand, target)
            k = int(np.argmin(m))
            if m[k] >= cur:
                break
            x, cur = cand[k], float(m[k])
        return x if cur < 0 else None

    def _enumerate(self, lo: np.ndarray, hi: np.ndarray, target) -> np.ndarray | None:
        free = np.flatnonzero(hi > lo)
        grids = np.meshgrid(*[np.arange(lo[f], hi[f] + 1) for f in free], indexing="ij")
        size = grids[0].size if free.size else 1
        rows = np.repeat(lo[None, :], size, axis=0)
        for f, g in zip(free, grids):
            rows[:, f] = g.reshape(-1)
        self.stats.points += size
        ok = self.o.replay.holds(rows, target)
        if ok.all():
            return None
        return rows[int(np.flatnonzero(~ok)[0])]
