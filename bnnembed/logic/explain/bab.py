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


def level_table(net, enc) -> np.ndarray:
    """``(n_neurons_0, sum_f (K_f + 1))``: the agreement feature ``f`` at level ``L`` adds to each
    first-layer neuron of bound ``net`` (bits below ``L`` are 1 and agree where the weight bit is
    1; bits from ``L`` on are 0 and agree where it is 0)."""
    w = net.layers[0].weight_bits().astype(np.int64)  # (n_out, n_bits)
    cols = []
    for f in range(enc.n_kept):
        lo, hi = int(enc.offsets[f]), int(enc.offsets[f + 1])
        wf = w[:, lo:hi]
        ones = np.concatenate([np.zeros((w.shape[0], 1), np.int64), np.cumsum(wf, 1)], 1)
        zeros_after = np.concatenate([np.cumsum((1 - wf)[:, ::-1], 1)[:, ::-1],
                                      np.zeros((w.shape[0], 1), np.int64)], 1)
        cols.append(ones + zeros_after)  # (n_out, K_f + 1)
    return np.concatenate(cols, 1)


def level_index(n_levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column bookkeeping of a :func:`level_table`: per feature its first column (``starts``), and
    per column its feature (``owner``) and level (``level_of_col``)."""
    widths = np.asarray(n_levels, np.int64) + 1  # levels 0..K_f
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.int64)
    owner = np.repeat(np.arange(len(widths)), widths)
    return starts, owner, np.arange(int(widths.sum())) - starts[owner]


def box_ranges(table: np.ndarray, index, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per first-layer neuron and feature, the min and max agreement the feature adds over its
    levels ``lo..hi``: two ``(n_neurons, n_features)`` arrays (``index`` from :func:`level_index`)."""
    starts, owner, level_of_col = index
    inside = (level_of_col >= lo[owner]) & (level_of_col <= hi[owner])
    big = np.iinfo(np.int64).max // 4
    mn = np.minimum.reduceat(np.where(inside[None, :], table, big), starts, axis=1)
    mx = np.maximum.reduceat(np.where(inside[None, :], table, -big), starts, axis=1)
    return mn, mx


def deeper_layers(net) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The layers after the first as float32 ``(agree-if-on, agree-if-off, thresholds)``."""
    out = []
    for layer in net.layers[1:]:
        w = layer.weight_bits().astype(np.float32)
        out.append((w, 1.0 - w, layer.thresholds.astype(np.float32)))
    return out


def output_count_range(mn: np.ndarray, mx: np.ndarray, T0: np.ndarray, deeper) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sound bounds ``(lo, hi)`` of the last layer's agreement counts over a box with per-feature
    first-layer ranges ``mn``/``mx`` (exact first layer, interval propagation through neurons
    that surely fire or stay silent), and the first-layer neurons that may go either way."""
    cmin, cmax = mn.sum(1), mx.sum(1)
    on = (cmin >= T0).astype(np.float32)
    off = (cmax < T0).astype(np.float32)
    unstable0 = (on + off) == 0
    lo_c = hi_c = None
    for k, (w1, w0, T) in enumerate(deeper):
        if k:
            on, off = (lo_c >= T_prev).astype(np.float32), (hi_c < T_prev).astype(np.float32)
        lo_c = w1 @ on + w0 @ off
        hi_c = lo_c + float(len(on) - on.sum() - off.sum())
        T_prev = T
    return lo_c, hi_c, unstable0


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
        self.index = level_index(oracle.n_levels)
        self.starts = self.index[0]
        self._hidden: dict = {}

    # ---------------------------------------------------------------- bounding
    def _layers(self, b):
        """Hidden and output layers of bound ``b`` (:func:`deeper_layers`), cached."""
        if b not in self._hidden:
            self._hidden[b] = deeper_layers(self.o.nets[b])
        return self._hidden[b]

    def feature_ranges(self, b, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per first-layer neuron and feature, the min and max agreement the feature adds over
        its allowed levels: two ``(n_neurons, n_features)`` arrays."""
        return box_ranges(self.o._level_table(b), self.index, lo, hi)

    def column_range(self, b, f: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Min and max agreement feature ``f`` at levels ``lo..hi`` adds to each first-layer neuron."""
        part = self.o._level_table(b)[:, self.starts[f] + lo : self.starts[f] + hi + 1]
        return part.min(1), part.max(1)

    def bound_box(self, b, answers: bool, mn: np.ndarray, mx: np.ndarray):
        """``(state, unstable)`` of bound ``b`` on a box given its per-feature first-layer ranges
        ``mn``/``mx``: state +1 if the bound surely keeps ``answers`` on the box, -1 if it surely
        breaks it everywhere, 0 if undecided; ``unstable`` marks the first-layer neurons that may
        go either way (used to pick a split) and ``room`` how far the output's count range reaches
        past its threshold on the breaking side (used to visit the likelier child first)."""
        layers = self._layers(b)
        lo_c, hi_c, unstable0 = output_count_range(mn, mx, self.o.nets[b].layers[0].thresholds, layers)
        T = layers[-1][2]
        fires, silent = bool(lo_c[0] >= T[0]), bool(hi_c[0] < T[0])
        if (fires and answers) or (silent and not answers):
            return 1, None, 0.0
        if (fires and not answers) or (silent and answers):
            return -1, None, 0.0
        # how far the output's count range reaches past its threshold on the breaking side
        room = float(T[0] - lo_c[0]) if answers else float(hi_c[0] - T[0] + 1)
        return 0, unstable0, room

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
            if state == -1 and not self.o.holds(lo[None, :], target)[0]:
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
        cur = float(self.o.margin(x[None, :], target)[0])
        for _ in range(passes):
            if cur < 0:
                return x
            moves = [(f, L) for f in free for L in range(int(lo[f]), int(hi[f]) + 1) if L != x[f]]
            cand = np.repeat(x[None, :], len(moves), axis=0)
            for k, (f, L) in enumerate(moves):
                cand[k, f] = L
            m = self.o.margin(cand, target)
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
        ok = self.o.holds(rows, target)
        if ok.all():
            return None
        return rows[int(np.flatnonzero(~ok)[0])]
