"""Whole-domain soundness of one bound by branch and bound over level boxes (the default engine).

A bound's answer depends only on the *cell* of its input: the level (thermometer interval) of
every kept feature. So the query "is there an input of the domain ``D`` where the upper bound
answers yes and the DNN says no?" splits into boxes of levels, each settled by the cheaper of two
exact arguments:

- **the bound never answers on the box**: the first layer's agreement counts are separable over
  features, so their exact minimum and maximum over a level box are sums of per-feature extremes
  (:func:`bnnembed.logic.explain.bab.level_table`); surely-firing and surely-silent neurons bound the
  deeper layers. If even the largest possible score is below ``tau``, the box is sound;
- **the DNN agrees on the whole box**: :func:`~.dnn_milp.verify_box` on the box's raw inputs
  (interval propagation, an attack, LP-tightened bounds, then the HiGHS MILP). Certified means
  sound on the box, whatever the bound does there.

Otherwise the box is split on one feature's level range. When the DNN verifier refutes a box, its
counterexample ``x`` (replayed through the DNN runtime) is run through the numpy bound: if the
bound answers at ``x``, it is a real counterexample to soundness; the repair then raises ``tau``
to ``score(x) + 1`` and the search goes on from where it is (raising ``tau`` only removes answers,
so every box already settled stays settled). The search ends with an empty stack (the bound is
sound at the final ``tau``, which is then the smallest sound threshold: each raise was forced by
a real counterexample), or at the node / time budget (not certified; the last ``tau`` is a lower
bound of the sound threshold and the open boxes are reported).

Before the search, a falsification pass runs the bound and the DNN on the training rows, on
random points of ``D`` and on random points of the rows' own cells, and raises ``tau`` past the
highest-scoring disagreement it sees: cheap, and it saves most of the search's repair rounds.

Box semantics: a level box ``a_f <= level_f <= b_f`` is the raw box ``[t_(a-1), t_b)`` per kept
feature (clipped to ``D``); the DNN verifier uses the closed box, a superset, so a certificate
covers it; a counterexample on an open face is moved just below it before it is replayed.
Features the encoder dropped range over ``D``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...model.encoding import Thermometer
from ...model.intervals import LevelBoxes
from ...model.intmodel import BoundNet, bound_scores
from .attack import _grad_slack
from .claims import Sides, runtime_says
from .dnn_milp import Status, VerifyConfig, verify_box
from .domain import DomainConfig, DomainResult
from .boxes import level_box
from .plnet import PlNet


@dataclass(frozen=True)
class CellSearchConfig:
    """Budgets of the level-box search (the DNN margin comes from :class:`DomainConfig`)."""

    node_budget: int = 200_000
    node_time: float = 5.0  # seconds of MILP per box (a box that times out is split further)
    leaf_time: float = 30.0  # seconds of MILP on a single cell where the bound answers
    samples: int = 20_000  # random points of the falsification pass
    seed: int = 0


def levels_of(enc: Thermometer, x: np.ndarray) -> np.ndarray:
    """Per kept feature, the level of each raw input row."""
    return enc.levels(enc.encode(np.atleast_2d(x)))


def certify_domain_cells(net: PlNet, dnn, enc: Thermometer, bound: BoundNet, lo, hi,
                         cfg: DomainConfig = DomainConfig(), scfg: CellSearchConfig = CellSearchConfig(),
                         name: str | None = None, X_seen: np.ndarray | None = None,
                         progress=None, collect: list | None = None) -> DomainResult:
    """Prove the bound sound on the box ``[lo, hi]``, raising its tau as real counterexamples
    demand (see the module docstring). Every replayed disagreement the falsification pass and the
    search meet (the bound answering at the then-current tau) is appended to ``collect`` as raw
    float32 rows, for retraining."""
    t0 = time.perf_counter()
    claim = bound.answer
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    sides = Sides.for_net(net.n_out, dnn.positive_columns if net.n_out > 1 else ())
    res = DomainResult(name or ("upper" if claim == "yes" else "lower"), claim, bound.tau, None, False, 0.0)
    top = bound.score_range + 1
    state = {"tau": bound.tau, "cex": None}

    def raise_tau(x32: np.ndarray, how: str) -> None:
        """A replayed counterexample: the bound answers at x32 and the DNN disagrees."""
        score = int(bound_scores(bound, enc.encode(x32[None, :]))[0])
        out, yes = runtime_says(dnn, x32[None, :])
        assert score >= state["tau"] and bool(yes[0]) != (claim == "yes")
        res.rounds.append({"round": len(res.rounds), "tau": state["tau"], "result": "counterexample",
                           "found_by": how, "score": score, "raised": True,
                           "dnn_output": [round(float(v), 5) for v in out[0]],
                           "seconds": round(time.perf_counter() - t0, 2)})
        state["cex"] = {"x": [float(v) for v in x32], "score": score, "dnn_output": out[0].tolist(),
                        "bound_answers": True, "dnn_says": "yes" if yes[0] else "no"}
        state["tau"] = score + 1

    # 1. falsification on cheap samples
    for how, X in _samples(enc, lo, hi, X_seen, scfg):
        scores = bound_scores(bound, enc.encode(X))
        _, yes = runtime_says(dnn, X)
        bad = (yes != (claim == "yes")) & (scores >= state["tau"])
        if bad.any():
            if collect is not None:
                collect.append(X[bad])
            raise_tau(X[np.flatnonzero(bad)[np.argmax(scores[bad])]], how)
    # 2. branch and bound over level boxes
    bb = LevelBoxes(bound, enc)
    llo, lhi = levels_of(enc, lo)[0], levels_of(enc, hi)[0]
    stack = [(llo, lhi)]
    nodes = settled_by_bound = settled_by_dnn = undecided_leaves = 0
    vcfg = VerifyConfig(margin=cfg.margin, time_limit=scfg.node_time, attack_points=8, attack_steps=12,
                        tighten_time=min(2.0, scfg.node_time), seed=scfg.seed)
    lcfg = VerifyConfig(margin=cfg.margin, time_limit=scfg.leaf_time, seed=scfg.seed)
    out_of_budget = False
    while stack:
        if state["tau"] >= top:  # the bound never answers any more: trivially sound
            stack.clear()
            break
        if nodes >= scfg.node_budget or time.perf_counter() - t0 > cfg.total_time:
            out_of_budget = True
            break
        a, b = stack.pop()
        nodes += 1
        if progress is not None and nodes % 50 == 0:
            progress(nodes, len(stack), state["tau"])
        s_lo, s_hi, weight = bb.score_range(a, b)
        if s_hi < state["tau"]:
            settled_by_bound += 1
            continue
        leaf = bool(np.all(a == b))
        rlo, rhi, hopen = level_box(enc, a, b, lo, hi)
        vr = verify_box(net, dnn, rlo, rhi, claim, lcfg if leaf else vcfg, hi_open=hopen)
        if vr.status == Status.CERTIFIED:
            settled_by_dnn += 1
            continue
        if vr.status == Status.REFUTED:
            x32 = np.asarray(vr.counterexample, np.float32)
            if int(bound_scores(bound, enc.encode(x32[None, :]))[0]) >= state["tau"]:
                if collect is not None:
                    collect.append(x32[None, :])
                raise_tau(x32, "search")
                stack.append((a, b))  # the same box again, at the new tau
                continue
        if leaf:  # a single cell where the bound answers and the DNN is neither proven nor refuted
            undecided_leaves += 1
            res.rounds.append({"round": len(res.rounds), "tau": state["tau"], "result": "undecided cell",
                               "levels": [int(v) for v in a], "milp_status": vr.status,
                               "seconds": round(time.perf_counter() - t0, 2)})
            continue
        f = _split_feature(net, sides, claim, enc, a, b, rlo, rhi, weight)
        mid = (int(a[f]) + int(b[f])) // 2
        lo_child, hi_child = (a.copy(), b.copy()), (a.copy(), b.copy())
        lo_child[1][f] = mid
        hi_child[0][f] = mid + 1
        stack.extend([hi_child, lo_child])
    res.seconds = time.perf_counter() - t0
    res.counterexample = state["cex"]
    certified = not out_of_budget and not stack and undecided_leaves == 0
    res.tau_certified = min(state["tau"], top) if certified else None
    res.sound_as_is = certified and state["tau"] == bound.tau
    res.search = {"engine": "cells", "nodes": nodes, "settled_by_bound": settled_by_bound,
                  "settled_by_dnn": settled_by_dnn, "open_boxes": len(stack) + undecided_leaves,
                  "tau_reached": int(state["tau"])}
    return res


def cell_inputs(X: np.ndarray, enc, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points, each drawn uniformly from the thermometer cell of a random row of ``X`` (every
    kept feature anywhere in the row's interval ``[t_(L-1), t_L)``, within the rows' range).

    The bounds see only cells, so a point of a row's cell where the DNN disagrees with the row
    refutes any bound that answers for that row. (Measured: distilling on these points as well
    did not lower the bounds' highest-scoring disagreement on breast_cancer, so ``build`` does
    not use them.)"""
    X = np.asarray(X, dtype=np.float32)
    if n <= 0 or len(X) == 0:
        return np.zeros((0, X.shape[1]), dtype=np.float32)
    lo, hi = X.min(0).astype(np.float64), X.max(0).astype(np.float64)
    base = X[rng.integers(0, len(X), n)]
    lev = enc.levels(enc.encode(base))
    pts = base.astype(np.float64)
    for f in range(enc.n_kept):
        col = int(enc.feature_index[f])
        t = np.concatenate([[lo[col]], enc.feature_thresholds(f).astype(np.float64), [hi[col]]])
        a = np.maximum(t[lev[:, f]], lo[col])
        z = np.minimum(t[lev[:, f] + 1], hi[col])
        pts[:, col] = a + rng.random(n) * np.maximum(z - a, 0)
    out = pts.astype(np.float32)
    same = np.all(enc.levels(enc.encode(out)) == lev, axis=1)  # drop points rounded onto a threshold
    return out[same]


def _samples(enc: Thermometer, lo: np.ndarray, hi: np.ndarray, X_seen: np.ndarray | None,
             scfg: CellSearchConfig):
    """Falsification inputs: seen rows, uniform points of the domain, points of seen rows' cells."""
    rng = np.random.default_rng(scfg.seed)
    if X_seen is not None and len(X_seen):
        X_seen = np.clip(np.asarray(X_seen, np.float64), lo, hi)
        yield "rows", X_seen.astype(np.float32)
    n = scfg.samples
    yield "uniform", (lo + rng.random((n, len(lo))) * (hi - lo)).astype(np.float32)
    if X_seen is not None and len(X_seen):
        pts = cell_inputs(X_seen.astype(np.float32), enc, n, rng).astype(np.float64)
        yield "cells", np.clip(pts, lo, hi).astype(np.float32)  # any point of D may refute


def _split_feature(net: PlNet, sides: Sides, claim: str, enc: Thermometer, a, b, rlo, rhi, bound_weight) -> int:
    """The free feature to halve: how much it moves the bound's undecided neurons plus how much it
    moves the DNN's claim slack across the box (gradient at the centre times the side), each
    normalised to [0, 1]."""
    free = np.flatnonzero(b > a)
    centre = (rlo + rhi) / 2
    _, g = _grad_slack(net, centre[None, :], sides, claim)
    dnn_w = (np.abs(g[0]) * (rhi - rlo))[enc.feature_index[free]]
    return int(free[np.argmax(_norm(bound_weight[free]) + _norm(dnn_w))])


def _norm(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    m = v.max() if v.size else 0.0
    return v / m if m > 0 else v
