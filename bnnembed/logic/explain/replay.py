"""The numpy side of the explainer: targets evaluated on feature levels through the integer model.

The SAT oracle (:mod:`~bnnembed.logic.explain.oracle`) decides claims; everything here runs the
bounds' integer model (:mod:`bnnembed.model.intmodel`, the reference every renderer agrees with)
on rows of feature levels instead:

- :meth:`Replay.holds` does a target hold on each row (the check every counterexample passes);
- :meth:`Replay.margin` how far each row is from breaking it (agreement-count units);
- :meth:`Replay.worst_levels` per feature, the level that most lowers the margin when that feature
  alone moves (the explainers' order and attack);
- :meth:`Replay.attack` a cheap counterexample: free features at their worst levels;
- :meth:`Replay.enumerate_box` an exact answer for small boxes by running every point.
"""

from __future__ import annotations

import numpy as np

from ...model.intmodel import agreement_counts, bound_answers, combine, layer_forward
from ...model.packing import pack_bits


class Replay:
    """The numpy reference over feature levels for one artifact's bounds.

    ``nets`` maps each bound (``"upper"`` / ``"lower"``, or the oracle's :class:`Bound` members,
    which are equal strings) to its :class:`~bnnembed.model.intmodel.BoundNet`; ``stats`` (the
    oracle's counters) gets ``attacks`` and ``enumerated`` counted."""

    def __init__(self, enc, nets: dict, stats) -> None:
        self.enc = enc
        self.nets = nets
        self.stats = stats
        self.n_features = enc.n_kept
        self.n_levels = np.diff(enc.offsets).astype(np.int64)  # K_f: levels are 0..K_f

    def bits(self, levels: np.ndarray) -> np.ndarray:
        return self.enc.bits_from_levels(np.atleast_2d(levels))

    def holds(self, levels: np.ndarray, target) -> np.ndarray:
        """Does the target hold (numpy reference) for each row of levels?"""
        bits = self.bits(levels)
        ok = np.ones(len(bits), dtype=bool)
        for b, answers in target:
            ok &= bound_answers(self.nets[b], bits) == answers
        return ok

    def decisions(self, levels: np.ndarray) -> np.ndarray:
        bits = self.bits(levels)
        return combine(bound_answers(self.nets["upper"], bits), bound_answers(self.nets["lower"], bits))

    def margin(self, levels: np.ndarray, target) -> np.ndarray:
        """How far each row is from breaking the target (min over the target's bounds of the
        score distance to the threshold, in agreement-count units; < 0 means broken)."""
        bits = self.bits(levels)
        out = np.full(len(bits), np.inf)
        for b, answers in target:
            net = self.nets[b]
            x = bits
            for layer in net.layers[:-1]:
                x = layer_forward(layer, pack_bits(x))
            score = agreement_counts(net.layers[-1], pack_bits(x))[:, 0]
            m = (score - net.tau) if answers else (net.tau - 1 - score)
            out = np.minimum(out, m)
        return out

    def worst_levels(self, levels: np.ndarray, target, lo: np.ndarray | None = None,
                     hi: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per feature, the level in ``lo..hi`` (default: all its levels) that most lowers the
        target's margin when that feature alone moves from ``levels``, and by how much (the drop);
        used to order features and to attack."""
        F = self.n_features
        lo = np.zeros(F, np.int64) if lo is None else lo
        hi = self.n_levels if hi is None else hi
        cand = [levels.copy()]
        moves = []
        for f in range(F):
            for L in range(int(lo[f]), int(hi[f]) + 1):
                if L != levels[f]:
                    row = levels.copy()
                    row[f] = L
                    cand.append(row)
                    moves.append((f, L))
        cand = np.array(cand)
        margin = self.margin(cand, target)
        base = margin[0]
        best = levels.copy()
        drop = np.zeros(F)
        for (f, L), m in zip(moves, margin[1:]):
            if base - m > drop[f]:
                drop[f] = base - m
                best[f] = L
        return best, drop

    def attack(self, levels: np.ndarray, free: list[int], worst: np.ndarray, target) -> np.ndarray | None:
        """Cheap attack: move the free features to their worst levels (all, then halves);
        return levels breaking the target (confirmed by numpy) or None."""
        self.stats.attacks += 1
        if not free:
            return None
        rows = []
        row = levels.copy()
        row[free] = worst[free]
        rows.append(row)
        for part in (free[: len(free) // 2], free[len(free) // 2 :]):
            if part:
                r = levels.copy()
                r[part] = worst[part]
                rows.append(r)
        rows = np.array(rows)
        ok = self.holds(rows, target)
        bad = np.flatnonzero(~ok)
        return rows[bad[0]] if bad.size else None

    def enumerate_box(self, lo: np.ndarray, hi: np.ndarray, target,
                      max_points: int) -> tuple[bool | None, np.ndarray | None]:
        """Exact answer for the level box ``lo..hi`` by running every level combination through
        the numpy reference, when there are at most ``max_points``; else ``(None, None)``."""
        free = [f for f in range(self.n_features) if hi[f] > lo[f]]
        size = 1
        for f in free:
            size *= int(hi[f]) - int(lo[f]) + 1
            if size > max_points:
                return None, None
        grids = np.meshgrid(*[np.arange(lo[f], hi[f] + 1) for f in free], indexing="ij")
        rows = np.repeat(np.asarray(lo, np.int64)[None, :], size, axis=0)
        for f, g in zip(free, grids):
            rows[:, f] = g.reshape(-1)
        self.stats.enumerated += size
        for start in range(0, size, 4096):
            chunk = rows[start : start + 4096]
            ok = self.holds(chunk, target)
            if not ok.all():
                return False, chunk[np.flatnonzero(~ok)[0]]
        return True, None
