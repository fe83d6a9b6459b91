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
(:meth:`~bnnembed.logic.certify.onnx_net.PlNet.fp_error_bound`) and ``margin`` (default 1e-3 in logit
units) absorbs the MILP solver's feasibility tolerance (1e-6 on rows whose coefficients come
from the network). For one logit and claim ``yes``: certified means ``logit(x) >= margin + e``
for every ``x`` in the box, so the float32 runtime's logit is ``> 0`` there. For claim ``no``:
``logit(x) <= -(margin + e)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ._milp import MilpBuilder
from .onnx_net import PlNet


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
# the claim as score differences
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sides:
    """Which output columns must win for ``yes``, with a constant 0 column for a single logit.

    Scores are the network outputs extended by one constant-zero column when there is a single
    logit (so ``yes`` = logit beats 0). A claim holds on ``x`` iff some column of ``claim`` beats
    every column of ``other``; it fails iff some column ``a`` of ``other`` satisfies
    ``s_b - s_a <= eps`` for every column ``b`` of ``claim``.
    """

    yes_cols: tuple[int, ...]
    no_cols: tuple[int, ...]
    n_scores: int

    @classmethod
    def for_net(cls, n_out: int, positive_columns: tuple[int, ...]) -> "Sides":
        if n_out == 1:
            return cls((0,), (1,), 2)
        pos = tuple(sorted(set(int(c) for c in positive_columns)))
        if not pos or any(not 0 <= c < n_out for c in pos):
            raise ValueError(f"positive columns {positive_columns} do not fit {n_out} outputs")
        neg = tuple(c for c in range(n_out) if c not in pos)
        if not neg:
            raise ValueError("every output column is positive: the DNN always says yes")
        return cls(pos, neg, n_out)

    def split(self, claim: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(columns of the claim's side, columns of the other side)."""
        return (self.yes_cols, self.no_cols) if claim == "yes" else (self.no_cols, self.yes_cols)


def _scores(out: np.ndarray, sides: Sides) -> np.ndarray:
    out = np.atleast_2d(out)
    if sides.n_scores == out.shape[1] + 1:
        return np.concatenate([out, np.zeros((out.shape[0], 1))], 1)
    return out


def claim_margin(out: np.ndarray, sides: Sides, claim: str) -> np.ndarray:
    """Per row, ``max_b min_a (s_b - s_a)``: positive iff the claim holds (its slack)."""
    s = _scores(out, sides)
    B, A = sides.split(claim)
    diffs = s[:, list(B)][:, :, None] - s[:, list(A)][:, None, :]
    return diffs.min(2).max(1)


def runtime_says(dnn, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(raw outputs, says-yes booleans) of the DNN runtime."""
    from ...learn.dnn import yes_from_output

    out = dnn.raw(np.asarray(X, dtype=np.float32))
    return out, yes_from_output(out, dnn.positive_columns, getattr(dnn, "output", "logit"))


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
    from ._milp import _new_highs
    import highspy

    h = _new_highs()
    h.setOptionValue("time_limit", 30.0)
    lp = highspy.HighsLp()
    n, m = b.n_vars, len(b.row_lo)
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = np.zeros(n)
    lp.col_lower_ = np.asarray(b.lb)
    lp.col_upper_ = np.asarray(b.ub)
    lp.row_lower_ = np.asarray(b.row_lo)
    lp.row_upper_ = np.asarray(b.row_hi)
    rows = np.concatenate([np.full(len(i), r, dtype=np.int64) for r, i in enumerate(b._ri)])
    cols = np.concatenate(b._ri)
    vals = np.concatenate(b._rv)
    order = np.lexsort((rows, cols))
    counts = np.bincount(cols, minlength=n)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    lp.a_matrix_.index_ = rows[order].astype(np.int32)
    lp.a_matrix_.value_ = vals[order]
    h.passModel(lp)
    return h


# --------------------------------------------------------------------------------------------
# MILP encoding
# --------------------------------------------------------------------------------------------


@dataclass
class _LayerVars:
    """Post-activation values of one layer: variables for the non-constant ones."""

    idx: np.ndarray  # builder variable of each non-constant unit
    src: np.ndarray  # which unit of the layer each variable is
    const: np.ndarray  # value of every unit (used where the unit is constant 0)

    def const_dot(self, w: np.ndarray) -> float:
        mask = np.ones(len(self.const), bool)
        mask[self.src] = False
        return float(w[mask] @ self.const[mask])


def _encode_layers(b: MilpBuilder, net: PlNet, x: np.ndarray, bounds: list, upto: int,
                   relax: bool = False) -> tuple[_LayerVars, int]:
    """Encode layers ``0..upto-1`` with ReLU; return the post-activation of layer ``upto-1``
    (or the input when ``upto == 0``) and the number of binaries used."""
    cur = _LayerVars(np.asarray(x), np.arange(len(x)), np.zeros(len(x)))
    n_bin = 0
    for k in range(upto):
        W, bias = net.layers[k]
        lk, uk = bounds[k]
        n = W.shape[0]
        new_idx, new_src = [], []
        for j in range(n):
            l, u = lk[j], uk[j]
            if u <= 0:
                continue  # inactive: constant 0
            w = W[j, cur.src]
            c = bias[j] + cur.const_dot(W[j])
            y = int(b.add_vars(max(l, 0.0), u)[0])
            if l >= 0:  # active: y = z
                b.add_row(np.append(cur.idx, y), np.append(-w, 1.0), c, c)
            else:
                b.add_row(np.append(cur.idx, y), np.append(-w, 1.0), c, np.inf)  # y >= z
                if relax:  # triangle: y <= u (z - l) / (u - l)
                    s = u / (u - l)
                    b.add_row(np.append(cur.idx, y), np.append(-s * w, 1.0), -np.inf, s * (c - l))
                else:
                    a = int(b.add_vars(0, 1, integer=True)[0])
                    n_bin += 1
                    b.add_row([y, a], [1.0, -u], -np.inf, 0.0)  # y <= u a
                    # y <= z - l (1 - a)
                    b.add_row(np.concatenate([cur.idx, [y, a]]), np.concatenate([-w, [1.0, -l]]), -np.inf, c - l)
            new_idx.append(y)
            new_src.append(j)
        cur = _LayerVars(np.array(new_idx, dtype=np.int64), np.array(new_src, dtype=np.int64), np.zeros(n))
    return cur, n_bin


def encode_dnn(b: MilpBuilder, net: PlNet, x: np.ndarray, bounds: list) -> tuple[list, int]:
    """Encode the whole network on input variables ``x``; returns per output column a linear
    expression ``(var indices, coefficients, constant)`` and the number of binaries."""
    last, n_bin = _encode_layers(b, net, x, bounds, upto=len(net.layers) - 1)
    W, bias = net.layers[-1]
    exprs = [(last.idx, W[j, last.src], float(bias[j] + last.const_dot(W[j]))) for j in range(W.shape[0])]
    return exprs, n_bin


def add_refutation(b: MilpBuilder, exprs: list, out_bounds: tuple, sides: Sides, claim: str,
                   eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Rows saying "the claim fails with margin eps" (see :class:`Sides`). Returns an objective
    expression to minimise: the claim's slack for one-logit nets, else the sum of the differences.

    ``eps[b, a]`` is the margin required of the difference ``s_b - s_a``.
    """
    zero = (np.zeros(0, np.int64), np.zeros(0), 0.0)
    if sides.n_scores == len(exprs) + 1:
        exprs = list(exprs) + [zero]
        lo_o = np.append(out_bounds[0], 0.0)
        hi_o = np.append(out_bounds[1], 0.0)
    else:
        lo_o, hi_o = out_bounds
    B, A = sides.split(claim)

    def diff(bc, ac):
        (ib, vb, cb), (ia, va, ca) = exprs[bc], exprs[ac]
        return np.concatenate([ib, ia]), np.concatenate([vb, -va]), cb - ca

    if len(A) == 1:
        a = A[0]
        for bc in B:
            idx, val, c = diff(bc, a)
            b.add_row(idx, val, -np.inf, eps[bc, a] - c)
    else:
        _add_selector_rows(b, diff, lo_o, hi_o, A, B, eps)
    # an objective steering towards violations (HiGHS reports a zero-cost model as empty)
    parts = [diff(bc, a) for bc in B for a in A]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            float(sum(p[2] for p in parts)))


def _add_selector_rows(b: MilpBuilder, diff, lo_o, hi_o, A, B, eps) -> None:
    """Some column of ``A`` (chosen by binaries) beats every column of ``B`` up to eps."""
    z = b.add_vars(np.zeros(len(A)), np.ones(len(A)), integer=True)
    b.add_row(z, np.ones(len(A)), 1.0, 1.0)
    for zi, a in zip(z, A):
        for bc in B:
            idx, val, c = diff(bc, a)
            big = max(hi_o[bc] - lo_o[a] - eps[bc, a], 0.0) + 1.0
            b.add_row(np.append(idx, zi), np.append(val, big), -np.inf, eps[bc, a] - c + big)


# --------------------------------------------------------------------------------------------
# attack
# --------------------------------------------------------------------------------------------


def _grad_slack(net: PlNet, X: np.ndarray, sides: Sides, claim: str) -> tuple[np.ndarray, np.ndarray]:
    """Claim slack (see :func:`claim_margin`) and its gradient w.r.t. the input, per row."""
    hs, masks = [X], []
    h = X
    for k, (W, bias) in enumerate(net.layers):
        z = h @ W.T + bias
        if k < len(net.layers) - 1:
            masks.append(z > 0)
            h = np.maximum(z, 0)
        else:
            h = z
    s = _scores(h, sides)
    B, A = sides.split(claim)
    diffs = s[:, list(B)][:, :, None] - s[:, list(A)][:, None, :]
    inner = diffs.argmin(2)  # (n, |B|)
    mins = diffs.min(2)
    bi = mins.argmax(1)
    ai = inner[np.arange(len(X)), bi]
    g = np.zeros((len(X), s.shape[1]))
    g[np.arange(len(X)), np.array(B)[bi]] += 1.0
    g[np.arange(len(X)), np.array(A)[ai]] -= 1.0
    g = g[:, : net.n_out]
    for k in range(len(net.layers) - 1, -1, -1):
        W, _ = net.layers[k]
        g = g @ W
        if k > 0:
            g = g * masks[k - 1]
    return mins.max(1), g


def attack(net: PlNet, lo: np.ndarray, hi: np.ndarray, sides: Sides, claim: str, cfg: VerifyConfig,
           start: np.ndarray | None = None) -> np.ndarray:
    """Candidate inputs of the box that minimise the claim's slack (projected sign-gradient)."""
    rng = np.random.default_rng(cfg.seed)
    pts = [(lo + hi) / 2]
    if start is not None:
        pts.append(np.atleast_2d(start))
    if cfg.attack_points:
        pts.append(lo + rng.random((cfg.attack_points, len(lo))) * (hi - lo))
    X = np.vstack(pts)
    width = hi - lo
    for step in range(cfg.attack_steps):
        _, g = _grad_slack(net, X, sides, claim)
        size = 0.25 * (1 - step / max(cfg.attack_steps, 1)) + 0.01
        X = np.clip(X - size * np.sign(g) * width, lo, hi)
    return X


# --------------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------------


def to_float32_in_box(X: np.ndarray, lo: np.ndarray, hi: np.ndarray, hi_open: np.ndarray | None) -> np.ndarray:
    """Round candidate inputs to float32 inside ``[lo, hi]`` (``[lo, hi)`` where ``hi_open``)."""
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    X = np.clip(X, lo, hi)
    X32 = X.astype(np.float32)
    lo32 = np.asarray(lo, np.float64)
    hi32 = np.asarray(hi, np.float64)
    over = X32.astype(np.float64) > hi32
    X32[over] = np.nextafter(X32[over], np.float32(-np.inf))
    under = X32.astype(np.float64) < lo32
    X32[under] = np.nextafter(X32[under], np.float32(np.inf))
    if hi_open is not None:
        at = (X32.astype(np.float64) >= hi32) & hi_open[None, :]
        X32[at] = np.nextafter(X32[at], np.float32(-np.inf))
    return X32


def replay(dnn, X32: np.ndarray, claim: str) -> tuple[int | None, np.ndarray]:
    """Index of the first row where the runtime contradicts the claim (None if none)."""
    out, yes = runtime_says(dnn, X32)
    bad = yes != (claim == "yes")
    return (int(np.flatnonzero(bad)[0]) if bad.any() else None), out


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
