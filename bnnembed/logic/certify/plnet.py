"""The DNN as a piecewise-linear network: the operators read from its graph and their fold.

:class:`PlNet` keeps the operators as read (:class:`Op`, so the floating-point error of the
runtime can be bounded op by op, :meth:`PlNet.fp_error_bound`) and also their fold into
alternating affine and ReLU layers, :attr:`PlNet.layers` (``y = W x + b``, ReLU between layers,
none after the last), computed in float64 (exact up to 2^-53 relative rounding, accounted for in
the error bound). A max is folded into ReLUs (:func:`~.plfold.fold_ops`). Every tensor is
flattened row-major. The reader that builds a :class:`PlNet` from ONNX is :mod:`.onnx_read`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .plfold import _compose_linear, fold_ops

U32 = 2.0 ** -24  # unit roundoff of float32

#: logit-unit allowance for the runtime's float32 sigmoid near 0.5 (about 42 ulps of 0.5)
SIGMOID_SLACK = 1e-5


def _gamma(k, u: float = U32):
    k = np.asarray(k, dtype=np.float64)
    return k * u / (1.0 - k * u)


@dataclass(frozen=True)
class Op:
    """One operator of the chain.

    - ``affine``: ``y = W x + b`` (``W`` of shape (out, in));
    - ``diag``: ``y = a * x + c`` per element (``a`` in ``W``, ``c`` in ``b``);
    - ``relu``;
    - ``max``: ``y[j] = max(x[i] for i in windows[j])`` (``windows`` holds, per output element,
      the tuple of input flat indices of its window; padding cells are left out);
    - ``sum``: ``y = f0(x) + f1(x)`` (``rounding`` ``add``) or ``f0(x) - f1(x)`` (``sub``), where
      ``branches = (ops0, ops1)`` are chains of affine/diag/sum ops from the same input ``x``
      (an empty chain is the identity).

    ``rounding`` says how the runtime computes it, for the error bound: ``dot`` (a dot product of
    the row's nonzero terms plus the bias), ``exact`` (a permutation/selection, no rounding),
    ``add`` / ``mul`` / ``div`` (one rounded operation), ``bn`` (an inference batch
    normalisation, which the runtime may compute in several float operations or fuse into the
    previous operator; ``mag`` holds ``|a * mean| + |B|``, see :meth:`PlNet.fp_error_bound`).
    """

    kind: str
    W: np.ndarray | None = None
    b: np.ndarray | None = None
    rounding: str = ""
    windows: tuple[tuple[int, ...], ...] | None = None
    branches: tuple[tuple["Op", ...], tuple["Op", ...]] | None = None
    mag: np.ndarray | None = None


@dataclass
class PlNet:
    """A chain of affine/ReLU/max operators and its folded layers.

    ``output_stripped`` names the final ``Softmax``/``LogSoftmax``/``Sigmoid`` of the graph that
    was left out ("" if none): the outputs here are the logits before it. For ``Sigmoid`` the
    runtime says yes iff its float32 probability is > 0.5, which the exact logit decides only
    away from 0: certify's margin must cover the float32 rounding of the sigmoid near 0.5
    (:meth:`fp_error_bound` adds :data:`SIGMOID_SLACK` logit units for it; the default margin
    1e-3 is far larger). ``in_shape`` is the graph input's shape after the batch dimension.
    """

    n_in: int
    ops: list[Op]
    layers: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    output_stripped: str = ""
    in_shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.layers:
            self.layers = fold_ops(self.ops, self.n_in)
        if not self.in_shape:
            self.in_shape = (self.n_in,)

    @property
    def n_out(self) -> int:
        return int(self.layers[-1][0].shape[0])

    @property
    def n_relu(self) -> int:
        return sum(W.shape[0] for W, _ in self.layers[:-1])

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Outputs in float64 arithmetic (the exact-real model the MILP encodes)."""
        h = np.asarray(X, dtype=np.float64)
        if h.ndim > 2:
            h = h.reshape(len(h), -1)
        for i, (W, b) in enumerate(self.layers):
            h = h @ W.T + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def ibp(self, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Interval bounds of every layer's pre-activation (output of ``W h + b``) on a box."""
        lo = np.asarray(lo, np.float64)
        hi = np.asarray(hi, np.float64)
        out = []
        for i, (W, b) in enumerate(self.layers):
            Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
            zl = Wp @ lo + Wn @ hi + b
            zh = Wp @ hi + Wn @ lo + b
            out.append((zl, zh))
            lo, hi = np.maximum(zl, 0), np.maximum(zh, 0)
        return out

    def fp_error_bound(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per output, a bound on ``|float32 runtime - exact real value|`` for inputs in the box.

        Standard forward error analysis, op by op on interval bounds of the exact values: a dot
        product of ``n`` nonzero terms plus a bias in float32, in any summation order, with or
        without fused multiply-add, errs by at most ``gamma_(n+1) * (|W| |x| + |b|)``
        (``gamma_k = k u / (1 - k u)``, ``u = 2^-24``; zero weights, e.g. a convolution's
        padding, give exact zero terms); an elementwise op by ``u`` (``2u`` for a division) times
        its result; an input error ``e`` propagates as ``|W| e``; ReLU and max add no error
        (max of a window of values each within ``e_i`` is within ``max e_i``).

        Fusion allowances, as the runtime (onnxruntime) may fold elementwise ops into the
        preceding Gemm/MatMul/Conv (with float32 rounding of the fused weights and the bias
        entering the long sum): an elementwise op right after a dot product (possibly through
        other elementwise ops) adds ``gamma * (|a| M + |c|)``, with ``gamma`` that of the dot
        product and ``M`` its absolute magnitude ``|W| |x| + |b|``; the sum of two branches
        adds ``(gamma_0 + gamma_1) (M_0 + M_1)``. A ``BatchNormalization``
        (``a = scale / sqrt(var + eps)``, ``c = B - mean * a``), computed in several float32
        operations or fused into the previous Conv, adds ``(8u + gamma) (|a| M + |a mean| +
        |B| + |c|)``: generous (the unfused kernel errs by about ``6u |a| |x| + 5u |a mean| +
        u |B| + 2u |c|``).

        A stripped final ``Softmax``/``LogSoftmax`` adds ``8u (max |logit| + ln n + 1)`` (the
        shift by the maximum, ``exp`` and the division or log rounding, in logit units) and a
        ``Sigmoid`` adds :data:`SIGMOID_SLACK`. The float32 rounding of the stored weights is
        exact (they are float32 numbers); the float64 fold adds a relative ``1e-10`` of the
        absolute magnitude of the whole computation. Assumes IEEE float32 arithmetic without
        flush-to-zero of subnormals (their effect is below 1e-37 per op and covered by the
        slack term).
        """
        lo = np.asarray(lo, np.float64).reshape(-1)
        hi = np.asarray(hi, np.float64).reshape(-1)
        mag = np.maximum(np.abs(lo), np.abs(hi))
        st = _State(lo, hi, np.zeros_like(lo), mag, np.zeros_like(lo), mag)
        st = _bound_ops(self.ops, st)
        mag = np.maximum(np.abs(st.lo), np.abs(st.hi))
        err = st.err
        if self.output_stripped in ("Softmax", "LogSoftmax"):
            err = err + 8 * U32 * (float(np.max(mag + err)) + math.log(len(err)) + 1.0)
        elif self.output_stripped == "Sigmoid":
            err = err + SIGMOID_SLACK
        return err + 1e-10 * (st.A + mag) + 1e-30


# --------------------------------------------------------------------------------------------
# error bound, op by op
# --------------------------------------------------------------------------------------------


@dataclass
class _State:
    """Interval of the exact values, error bound, and the magnitudes the fusion allowances use."""

    lo: np.ndarray
    hi: np.ndarray
    err: np.ndarray
    amag: np.ndarray  # absolute magnitude of the last (possibly fused) computation
    g: np.ndarray  # gamma of the dot product a following elementwise op may be fused into
    A: np.ndarray  # absolute magnitude of the whole computation (|W| propagated)


def _padded_windows(windows) -> np.ndarray:
    k = max(len(w) for w in windows)
    P = np.full((len(windows), k), -1, dtype=np.int64)
    for j, w in enumerate(windows):
        P[j, : len(w)] = w
    return P


def _window_max(v: np.ndarray, P: np.ndarray) -> np.ndarray:
    ext = np.append(v, -np.inf)
    return ext[P].max(1)  # index -1 picks the -inf


def _bound_ops(ops, st: _State) -> _State:
    for op in ops:
        st = _bound_op(op, st)
    return st


def _bound_op(op: Op, st: _State) -> _State:
    lo, hi, err = st.lo, st.hi, st.err
    zero = np.zeros_like(lo)
    if op.kind == "relu":
        lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
        return _State(lo, hi, err, np.maximum(np.abs(lo), np.abs(hi)), zero, st.A)
    if op.kind == "max":
        P = _padded_windows(op.windows)
        lo, hi = _window_max(lo, P), _window_max(hi, P)
        return _State(lo, hi, _window_max(err, P), np.maximum(np.abs(lo), np.abs(hi)),
                      np.zeros(len(P)), _window_max(st.A, P))
    if op.kind == "diag":
        a, c = op.W, op.b
        cand = np.stack([a * lo + c, a * hi + c])
        nlo, nhi = cand.min(0), cand.max(0)
        mag = np.maximum(np.abs(nlo), np.abs(nhi))
        aa, ac = np.abs(a), np.abs(c)
        if op.rounding == "bn":
            extra = op.mag if op.mag is not None else 0.0
            base = aa * st.amag + extra + ac
            new_err = aa * err + (8 * U32 + st.g) * base
            return _State(nlo, nhi, new_err, base, st.g, aa * st.A + extra + ac)
        factor = 2 * U32 if op.rounding == "div" else U32
        new_err = aa * err + factor * mag + st.g * (aa * st.amag + ac)
        return _State(nlo, nhi, new_err, aa * st.amag + ac, st.g, aa * st.A + ac)
    if op.kind == "sum":
        s0 = _bound_ops(op.branches[0], st)
        s1 = _bound_ops(op.branches[1], st)
        sign = -1.0 if op.rounding == "sub" else 1.0
        W, b = _compose_linear([op], None, None, len(lo))
        Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
        alo, ahi = Wp @ lo + Wn @ hi + b, Wp @ hi + Wn @ lo + b
        if sign > 0:
            ilo, ihi = s0.lo + s1.lo, s0.hi + s1.hi
        else:
            ilo, ihi = s0.lo - s1.hi, s0.hi - s1.lo
        nlo, nhi = np.maximum(alo, ilo), np.minimum(ahi, ihi)
        nhi = np.maximum(nlo, nhi)
        mag = np.maximum(np.abs(nlo), np.abs(nhi))
        g = s0.g + s1.g
        amag = s0.amag + s1.amag
        new_err = s0.err + s1.err + U32 * mag + g * amag
        return _State(nlo, nhi, new_err, amag, g, s0.A + s1.A)
    # affine
    W, b = op.W, op.b
    Wp, Wn = np.maximum(W, 0), np.minimum(W, 0)
    nlo, nhi = Wp @ lo + Wn @ hi + b, Wp @ hi + Wn @ lo + b
    mag_in = np.maximum(np.abs(lo), np.abs(hi))
    absW = np.abs(W)
    amag = absW @ mag_in + np.abs(b)
    A = absW @ st.A + np.abs(b)
    if op.rounding == "exact":
        return _State(nlo, nhi, absW @ err, amag, np.zeros(len(b)), A)
    nnz = np.count_nonzero(W, axis=1)
    g = _gamma(nnz + 1)
    return _State(nlo, nhi, absW @ err + g * amag, amag, g, A)
