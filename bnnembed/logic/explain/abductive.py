"""Abductive explanations (sufficient reasons) inside a domain, proven subset-minimal.

For an input with feature levels ``v``, a *target* that holds on it (bound states such as "the
upper bound answers yes") and a :class:`~bnnembed.logic.explain.domain.Domain` (a level box
around the input), find a subset-minimal set ``S`` of features such that every valid input of the
domain agreeing with ``v`` on ``S`` keeps the target (``CNF AND x_S = v_S AND x in domain AND NOT
target`` is UNSAT). One question, :class:`Sufficiency` ``p(S)``, answered cheapest first:

1. the interval engine on the box (a sound proof, no solver call);
2. a numpy attack: the free features at their worst levels in the domain (a counterexample);
3. the oracle's portfolio (SAT probe with the stable neurons fixed, exact branch and bound, SAT).

The search (``strategy``)::

    order  <- features by sensitivity: how far moving the feature alone (inside the domain)
              lowers the target's margin in numpy, then how much freeing it alone widens the
              interval engine's score range (the margin first: it keeps the explanations the
              drop order found before, which the DNN certification tests rely on)
    S      <- all features
    # phase 1, cheap and sound: free a feature while the interval engine still proves the target
    for f in order, least sensitive first:  if IBP proves p(S - {f}):  S <- S - {f}
    # phase 2, exact
    quickxplain (default): S <- QuickXplain(p, S most sensitive first)     # O(k log(n/k)) questions
    deletion:              for f in S, least sensitive first: if p(S - {f}): S <- S - {f}
    # proof of minimality
    for f in S: f is necessary if a counterexample met on the way changes, among S, only f;
                else ask p(S - {f}) (a counterexample proves it; a proof drops f)

``S`` is sufficient because only proven answers remove features, and it is subset-minimal when
every feature has its counterexample: an input of the domain that agrees with ``v`` on ``S - {f}``
and breaks the target (confirmed by the numpy reference). Features whose question ran out of
budget are kept and listed as undecided (the explanation is then not proven minimal).
"""

from __future__ import annotations

import time

import numpy as np

from ...model.intervals import count_range
from .domain import Domain
from .oracle import Oracle, Target
from .quickxplain import quickxplain

STRATEGIES = ("quickxplain", "deletion")


class Sufficiency:
    """``p(S)``: with the features of ``S`` at the input's levels and the others anywhere in the
    domain, does the target hold? True (proven), False (a counterexample, kept in
    :attr:`witnesses`), None (out of budget)."""

    def __init__(self, oracle: Oracle, levels: np.ndarray, target: Target, domain: Domain,
                 deadline: float | None = None) -> None:
        self.o, self.levels, self.target, self.domain = oracle, levels, target, domain
        self.deadline = deadline
        self.worst, self.drop = oracle.replay.worst_levels(levels, target, domain.lo, domain.hi)
        self.witnesses: list[np.ndarray] = []  # per counterexample, the features it changes
        self.queries = self.ibp_proofs = self.attacks_found = self.exact = 0
        self.last_witness: np.ndarray | None = None
        self._kept: list[np.ndarray] = []  # the counterexamples' levels, reused by later attacks

    def __call__(self, S) -> bool | None:
        self.queries += 1
        lo, hi = self.domain.box(self.levels, S)
        if self.ibp(lo, hi):
            self.ibp_proofs += 1
            return True
        w = self.attack(lo, hi)
        if w is not None:
            self.attacks_found += 1
        else:
            if self.deadline is not None and time.perf_counter() > self.deadline:
                return None
            self.exact += 1
            verdict, w = self.o.check({f: (int(a), int(b)) for f, (a, b) in enumerate(zip(lo, hi))}, self.target)
            if verdict is not False:
                return verdict
        self.last_witness = np.asarray(w, np.int64)
        self.witnesses.append(self.last_witness != self.levels)
        self._kept.append(self.last_witness)
        return False

    def attack(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
        """Counterexamples without the oracle, cheapest first (each confirmed by numpy): earlier
        counterexamples cut down to the box (the other features back at the input's levels), the
        free features at their worst levels, then a greedy local search from the input."""
        free = hi > lo
        if not free.any():
            return None
        if self._kept:
            cand = np.where(free[None, :], np.array(self._kept[-64:]), self.levels[None, :])
            bad = np.flatnonzero(~self.o.replay.holds(cand, self.target))
            if bad.size:
                return cand[bad[-1]]
        w = self.o.replay.attack(self.levels, [int(f) for f in np.flatnonzero(free)], self.worst, self.target)
        if w is None:
            w = self.o.box_search.greedy_attack(lo, hi, self.target, start=self.levels)
        return w

    def ibp(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        self.o.stats.ibp_checks += 1
        boxes = self.o.boxes
        return all(boxes[b].state(*boxes[b].feature_ranges(lo, hi), answers)[0] == 1 for b, answers in self.target)

    def sensitivity(self) -> np.ndarray:
        """Per feature, how much freeing it alone inside the domain (every other feature at the
        input's level) widens the target bounds' interval score range."""
        widen = np.zeros(self.o.n_features)
        for b, _ in self.target:
            box = self.o.boxes[b]
            at = box.feature_ranges(self.levels, self.levels)[0]  # (neurons, F) at the input
            mn, mx = box.feature_ranges(self.domain.lo, self.domain.hi)
            base = at.sum(1)
            for f in range(self.o.n_features):
                if self.domain.hi[f] > self.domain.lo[f]:
                    s_lo, s_hi, _ = count_range(base - at[:, f] + mn[:, f], base - at[:, f] + mx[:, f],
                                                box.T0, box.deeper)
                    widen[f] += float(s_hi[0] - s_lo[0])
        return widen

    def necessary(self, f: int, S: set) -> bool:
        """Does a counterexample met so far prove ``f`` necessary in ``S`` (it changes, among
        ``S``, only ``f``)?"""
        idx = np.fromiter(S, np.int64)
        return any(w[f] and int(w[idx].sum()) == 1 for w in self.witnesses)


def abductive(oracle: Oracle, levels: np.ndarray, target: Target, seconds: float | None = None,
              domain: Domain | None = None, strategy: str = "quickxplain") -> tuple[list[int], list[int], dict]:
    """``(S, undecided, info)``: a sufficient set of (kept) features for ``target`` at ``levels``
    inside ``domain`` (default: the whole box), the features kept because their question could
    not be decided within the budgets (``S`` is proven subset-minimal when it is empty), and the
    search's counts (``queries``: sufficiency questions; ``exact``: those that reached the oracle;
    ``ibp_proofs``, ``attacks``, ``phase1_freed``). ``seconds`` bounds the exact phase."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown search strategy {strategy!r}; use one of {STRATEGIES}")
    levels = np.asarray(levels, dtype=np.int64)
    domain = domain or Domain.whole(oracle.enc)
    if not oracle.replay.holds(levels, target)[0]:
        raise ValueError("the target does not hold on this input")
    deadline = None if seconds is None else time.perf_counter() + seconds
    p = Sufficiency(oracle, levels, target, domain, deadline)
    widen = p.sensitivity()
    order = [int(f) for f in np.lexsort((widen, p.drop))]  # least sensitive first
    F = oracle.n_features

    # phase 1: the interval engine frees what it can prove, one feature at a time (incremental sums)
    S = set(range(F))
    boxes = oracle.boxes
    sums = {}
    for b, _ in target:
        cmin = boxes[b].feature_ranges(levels, levels)[0].sum(1)
        sums[b] = [cmin, cmin.copy()]
    for f in order:
        if domain.hi[f] == domain.lo[f]:
            S.discard(f)  # nothing to free: the domain pins it already
            continue
        trial = {}
        for b, _ in target:
            fixed = boxes[b].column_range(f, int(levels[f]), int(levels[f]))[0]
            lo, hi = boxes[b].column_range(f, int(domain.lo[f]), int(domain.hi[f]))
            trial[b] = (sums[b][0] - fixed + lo, sums[b][1] - fixed + hi)
        oracle.stats.ibp_checks += 1
        if all(boxes[b].certain(*trial[b], answers) for b, answers in target):
            S.discard(f)
            for b in trial:
                sums[b] = list(trial[b])
    freed = F - len(S)

    # phase 2: exact search
    oracle.box_search.deadline = deadline
    try:
        if strategy == "quickxplain":
            cand = [f for f in order[::-1] if f in S]  # most sensitive first
            S = set(quickxplain(p, cand, check_empty=True))
        else:
            for f in order:
                if f in S and p(S - {f}) is True:
                    S = S - {f}
        # every kept feature proven necessary by a counterexample (met on the way, or asked now)
        undecided = []
        for f in [g for g in order if g in S]:
            if p.necessary(f, S):
                continue
            verdict = p(S - {f})
            if verdict is True:
                S = S - {f}
            elif verdict is None:
                undecided.append(f)
    finally:
        oracle.box_search.deadline = None
    info = {"queries": p.queries, "exact": p.exact, "ibp_proofs": p.ibp_proofs,
            "attacks": p.attacks_found, "phase1_freed": freed, "strategy": strategy}
    return sorted(S), sorted(undecided), info
