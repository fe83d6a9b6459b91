"""Whole-domain soundness of one bound, and the threshold repair loop.

Query, for the upper bound (the lower bound is symmetric with ``no``)::

    exists x in D:  score_upper(x) >= tau  and  the DNN says no at x (with margin)

over the domain ``D`` = a box of raw inputs (per feature min/max of the training data unless the
user gives others). The bound enters as MILP rows (:mod:`.bound_milp`), the DNN as a big-M ReLU
encoding (:mod:`.milp_encode`), the two sharing the input variables. Infeasible means the bound is
sound on all of ``D``: wherever it answers, the DNN agrees.

The solver *maximises* the score, so its dual bound ``S`` is itself a proof: no counterexample has
a score above ``S``, and the bound becomes sound on ``D`` once ``tau > S``. Repair loop (raising
tau only removes answers, so it can only restore soundness, and it terminates: tau is bounded by
the score range plus one, where the bound never answers)::

    tau_0 = calibrated tau
    for round r = 0, 1, ... (within a budget of rounds and seconds):
        solve max score s.t. score >= tau_r, DNN disagrees, x in D
        infeasible:            certified at tau_r; stop
        optimal at s*:         counterexample (replayed); certified at s* + 1 by the same proof; stop
        time limit, bound S:   certified at floor(S) + 1; if a counterexample with score s was found,
                               try tau_(r+1) = s + 1 < floor(S) + 1 in the next round, else stop
    report the smallest certified tau, its coverage on the test split, and the last counterexample

Every counterexample is replayed through the numpy bound and the DNN runtime; one that does not
replay (the solver's point sits on a threshold boundary or inside the float tolerance) is
reported as spurious, and the loop still raises tau past it (sound, possibly conservative).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ...model.encoding import Thermometer
from ...model.intmodel import BoundNet, bound_answers, bound_scores
from ._milp import MilpBuilder
from .bound_milp import bound_rows, snap_to_bits, thermometer_rows
from .claims import Sides, runtime_says
from .dnn_milp import tighten_bounds
from .milp_encode import add_refutation, encode_dnn
from .plnet import PlNet


@dataclass(frozen=True)
class DomainConfig:
    """Budget and tolerances of the whole-domain query."""

    margin: float = 1e-3  # DNN score margin on top of the float32 error bound (see dnn_milp)
    round_time: float = 300.0  # seconds per MILP round
    max_rounds: int = 4
    total_time: float = 900.0
    tighten_time: float = 30.0


@dataclass
class DomainResult:
    """Outcome of :func:`certify_domain` for one bound."""

    bound: str  # "upper" or "lower"
    claim: str  # the DNN decision the bound's answer stands for ("yes" for the upper bound)
    tau_before: int
    tau_certified: int | None  # smallest tau proven sound on the domain (None: none proven)
    sound_as_is: bool  # the calibrated tau itself is proven sound
    seconds: float
    rounds: list[dict] = field(default_factory=list)
    counterexample: dict | None = None  # last replayed counterexample (raw input, score, DNN output)
    coverage_before: float | None = None
    coverage_after: float | None = None
    search: dict = field(default_factory=dict)  # engine statistics (nodes, open boxes, ...)

    @property
    def certified(self) -> bool:
        return self.tau_certified is not None

    @property
    def repair_rounds(self) -> int:
        """Rounds that found a counterexample and raised tau (0 when sound as is)."""
        return sum(1 for r in self.rounds if r.get("raised"))

    def to_dict(self) -> dict:
        return {
            "bound": self.bound, "claim": self.claim, "certified": self.certified,
            "sound_as_is": self.sound_as_is, "tau_before": self.tau_before,
            "tau_certified": self.tau_certified, "repair_rounds": self.repair_rounds,
            "seconds": round(self.seconds, 2), "coverage_before": self.coverage_before,
            "coverage_after": self.coverage_after, "rounds": self.rounds,
            "counterexample": self.counterexample, **({"search": self.search} if self.search else {}),
        }


_VERBOSE = False


def data_box(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per feature min and max of the rows (float32 values, as float64)."""
    X = np.asarray(X, dtype=np.float32)
    return X.min(0).astype(np.float64), X.max(0).astype(np.float64)


def _query(net: PlNet, dnn, enc: Thermometer, bound: BoundNet, claim: str, lo, hi, bounds, eps, tau: int,
           time_limit: float) -> tuple[object, np.ndarray, object, tuple]:
    b = MilpBuilder()
    x = b.add_vars(lo, hi)
    bits = thermometer_rows(b, enc, x, lo, hi)
    score, s_lo, s_hi = bound_rows(b, bound, bits)
    b.add_row(score[0], score[1], tau - score[2], np.inf)  # the bound answers
    exprs, _ = encode_dnn(b, net, x, bounds)
    sides = Sides.for_net(net.n_out, dnn.positive_columns if net.n_out > 1 else ())
    add_refutation(b, exprs, bounds[-1], sides, claim, eps)
    b.set_objective(score[0], score[1])
    sol = b.solve(time_limit, maximize=True, mip_rel_gap=0.0, verbose=_VERBOSE)
    return sol, x, bits, score


def certify_domain(net: PlNet, dnn, enc: Thermometer, bound: BoundNet, lo, hi,
                   cfg: DomainConfig = DomainConfig(), name: str | None = None) -> DomainResult:
    """Prove the bound sound on the box ``[lo, hi]`` or raise its tau until it is (module doc)."""
    t0 = time.perf_counter()
    claim = bound.answer
    lo = np.asarray(lo, np.float64)
    hi = np.asarray(hi, np.float64)
    bounds = net.ibp(lo, hi)
    bounds = tighten_bounds(net, lo, hi, bounds, cfg.tighten_time)
    err = net.fp_error_bound(lo, hi)
    sides = Sides.for_net(net.n_out, dnn.positive_columns if net.n_out > 1 else ())
    err_s = np.append(err, 0.0) if sides.n_scores == net.n_out + 1 else err
    eps = cfg.margin + err_s[:, None] + err_s[None, :]
    res = DomainResult(name or ("upper" if claim == "yes" else "lower"), claim, bound.tau, None, False, 0.0)
    top = bound.score_range + 1  # tau at which the bound never answers: trivially sound
    tau = bound.tau
    certified: list[int] = []
    for r in range(cfg.max_rounds):
        left = cfg.total_time - (time.perf_counter() - t0)
        if left <= 1 or tau >= top:
            break
        sol, x, bits, score = _query(net, dnn, enc, bound, claim, lo, hi, bounds, eps, tau, min(cfg.round_time, left))
        rec = {"round": r, "tau": tau, "milp_status": sol.status, "seconds": round(sol.seconds, 2)}
        res.rounds.append(rec)
        if sol.status == "infeasible":
            certified.append(tau)
            rec["result"] = "sound"
            res.sound_as_is = res.sound_as_is or r == 0
            break
        if sol.dual_bound is not None and math.isfinite(sol.dual_bound) and sol.status in ("optimal", "feasible", "timeout"):
            best = sol.dual_bound + score[2]  # the objective omits the score's constant
            proven = int(math.floor(best + 1e-6)) + 1
            rec["score_upper_bound"] = round(best, 3)
            if proven <= top:
                certified.append(max(proven, tau))
                rec["proven_sound_from_tau"] = max(proven, tau)
        if sol.x is None:
            rec["result"] = "timeout"
            break
        cex = _replay(net, dnn, enc, bound, claim, sol.x[x], sol.x[np.maximum(bits.var, 0)], bits,
                      None if sol.objective is None else sol.objective + score[2])
        rec.update(cex["summary"])
        if cex["replayed"]:
            res.counterexample = cex["record"]
        new_tau = max(int(cex["score"]) + 1, tau + 1)
        rec["raised"] = True
        if sol.status == "optimal":  # the optimality proof certified floor(dual) + 1 above
            break
        if new_tau >= top:
            certified.append(top)
            break
        tau = new_tau
    res.tau_certified = min(certified) if certified else None
    res.seconds = time.perf_counter() - t0
    return res


def _replay(net, dnn, enc, bound, claim, xs, bit_sol, bits, milp_score) -> dict:
    """Replay a solver point: snap it to its thermometer code, run the numpy bound and the DNN."""
    bit_vals = np.where(bits.is_var, np.rint(bit_sol), bits.const).astype(np.uint8)
    x32 = snap_to_bits(enc, xs, bit_vals)
    code = enc.encode(x32[None, :])
    score = int(bound_scores(bound, code)[0])
    answers = bool(bound_answers(bound, code)[0])
    out, yes = runtime_says(dnn, x32[None, :])
    disagrees = bool(yes[0]) != (claim == "yes")
    replayed = answers and disagrees
    record = {"x": [float(v) for v in x32], "score": score, "dnn_output": out[0].tolist(),
              "bound_answers": answers, "dnn_says": "yes" if yes[0] else "no"}
    return {
        "replayed": replayed,
        "score": score if answers else max(score, bound.tau),
        "record": record,
        "summary": {"result": "counterexample" if replayed else "spurious", "score": score,
                    "dnn_output": [round(float(v), 5) for v in out[0]], "milp_score": milp_score},
    }


def coverage_at(bound: BoundNet, bits: np.ndarray, tau: int | None) -> float:
    """Share of encoded rows on which the bound answers at threshold ``tau``."""
    if tau is None or len(bits) == 0:
        return 0.0
    return float(np.mean(bound_scores(bound, bits) >= tau))
