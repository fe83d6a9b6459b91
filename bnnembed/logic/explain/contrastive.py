"""Contrastive explanations: a subset-minimal set of features whose change can break the target.

For an input with feature levels ``v``, a target that holds on it and a domain (a level box
around the input, :mod:`~bnnembed.logic.explain.domain`), find a subset-minimal set ``C`` such
that, with every feature outside ``C`` pinned to ``v`` and the features of ``C`` free inside the
domain, some valid input breaks the target, together with such an input (the *witness*). The
question ``q(C)`` ("can freeing ``C`` break it?") is the negation of the abductive one with the
complement pinned, so it is monotone the other way and QuickXplain applies::

    w <- a numpy attack (every feature at its worst level in the domain), else the oracle
    if there is none: no contrastive explanation (the target holds on the whole domain)
    C <- features where w differs from v                       # model-based shrinking
    C <- QuickXplain(q, C, least sensitive last)               # O(k log(|C|/k)) questions
    w <- the witness of q(C)
    if some question ran out of budget: check each feature of C once (pin it: proven -> needed)

Every "yes" of ``q`` comes with a witness the numpy reference confirms, so the final ``C`` has
one; with every answer decided, QuickXplain's result is subset-minimal (each feature of ``C``
pinned, the rest of ``C`` free, was proven not to break the target).
"""

from __future__ import annotations

import numpy as np

from .abductive import Sufficiency
from .domain import Domain
from .oracle import Oracle, Target
from .quickxplain import quickxplain


def contrastive(oracle: Oracle, levels: np.ndarray, target: Target, domain: Domain | None = None,
                seconds: float | None = None):
    """``(C, witness_levels, undecided, info)`` or None when no input of the domain breaks the
    target; ``undecided`` lists features kept in ``C`` because a question ran out of budget (``C``
    is subset-minimal when it is empty); ``info`` counts the questions."""
    import time

    levels = np.asarray(levels, dtype=np.int64)
    domain = domain or Domain.whole(oracle.enc)
    if not oracle.replay.holds(levels, target)[0]:
        raise ValueError("the target does not hold on this input")
    F = oracle.n_features
    deadline = None if seconds is None else time.perf_counter() + seconds
    p = Sufficiency(oracle, levels, target, domain, deadline)
    all_f = frozenset(range(F))
    witness: dict[frozenset, np.ndarray] = {}
    state = {"undecided": False}

    def q(free) -> bool | None:
        """Can the features ``free`` (the others pinned) break the target? (its witness kept)"""
        v = p(all_f - frozenset(free))
        if v is None:
            state["undecided"] = True
            return None
        if v is False:
            witness[frozenset(free)] = p.last_witness
            return True
        return False

    oracle.box_search.deadline = deadline
    try:
        if not q(all_f):
            if state["undecided"]:
                raise TimeoutError("the solver could not find whether any input breaks the target")
            return None
        w = witness[all_f]
        C = [int(f) for f in np.flatnonzero(w != levels)]
        sens = p.sensitivity()
        C.sort(key=lambda f: (-sens[f], -p.drop[f]))  # likeliest to be needed first
        X = quickxplain(q, C, check_empty=False)
        key = frozenset(X)
        if key not in witness and q(key) is not True:  # pragma: no cover - q(X) holds by construction
            X, key = C, frozenset(C)
            if key not in witness:
                q(key)
        w = witness[key]
        X = [int(f) for f in np.flatnonzero(w != levels)]  # the witness may change fewer
        undecided = []
        todo = list(X) if state["undecided"] else []  # some answer was not decided: check each feature
        while todo:
            f = todo.pop(0)
            v = p(all_f - (frozenset(X) - {f}))
            if v is None:
                undecided.append(f)
            elif v is False:  # not needed after all: the new witness changes fewer features
                w = p.last_witness
                X = [int(g) for g in np.flatnonzero(w != levels)]
                todo = [g for g in X if g not in undecided]
                undecided = [g for g in undecided if g in X]
    finally:
        oracle.box_search.deadline = None
    info = {"queries": p.queries, "exact": p.exact, "ibp_proofs": p.ibp_proofs, "attacks": p.attacks_found,
            "strategy": "quickxplain"}
    return sorted(X), w, sorted(undecided), info
