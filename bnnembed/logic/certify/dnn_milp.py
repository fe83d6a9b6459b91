"""Verify the DNN on a box of inputs: does it give the same decision everywhere in the box?

A *claim* is "the DNN says ``yes`` (or ``no``) on every input ``x`` with ``lo <= x <= hi``".
Deciding it, cheapest first::

    1. interval bound propagation (IBP) through the network: if even the interval bounds keep the
       claim's margin, it is certified;
    2. an attack: the box centre, random points and projected sign-gradient steps on the exact
       piecewise-linear model, replayed through the DNN runtime (onnxruntime); a point where the
       runtime disagrees with the claim refutes it;
    3. a mixed-integer program (big-M ReLU encoding with one binary per unstable neuron, big-M
       constants from the interval bounds, optionally tightened by LP) that searches for an input
       of the box violating the claim's margin, solved by HiGHS under a time limit. Infeasible
       means certified; a solution is replayed through the runtime and refutes the claim only if
       the runtime really disagrees; otherwise it is reported as ``spurious`` (never as refuted).

Margins, stated exactly. The DNN says yes iff its logit is > 0 (one output), or iff the argmax
column is a positive class (several outputs; see :mod:`bnnembed.learn.dnn`). A claim is *certified*
when the exact-real network keeps, on the whole box, every score difference that decides it at
least ``margin + e``, where ``e`` bounds the float32 rounding error of the runtime on that box
(:meth:`~bnnembed.logic.certify.plnet.PlNet.fp_error_bound`) and ``margin`` (default 1e-3 in logit
units) absorbs the MILP solver's feasibility tolerance (1e-6 on rows whose coefficients come
from the network). For one logit and claim ``yes``: certified means ``logit(x) >= margin + e``
for every ``x`` in the box, so the float32 runtime's logit is ``> 0`` there. For claim ``no``:
``logit(x) <= -(margin + e)``.

The steps live by job: the claim as score differences in :mod:`.claims`, the attack and the
float32 replay in :mod:`.attack`, the MILP encoding in :mod:`.milp_encode` (on the shared
:class:`~._milp.MilpBuilder`); this module holds the query (:func:`verify_box`), its options and
verdicts, and the LP tightening of the bounds (:func:`tighten_bounds`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._milp import MilpBuilder, _new_highs
from .attack import attack, replay, to_float32_in_box
from .claims import Sides, claim_margin
from .milp_encode import _encode_layers, add_refutation, encode_dnn
from .plnet import PlNet



class Status:
    """Outcome of a verification query (strings, so they serialise as they read)."""

    CERTIFIED = "certified"
    REFUTED = "refuted"
    TIMEOUT = "timeout"
    SPURIOUS = "spurious"  # the solver's counterexample did not replay through the DNN runtime

    ALL = (CERTIFIED, REFUTED, TIMEOUT, SPURIOUS)


@dataclass(frozen=True)
class VerifyConfig:
    """Options of a box query."""

    margin: float = 1e-3  # required score margin on top of the float32 error bound
    time_limit: float = 60.0  # seconds for the MILP
    attack_points: int = 32  # random starting points of the attack (0 disables it)
    attack_steps: int = 20
    tighten: bool = True  # LP-tighten the bounds of unstable neurons before the MILP
    tighten_time: float = 10.0  # budget for the LP tightening
    seed: int = 0


@dataclass
class BoxResult:
    """The verdict on one claim, with the evidence."""

    status: str
    claim: str  # "yes" or "no"
    method: str  # "ibp", "attack", "milp"
    seconds: float
    counterexample: np.ndarray | None = None  # float32 raw input where the runtime disagrees
    runtime_output: list[float] | None = None
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {"status": self.status, "claim": self.claim, "method": self.method,
             "seconds": round(self.seconds, 4), **self.detail}
        if self.counterexample is not None:
            d["counterexample"] = [float(v) for v in self.counterexample]
            d["runtime_output"] = self.runtime_output
        return d


# --------------------------------------------------------------------------------------------
# bounds
# --------------------------------------------------------------------------------------------


def tighten_bounds(net: PlNet, lo: np.ndarray, hi: np.ndarray, bounds: list, budget: float) -> list:
    """LP-tighten the pre-activation bounds of unstable neurons, layer by layer, within ``budget``
    seconds (triangle relaxation of the earlier layers). Returns new bounds (never looser)."""
    t_end = time.perf_counter() + budget
    bounds = [(l.copy(), u.copy()) for l, u in bounds]
    for k in range(1, len(net.layers) - 1):
        l_k, u_k = bounds[k]
        unstable = np.flatnonzero((l_k < 0) & (u_k > 0))
        if unstable.size == 0:
            continue
        if time.perf_counter() > t_end:
            break
        b = MilpBuilder()
        x = b.add_vars(lo, hi)
        h_vars, _ = _encode_layers(b, net, x, bounds, upto=k, relax=True)
        W, bias = net.layers[k]
        idx = h_vars.idx
        h = _new_lp(b)
        for j in unstable:
            if time.perf_counter() > t_end:
                break
            for sense in (1.0, -1.0):
                cost = np.zeros(b.n_vars)
                cost[idx] = sense * W[j, h_vars.src]
                h.changeColsCost(b.n_vars, np.arange(b.n_vars, dtype=np.int32), cost)
                h.run()
                if h.getModelStatus() != _optimal():
                    continue
                val = sense * h.getInfo().objective_function_value + bias[j] + h_vars.const_dot(W[j])
                # LP optimum is exact up to tolerances: widen by a safety slack
                slack = 1e-6 * (1.0 + abs(val))
                if sense > 0:
                    l_k[j] = max(l_k[j], val - slack)
                else:
                    u_k[j] = min(u_k[j], val + slack)
        bounds[k] = (l_k, u_k)
        # re-propagate later layers with IBP from the tightened layer
        for m in range(k + 1, len(net.layers)):
            pl, ph = np.maximum(bounds[m - 1][0], 0), np.maximum(bounds[m - 1][1], 0)
            Wm, bm = net.layers[m]
            Wp, Wn = np.maximum(Wm, 0), np.minimum(Wm, 0)
            nl, nh = Wp @ pl + Wn @ ph + bm, Wp @ ph + Wn @ pl + bm
            bounds[m] = (np.maximum(bounds[m][0], nl), np.minimum(bounds[m][1], nh))
    return bounds


def _optimal():
    import highspy

    return highspy.HighsModelStatus.kOptimal


def _new_lp(b: MilpBuilder):
    """A HiGHS instance holding the builder's rows as an LP (for repeated objective changes)."""
    h = _new_highs()
    h.setOptionValue("time_limit", 30.0)
    h.passModel(b.highs_lp())
    return h


# --------------------------------------------------------------------------------------------
# the query
# --------------------------------------------------------------------------------------------


def verify_box(net: PlNet, dnn, lo, hi, claim: str, cfg: VerifyConfig = VerifyConfig(),
               hi_open: np.ndarray | None = None, start: np.ndarray | None = None) -> BoxResult:
    """Decide "the DNN says ``claim`` on every input of the box" (see the module docstring).

    ``dnn`` is the runtime (:class:`bnnembed.learn.dnn.Dnn`) every counterexample is replayed through;
    ``hi_open`` marks features whose box side is ``[lo, hi)`` in the caller's region (the MILP
    still uses the closed side, a superset, so a certificate covers the region; a counterexample
    on such a face is moved just below ``hi`` before it is replayed). ``start`` is a point of the
    box to seed the attack (e.g. the input being explained).
    """
    if claim not in ("yes", "no"):
        raise ValueError("claim must be 'yes' or 'no'")
    t0 = time.perf_counter()
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    if np.any(lo > hi):
        raise ValueError("empty box")
    sides = Sides.for_net(net.n_out, dnn.positive_columns if net.n_out > 1 else ())
    bounds = net.ibp(lo, hi)
    err = net.fp_error_bound(lo, hi)
    err_s = np.append(err, 0.0) if sides.n_scores == net.n_out + 1 else err
    eps = cfg.margin + err_s[:, None] + err_s[None, :]
    detail = {"margin": cfg.margin, "fp_error_bound": float(err.max())}
    B, A = sides.split(claim)
    # 1. IBP: for single-logit nets this is the exact interval of the logit's IBP bound
    out_lo, out_hi = bounds[-1]
    if sides.n_scores == net.n_out + 1:
        out_lo, out_hi = np.append(out_lo, 0.0), np.append(out_hi, 0.0)
    ibp_ok = any(all(out_lo[bc] - out_hi[a] >= eps[bc, a] for a in A) for bc in B)
    if ibp_ok:
        return BoxResult(Status.CERTIFIED, claim, "ibp", time.perf_counter() - t0, detail=detail)
    # 2. attack
    if cfg.attack_points or start is not None:
        cand = to_float32_in_box(attack(net, lo, hi, sides, claim, cfg, start), lo, hi, hi_open)
        i, out = replay(dnn, cand, claim)
        if i is not None:
            return BoxResult(Status.REFUTED, claim, "attack", time.perf_counter() - t0, cand[i],
                             out[i].tolist(), detail)
    # 3. MILP
    if cfg.tighten:
        t1 = time.perf_counter()
        bounds = tighten_bounds(net, lo, hi, bounds, min(cfg.tighten_time, 0.25 * cfg.time_limit))
        detail["tighten_seconds"] = round(time.perf_counter() - t1, 3)
        out_lo, out_hi = bounds[-1]
        if sides.n_scores == net.n_out + 1:
            out_lo, out_hi = np.append(out_lo, 0.0), np.append(out_hi, 0.0)
        if any(all(out_lo[bc] - out_hi[a] >= eps[bc, a] for a in A) for bc in B):
            return BoxResult(Status.CERTIFIED, claim, "lp", time.perf_counter() - t0, detail=detail)
    b = MilpBuilder()
    x = b.add_vars(lo, hi)
    exprs, n_bin = encode_dnn(b, net, x, bounds)
    obj = add_refutation(b, exprs, bounds[-1], sides, claim, eps)
    detail["binaries"] = n_bin
    target = None
    if obj is not None:
        b.set_objective(obj[0], obj[1])
        if len(A) == 1 and len(B) == 1:
            target = -eps.max() - obj[2]  # stop once the slack is clearly negative
    remaining = cfg.time_limit - (time.perf_counter() - t0)
    sol = b.solve(max(remaining, 1.0), objective_target=target)
    detail["milp_status"] = sol.status
    detail["milp_seconds"] = round(sol.seconds, 3)
    if sol.status == "infeasible":
        return BoxResult(Status.CERTIFIED, claim, "milp", time.perf_counter() - t0, detail=detail)
    if sol.x is None:
        return BoxResult(Status.TIMEOUT, claim, "milp", time.perf_counter() - t0, detail=detail)
    xs = sol.x[x]
    cand = to_float32_in_box(xs, lo, hi, hi_open)
    i, out = replay(dnn, cand, claim)
    if i is None:  # search near the solver's point before giving up
        near = attack(net, np.maximum(lo, xs - 0.01 * (hi - lo)), np.minimum(hi, xs + 0.01 * (hi - lo)),
                      sides, claim, VerifyConfig(attack_points=8, attack_steps=10, seed=cfg.seed), xs)
        cand = to_float32_in_box(near, lo, hi, hi_open)
        i, out = replay(dnn, cand, claim)
    if i is not None:
        return BoxResult(Status.REFUTED, claim, "milp", time.perf_counter() - t0, cand[i], out[i].tolist(), detail)
    detail["candidate"] = [float(v) for v in to_float32_in_box(xs, lo, hi, hi_open)[0]]
    detail["candidate_exact_slack"] = float(claim_margin(net.forward(xs[None, :]), sides, claim)[0])
    return BoxResult(Status.SPURIOUS, claim, "milp", time.perf_counter() - t0, detail=detail)
