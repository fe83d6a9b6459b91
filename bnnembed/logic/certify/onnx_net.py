"""The DNN as a piecewise-linear network read from its ONNX graph, for verification.

Supported graphs go from the one input to the one output through these operators (the shape
after the batch dimension is tracked along the way, e.g. ``(C, H, W)`` or ``(F,)``, and every
tensor is flattened row-major, so flat index = ``c*H*W + h*W + w``):

- affine: ``Gemm`` (``transA=0``), ``MatMul`` by a constant matrix (on the last axis),
  ``Conv`` (1-D/2-D/3-D; ``pads``, ``strides``, ``dilations``, ``group``, ``auto_pad``, optional
  bias), ``BatchNormalization`` (inference), ``AveragePool`` (``count_include_pad``,
  ``ceil_mode``), ``GlobalAveragePool``, ``ReduceMean``/``ReduceSum`` over non-batch axes,
  ``Transpose`` keeping the batch first, ``Add``/``Sub``/``Mul``/``Div`` by a constant
  broadcast over the tensor (scalar, per-feature, per-channel ``(C, 1, 1)``...; ``Div`` with the
  tensor on the left), and ``Add``/``Sub`` of two tensors that are both affine functions of the
  same tensor (parallel linear branches; no ReLU or max between the branch point and the join);
- ``Relu``; ``MaxPool`` (``kernel_shape``, ``strides``, ``pads``, ``dilations``, ``ceil_mode``;
  no indices output), ``GlobalMaxPool`` and ``ReduceMax`` as a max over windows;
- shape only: ``Reshape`` (a constant target, or one computed from ``Shape(x)`` by
  ``Gather``/``Unsqueeze``/``Concat``/``Cast``... shape helpers, e.g. ``x.view(x.size(0), 1, 8, 8)``),
  ``Flatten`` (``axis=1``), ``Squeeze``/``Unsqueeze`` (not the batch axis), ``Identity``,
  ``Dropout``, ``Cast`` to float;
- a final ``Softmax``/``LogSoftmax`` (over the features; the argmax is unchanged) or, for one
  output, a final ``Sigmoid`` (yes iff logit > 0 iff p > 0.5) is stripped and recorded in
  :attr:`PlNet.output_stripped`: the network verified is the one computing the logits.

That covers the default DNN (:func:`bnnembed.learn.dnn.train_default_dnn`: ``(x - mean) * inv_std``
followed by ``Linear``/``ReLU`` layers), exported MLPs and the usual small CNNs
(``torch.onnx.export(..., dynamo=False)``, opsets 13-17). Anything else (tanh, residual
connections around a ReLU, several inputs...) is refused with one
:class:`~bnnembed.errors.BnnError` line naming the operator and its node.

:class:`PlNet` keeps the operators as read (so the floating-point error of the runtime can be
bounded op by op, :meth:`PlNet.fp_error_bound`) and also their fold into alternating affine and
ReLU layers, :attr:`PlNet.layers` (``y = W x + b``, ReLU between layers, none after the last),
computed in float64 (exact up to 2^-53 relative rounding, accounted for in the error bound).
A max is folded into ReLUs (:func:`fold_ops`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from ...errors import BnnError

U32 = 2.0 ** -24  # unit roundoff of float32

#: what the reader accepts, for error messages
SUPPORTED = (
    "Gemm, MatMul/Add/Sub/Mul/Div by constants, Conv, BatchNormalization, AveragePool, "
    "GlobalAveragePool, MaxPool, GlobalMaxPool, ReduceMean/ReduceSum/ReduceMax, Relu, Add/Sub of two "
    "affine branches of one tensor, Transpose, Reshape/Flatten/Squeeze/Unsqueeze/Identity/Dropout, "
    "and a final Softmax/LogSoftmax/Sigmoid"
)

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


# --------------------------------------------------------------------------------------------
# folding into affine/ReLU layers
# --------------------------------------------------------------------------------------------


def _mm(M: np.ndarray, W: np.ndarray | None) -> np.ndarray:
    return M if W is None else M @ W


def _apply_linear(op: Op, W: np.ndarray | None, b: np.ndarray | None, n: int):
    """Compose the pending map ``x -> W x + b`` (``W None`` = identity of width ``n``) with
    an affine/diag/sum op."""
    if b is None:
        b = np.zeros(n)
    if op.kind == "diag":
        Wn = np.diag(op.W) if W is None else op.W[:, None] * W
        return Wn, op.W * b + op.b
    if op.kind == "sum":
        W0, b0 = _compose_linear(op.branches[0], W, b, n)
        W1, b1 = _compose_linear(op.branches[1], W, b, n)
        if op.rounding == "sub":
            return W0 - W1, b0 - b1
        return W0 + W1, b0 + b1
    if op.kind == "affine":
        return _mm(op.W, W), op.W @ b + op.b
    raise ValueError(f"{op.kind} is not a linear op")


def _compose_linear(ops, W: np.ndarray | None, b: np.ndarray | None, n: int):
    """The affine map ``(W, b)`` of a chain of linear ops applied after ``x -> W x + b``."""
    if b is None:
        b = np.zeros(n)
    if W is None:
        W = np.eye(n)
    for op in ops:
        W, b = _apply_linear(op, W, b, W.shape[1])
    return W, b


def _fold_max(op: Op, W: np.ndarray | None, b: np.ndarray, n: int, nonneg: bool, layers: list):
    """Append the ReLU layers computing a max over windows; return the pending map after it.

    Pairwise reduction levels: ``max(a, c) = a + relu(c - a)``, ``a`` passed through the ReLU
    as ``relu(a) - relu(-a)`` (as ``relu(a)`` alone when the inputs are known >= 0, e.g. right
    after a ReLU). Each level is an affine layer producing the rows ``a``, ``-a``, ``c - a``
    (shared between windows), a ReLU, and an affine recombination folded into what follows.
    """
    groups = [list(w) for w in op.windows]
    if any(not g for g in groups):
        raise ValueError("empty max window")
    width = n  # size of the current vector v = W x + b
    while max(len(g) for g in groups) > 1:
        rows: dict[tuple, int] = {}  # row key -> row of the level's affine layer
        entries: list[list[tuple[int, float]]] = []  # new vector u: (row, coeff) terms
        ukeys: dict[tuple, int] = {}
        new_groups = []

        def row(key):
            if key not in rows:
                rows[key] = len(rows)
            return rows[key]

        def passthrough(i):
            terms = [(row(("p", i)), 1.0)]
            if not nonneg:
                terms.append((row(("n", i)), -1.0))
            return terms

        for g in groups:
            ng = []
            for k in range(0, len(g), 2):
                if k + 1 < len(g):
                    i, j = g[k], g[k + 1]
                    key = ("max", i, j)
                    if key not in ukeys:
                        ukeys[key] = len(entries)
                        entries.append(passthrough(i) + [(row(("d", i, j)), 1.0)])
                else:
                    key = ("pass", g[k])
                    if key not in ukeys:
                        ukeys[key] = len(entries)
                        entries.append(passthrough(g[k]))
                ng.append(ukeys[key])
            new_groups.append(ng)
        mr, mc, mv = [], [], []
        for key, r in rows.items():
            if key[0] == "d":
                mr += [r, r]
                mc += [key[2], key[1]]
                mv += [1.0, -1.0]
            else:
                mr.append(r)
                mc.append(key[1])
                mv.append(1.0 if key[0] == "p" else -1.0)
        M = sparse.csr_matrix((mv, (mr, mc)), shape=(len(rows), width))
        layers.append((_dense(M, W), M @ b))
        rr = [u for u, terms in enumerate(entries) for _ in terms]
        rc = [r for terms in entries for r, _ in terms]
        rv = [c for terms in entries for _, c in terms]
        W = sparse.csr_matrix((rv, (rr, rc)), shape=(len(entries), len(rows)))
        b = np.zeros(len(entries))
        width = len(entries)
        groups = new_groups
    S = sparse.csr_matrix((np.ones(len(groups)), (np.arange(len(groups)), [g[0] for g in groups])),
                          shape=(len(groups), width))
    return _dense(S, W), S @ b


def _dense(M, W) -> np.ndarray:
    """``M @ W`` as a dense array (``M`` sparse; ``W`` None = identity, dense or sparse)."""
    if W is None:
        return M.toarray()
    out = M @ W
    return out.toarray() if sparse.issparse(out) else np.asarray(out)


def fold_ops(ops: list[Op], n_in: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Merge consecutive linear operators into ``(W, b)`` layers separated by ReLUs; a ``max``
    becomes ReLU layers (see :func:`_fold_max`), so :meth:`PlNet.forward` on the layers computes
    the max exactly."""
    layers: list[tuple[np.ndarray, np.ndarray]] = []
    W: np.ndarray | None = None  # pending map x -> W x + b; None = identity
    n = n_in
    b = np.zeros(n)
    nonneg = False  # the pending map's output is known >= 0 (right after a ReLU)
    for op in ops:
        if op.kind == "relu":
            layers.append((np.eye(n) if W is None else W, b))
            W, b = None, np.zeros(n)
            nonneg = True
            continue
        if op.kind == "max":
            # with inputs >= 0 the recombination has nonnegative coefficients: the output stays >= 0
            W, b = _fold_max(op, W, b, n, nonneg, layers)
            n = W.shape[0]
            continue
        W, b = _apply_linear(op, W, b, n)
        n = W.shape[0]
        nonneg = False
    layers.append((np.eye(n) if W is None else W, b))
    # a ReLU right after a ReLU leaves an identity layer; drop identity layers between ReLUs
    cleaned = []
    for i, (W, b) in enumerate(layers):
        is_id = W.shape[0] == W.shape[1] and np.array_equal(W, np.eye(W.shape[0])) and not b.any()
        if is_id and 0 < i < len(layers) - 1:
            continue
        cleaned.append((W, b))
    return cleaned


# --------------------------------------------------------------------------------------------
# geometry of convolutions and pools
# --------------------------------------------------------------------------------------------


def _pads(auto_pad: str, sp, k_eff, strides, pads):
    nd = len(sp)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pb, pe = [], []
        for i in range(nd):
            out = -(-sp[i] // strides[i])
            total = max((out - 1) * strides[i] + k_eff[i] - sp[i], 0)
            small = total // 2
            big = total - small
            pb.append(small if auto_pad == "SAME_UPPER" else big)
            pe.append(big if auto_pad == "SAME_UPPER" else small)
        return pb, pe
    if auto_pad == "VALID":
        return [0] * nd, [0] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    return pads[:nd], pads[nd:]


def _out_size(n, pb, pe, k_eff, s, ceil_mode):
    span = n + pb + pe - k_eff
    if span < 0:
        return 0
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + pb:  # the last window would start in the end padding
        out -= 1
    return out


def _conv_matrix(in_shape, w, strides, pb, pe, dil, group):
    """Dense ``(out, in)`` matrix of a convolution over the flattened ``(C, *spatial)`` tensor."""
    C, sp = in_shape[0], tuple(in_shape[1:])
    M, Cg, k = w.shape[0], w.shape[1], tuple(w.shape[2:])
    nd = len(sp)
    k_eff = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
    out_sp = tuple(_out_size(sp[i], pb[i], pe[i], k_eff[i], strides[i], False) for i in range(nd))
    if min(out_sp) <= 0:
        return None, out_sp
    Pin, Pout = int(np.prod(sp)), int(np.prod(out_sp))
    Wd = np.zeros((M * Pout, C * Pin))
    O = np.indices(out_sp).reshape(nd, -1)
    st = np.array(strides)[:, None]
    Mg = M // group
    m = np.arange(M)
    c = (m // Mg)[:, None] * Cg + np.arange(Cg)[None, :]  # (M, Cg) input channels
    for kidx in np.ndindex(*k):
        pos = O * st - np.array(pb)[:, None] + (np.array(kidx) * np.array(dil))[:, None]
        valid = np.all((pos >= 0) & (pos < np.array(sp)[:, None]), axis=0)
        if not valid.any():
            continue
        in_sp = np.ravel_multi_index(tuple(pos[:, valid]), sp)
        out_p = np.flatnonzero(valid)
        rows = (m[:, None, None] * Pout + out_p[None, None, :])
        cols = c[:, :, None] * Pin + in_sp[None, None, :]
        vals = w[(slice(None), slice(None)) + kidx][:, :, None]
        rows, cols, vals = np.broadcast_arrays(rows, cols, vals)
        Wd[rows.ravel(), cols.ravel()] = vals.ravel()
    return Wd, (M,) + out_sp


def _pool_windows(in_shape, k, strides, pb, pe, dil, ceil_mode):
    """Per output (row-major ``(C, *out_spatial)``): input flat indices of the window (padding
    left out) and the count of the window clipped to the padded input (for averages)."""
    C, sp = in_shape[0], tuple(in_shape[1:])
    nd = len(sp)
    k_eff = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
    out_sp = tuple(_out_size(sp[i], pb[i], pe[i], k_eff[i], strides[i], ceil_mode) for i in range(nd))
    if min(out_sp) <= 0:
        return None, None, out_sp
    Pin = int(np.prod(sp))
    wins, counts = [], []
    for o in np.ndindex(*out_sp):
        start = [o[i] * strides[i] - pb[i] for i in range(nd)]
        cells = []
        for kidx in np.ndindex(*k):
            pos = [start[i] + kidx[i] * dil[i] for i in range(nd)]
            if all(0 <= pos[i] < sp[i] for i in range(nd)):
                cells.append(int(np.ravel_multi_index(pos, sp)))
        cnt = 1
        for i in range(nd):
            cnt *= min(start[i] + k_eff[i], sp[i] + pe[i]) - start[i]
        wins.append(cells)
        counts.append(cnt)
    all_w = [tuple(c * Pin + i for i in w) for c in range(C) for w in wins]
    all_c = counts * C
    return all_w, all_c, (C,) + out_sp


def _reduce_windows(shape, axes, keepdims):
    """Groups of flat indices reduced together (row-major order of the kept axes)."""
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    kept = [i for i in range(len(shape)) if i not in axes]
    moved = np.moveaxis(idx, list(axes), list(range(len(kept), len(shape)))) if axes else idx
    groups = moved.reshape(int(np.prod([shape[i] for i in kept])) if kept else 1, -1)
    if keepdims:
        out = tuple(1 if i in axes else shape[i] for i in range(len(shape)))
    else:
        out = tuple(shape[i] for i in kept)
    return [tuple(int(v) for v in g) for g in groups], out


# --------------------------------------------------------------------------------------------
# reading ONNX
# --------------------------------------------------------------------------------------------

_META = {"Identity", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout", "Cast"}
_STRIP = {"Softmax", "LogSoftmax", "Sigmoid"}
_BATCH_SENTINEL = 1_000_003  # stands for an unknown batch size when evaluating shape helpers


@dataclass(frozen=True)
class _Chain:
    """A tensor computed from the input: ``prefix`` ops up to the last ReLU/max (its ``base``),
    then the linear ops ``lin``; ``shape`` after the batch dimension."""

    prefix: tuple
    base: int
    lin: tuple
    shape: tuple
    stripped: str = ""

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def then(self, op: Op | None, shape=None) -> "_Chain":
        lin = self.lin if op is None else self.lin + (op,)
        return _Chain(self.prefix, self.base, lin, tuple(self.shape if shape is None else shape), self.stripped)


def read_onnx(path: str) -> PlNet:
    """Read an ONNX MLP or CNN (see the module docstring for what is supported)."""
    import onnx

    try:
        model = onnx.load(path)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise BnnError(f"{path}: cannot read the ONNX model ({str(exc).splitlines()[0]})") from None
    return _Reader(model, path).read()


class _Reader:
    def __init__(self, model, path: str) -> None:
        self.model = model
        self.path = path
        self.g = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.consts: dict[str, np.ndarray] = {}
        self.helpers: dict[str, np.ndarray | None] = {}  # shape helpers, with values when known
        self.chains: dict[str, _Chain] = {}
        self.n_bases = 0
        self._inferred = None
        self.batch = _BATCH_SENTINEL

    # ---------------------------------------------------------------- helpers

    def attr(self, node, name, default):
        import onnx

        for a in node.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def refuse(self, node, why):
        raise BnnError(
            f"{self.path}: operator {node.op_type} ({node.name or node.output[0]}) {why}; "
            f"verification supports {SUPPORTED}"
        )

    def inferred(self) -> dict:
        """Shapes from ONNX shape inference with data propagation: name -> dims (int or None)."""
        if self._inferred is None:
            import onnx

            self._inferred = {}
            try:
                inf = onnx.shape_inference.infer_shapes(self.model, data_prop=True)
            except Exception:  # inference is only a help
                return self._inferred
            for v in list(inf.graph.value_info) + list(inf.graph.output):
                t = v.type.tensor_type
                if t.HasField("shape"):
                    self._inferred[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        return self._inferred

    def const(self, node, name, what="a constant"):
        if name not in self.consts:
            self.refuse(node, f"needs {what} as input {name!r}")
        return self.consts[name]

    def evaluate(self, node, values):
        """Run a node on constant inputs with the ONNX reference evaluator (None if it cannot)."""
        try:
            from onnx.reference import ReferenceEvaluator

            ev = ReferenceEvaluator(node, opsets={"": self.opset})
            feeds = {n: v for n, v in zip(node.input, values) if n}
            outs = ev.run(None, feeds)
            return [np.asarray(o) for o in outs]
        except Exception:  # anything the evaluator cannot do is simply unknown
            return None

    def new_base(self, x: _Chain, op: Op, shape) -> _Chain:
        self.n_bases += 1
        return _Chain(x.prefix + x.lin + (op,), self.n_bases, (), tuple(shape))

    # ---------------------------------------------------------------- main loop

    def read(self) -> PlNet:
        from onnx import numpy_helper

        g = self.g
        for t in g.initializer:
            self.consts[t.name] = numpy_helper.to_array(t)
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise BnnError(f"{self.path}: verification needs a DNN with one input and one output")
        tdims = inputs[0].type.tensor_type.shape.dim
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tdims]
        if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
            raise BnnError(f"{self.path}: input shape {dims} is not (batch, features...) with known features")
        if dims[0] > 0:
            self.batch = dims[0]
        in_shape = tuple(int(d) for d in dims[1:])
        n_in = int(np.prod(in_shape))
        self.chains[inputs[0].name] = _Chain((), 0, (), in_shape)

        out_name = g.output[0].name
        producer = {o: n for n in g.node for o in n.output if o}
        needed, stack = set(), [out_name]
        while stack:
            name = stack.pop()
            n = producer.get(name)
            if n is None or id(n) in needed:
                continue
            needed.add(id(n))
            stack.extend(i for i in n.input if i)
        for node in g.node:
            if id(node) in needed:
                self.node(node)
        if out_name not in self.chains:
            raise BnnError(f"{self.path}: the output {out_name} is not reached by a chain from the input")
        x = self.chains[out_name]
        ops = list(x.prefix + x.lin)
        if not ops:
            raise BnnError(f"{self.path}: the graph computes nothing verification can encode")
        return PlNet(n_in, ops, output_stripped=x.stripped, in_shape=in_shape)

    def node(self, node) -> None:
        import onnx
        from onnx import numpy_helper

        op = node.op_type
        if op == "Constant":
            for a in node.attribute:
                v = onnx.helper.get_attribute_value(a)
                if a.name == "value":
                    self.consts[node.output[0]] = numpy_helper.to_array(v)
                elif a.name in ("value_float", "value_floats"):
                    self.consts[node.output[0]] = np.asarray(v, dtype=np.float32)
                elif a.name in ("value_int", "value_ints"):
                    self.consts[node.output[0]] = np.asarray(v, dtype=np.int64)
                else:
                    self.refuse(node, f"holds a {a.name} constant")
            return
        ins = [i for i in node.input if i]
        chain_ins = [i for i in ins if i in self.chains]
        if not chain_ins:
            if all(i in self.consts for i in ins):
                vals = self.evaluate(node, [self.consts.get(i) for i in node.input])
                if vals is None:
                    self.refuse(node, "could not be evaluated on its constant inputs")
                for name, v in zip(node.output, vals):
                    self.consts[name] = v
                return
            if all(i in self.consts or i in self.helpers for i in ins):
                known = all(i in self.consts or self.helpers[i] is not None for i in ins)
                vals = None
                if known:
                    vals = self.evaluate(node, [self.consts[i] if i in self.consts else self.helpers.get(i)
                                                for i in node.input])
                for k, name in enumerate(node.output):
                    self.helpers[name] = vals[k] if vals is not None else None
                return
            self.refuse(node, "is off the input-to-output chain")
        x = self.chains[chain_ins[0]]
        if op in ("Shape", "Size"):
            if op == "Shape":
                full = np.array((self.batch,) + x.shape, dtype=np.int64)
                start, end = self.attr(node, "start", 0), self.attr(node, "end", None)
                self.helpers[node.output[0]] = full[start:end]
            else:
                self.helpers[node.output[0]] = None
            return
        if x.stripped and op not in _META:
            self.refuse(node, f"follows the final {x.stripped}, which is only supported as the last operator")
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            self.refuse(node, "is not supported")
        try:
            y = handler(node, x)
        except BnnError:
            raise
        except Exception as exc:  # a malformed or unusual node: still one line naming it
            first = str(exc).splitlines()[0] if str(exc) else ""
            self.refuse(node, f"could not be read ({type(exc).__name__}: {first})")
        if op not in _STRIP:
            self.check_shape(node, y)
        self.chains[node.output[0]] = y

    def check_shape(self, node, y: _Chain) -> None:
        dims = self.inferred().get(node.output[0])
        if dims and len(dims) >= 1 and all(d for d in dims[1:]):
            if tuple(dims[1:]) != tuple(y.shape):
                self.refuse(node, f"gives shape {tuple(y.shape)} here but {tuple(dims[1:])} by ONNX "
                            "shape inference")

    # ---------------------------------------------------------------- shape-only operators

    def op_Identity(self, node, x):
        return x

    def op_Dropout(self, node, x):
        if len(node.output) > 1 and node.output[1] and any(node.output[1] in n.input for n in self.g.node):
            self.refuse(node, "has its mask output used")
        return x

    def op_Cast(self, node, x):
        if self.attr(node, "to", 1) != 1:
            self.refuse(node, "casts the input to a type other than float")
        return x

    def op_Flatten(self, node, x):
        axis = self.attr(node, "axis", 1)
        if axis < 0:
            axis += len(x.shape) + 1
        if axis != 1:
            self.refuse(node, "flattens the batch dimension with features (axis must be 1)")
        return x.then(None, (x.size,))

    def _axes(self, node, x, out_rank):
        axes = self.attr(node, "axes", None)
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node, node.input[1], "constant axes").reshape(-1).tolist()
        if axes is None:
            return None
        axes = sorted(int(a) + out_rank if int(a) < 0 else int(a) for a in axes)
        if 0 in axes:
            self.refuse(node, "acts on the batch axis")
        return axes

    def op_Squeeze(self, node, x):
        axes = self._axes(node, x, len(x.shape) + 1)
        if axes is None:
            return x.then(None, tuple(d for d in x.shape if d != 1))
        if any(x.shape[a - 1] != 1 for a in axes):
            self.refuse(node, "squeezes an axis of size other than 1")
        return x.then(None, tuple(d for i, d in enumerate(x.shape) if i + 1 not in axes))

    def op_Unsqueeze(self, node, x):
        n_ax = len(self.attr(node, "axes", None) or []) or (
            self.const(node, node.input[1], "constant axes").size if len(node.input) > 1 else 0)
        axes = self._axes(node, x, len(x.shape) + 1 + n_ax)
        if not axes:
            self.refuse(node, "has no axes")
        full = [None] + list(x.shape)
        for a in axes:
            full.insert(a, 1)
        return x.then(None, tuple(full[1:]))

    def op_Reshape(self, node, x):
        size = x.size
        shp = node.input[1]
        target = None
        if shp in self.consts:
            target = [int(v) for v in np.asarray(self.consts[shp]).reshape(-1)]
            allowzero = self.attr(node, "allowzero", 0)
            if not allowzero:
                full = (self.batch,) + tuple(x.shape)
                target = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(target)]
        else:
            # a computed target: ONNX shape inference (with data propagation) when it knows every
            # dimension after the batch (their product then pins the first one as the batch),
            # else the shape helpers evaluated with a stand-in batch size
            dims = self.inferred().get(node.output[0])
            if dims and len(dims) >= 2 and all(dims[1:]) and int(np.prod(dims[1:])) == size:
                target = [self.batch] + list(dims[1:])
            elif self.helpers.get(shp) is not None:
                target = [int(v) for v in np.asarray(self.helpers[shp]).reshape(-1)]
                if not self.attr(node, "allowzero", 0):
                    full = (self.batch,) + tuple(x.shape)
                    target = [full[i] if v == 0 and i < len(full) else v for i, v in enumerate(target)]
            else:
                self.refuse(node, "has a target shape that could not be worked out")
        if len(target) < 2:
            self.refuse(node, f"reshapes to {target}, without a separate batch dimension")
        first, rest = target[0], list(target[1:])
        if any(v < -1 or v == 0 for v in rest) or rest.count(-1) > 1:
            self.refuse(node, f"reshapes to {target}")
        if first == -1:
            if -1 in rest or int(np.prod(rest)) != size:
                self.refuse(node, f"reshapes to {target}, mixing the batch dimension with features")
        elif first == self.batch:
            if -1 in rest:
                known = int(np.prod([v for v in rest if v != -1]))
                if known <= 0 or size % known:
                    self.refuse(node, f"reshapes {size} features to {target}")
                rest[rest.index(-1)] = size // known
            if int(np.prod(rest)) != size:
                self.refuse(node, f"reshapes {size} features to {target}")
        else:
            self.refuse(node, f"reshapes to {target}, changing the batch dimension")
        return x.then(None, tuple(rest))

    def op_Transpose(self, node, x):
        r = len(x.shape) + 1
        perm = list(self.attr(node, "perm", list(range(r))[::-1]))
        if perm[0] != 0:
            self.refuse(node, "moves the batch axis")
        p = [a - 1 for a in perm[1:]]
        idx = np.arange(x.size).reshape(x.shape).transpose(p).reshape(-1)
        P = np.zeros((x.size, x.size))
        P[np.arange(x.size), idx] = 1.0
        return x.then(Op("affine", P, np.zeros(x.size), "exact"), tuple(x.shape[a] for a in p))

    # ---------------------------------------------------------------- nonlinear operators

    def op_Relu(self, node, x):
        return self.new_base(x, Op("relu"), x.shape)

    def _max(self, node, x, windows, shape):
        if any(not w for w in windows):
            self.refuse(node, "has a window made only of padding")
        return self.new_base(x, Op("max", windows=tuple(tuple(w) for w in windows)), shape)

    def op_MaxPool(self, node, x):
        if len(node.output) > 1 and node.output[1]:
            self.refuse(node, "has its indices output used")
        k, strides, pb, pe, dil = self._pool_geometry(node, x)
        ceil = self.attr(node, "ceil_mode", 0)
        wins, _, shape = _pool_windows(x.shape, k, strides, pb, pe, dil, ceil)
        if wins is None:
            self.refuse(node, f"gives an empty output on shape {x.shape}")
        return self._max(node, x, wins, shape)

    def op_GlobalMaxPool(self, node, x):
        if len(x.shape) < 2:
            self.refuse(node, "needs a (C, spatial...) tensor")
        wins, shape = _reduce_windows(x.shape, list(range(1, len(x.shape))), True)
        return self._max(node, x, wins, shape)

    def _reduce_axes(self, node, x):
        axes = self.attr(node, "axes", None)
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node, node.input[1], "constant axes").reshape(-1).tolist()
        if not axes:
            if self.attr(node, "noop_with_empty_axes", 0):
                return [], bool(self.attr(node, "keepdims", 1))
            self.refuse(node, "reduces over the batch axis")
        r = len(x.shape) + 1
        axes = sorted(int(a) + r if int(a) < 0 else int(a) for a in axes)
        if 0 in axes:
            self.refuse(node, "reduces over the batch axis")
        return [a - 1 for a in axes], bool(self.attr(node, "keepdims", 1))

    def op_ReduceMax(self, node, x):
        axes, keep = self._reduce_axes(node, x)
        wins, shape = _reduce_windows(x.shape, axes, keep)
        return self._max(node, x, wins, shape)

    # ---------------------------------------------------------------- affine operators

    def _averaging(self, x, windows, counts, shape, scale_sum=False):
        W = np.zeros((len(windows), x.size))
        for j, (w, c) in enumerate(zip(windows, counts)):
            W[j, list(w)] = 1.0 if scale_sum else 1.0 / c
        return x.then(Op("affine", W, np.zeros(len(windows)), "dot"), shape)

    def op_ReduceMean(self, node, x):
        axes, keep = self._reduce_axes(node, x)
        wins, shape = _reduce_windows(x.shape, axes, keep)
        return self._averaging(x, wins, [len(w) for w in wins], shape)

    def op_ReduceSum(self, node, x):
        axes, keep = self._reduce_axes(node, x)
        wins, shape = _reduce_windows(x.shape, axes, keep)
        return self._averaging(x, wins, [1] * len(wins), shape, scale_sum=True)

    def op_GlobalAveragePool(self, node, x):
        if len(x.shape) < 2:
            self.refuse(node, "needs a (C, spatial...) tensor")
        wins, shape = _reduce_windows(x.shape, list(range(1, len(x.shape))), True)
        return self._averaging(x, wins, [len(w) for w in wins], shape)

    def _pool_geometry(self, node, x):
        if len(x.shape) < 2:
            self.refuse(node, f"needs a (C, spatial...) tensor, the chain carries shape {x.shape}")
        nd = len(x.shape) - 1
        k = list(self.attr(node, "kernel_shape", []))
        if len(k) != nd:
            self.refuse(node, f"has kernel_shape {k} for {nd} spatial dimensions")
        strides = list(self.attr(node, "strides", None) or [1] * nd)
        dil = list(self.attr(node, "dilations", None) or [1] * nd)
        k_eff = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
        auto = self.attr(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        pb, pe = _pads(auto, x.shape[1:], k_eff, strides, self.attr(node, "pads", None))
        return k, strides, pb, pe, dil

    def op_AveragePool(self, node, x):
        k, strides, pb, pe, dil = self._pool_geometry(node, x)
        ceil = self.attr(node, "ceil_mode", 0)
        wins, counts, shape = _pool_windows(x.shape, k, strides, pb, pe, dil, ceil)
        if wins is None:
            self.refuse(node, f"gives an empty output on shape {x.shape}")
        if not self.attr(node, "count_include_pad", 0):
            counts = [len(w) for w in wins]
        if any(not w for w in wins):
            self.refuse(node, "has a window made only of padding")
        return self._averaging(x, wins, counts, shape)

    def op_Conv(self, node, x):
        if len(x.shape) < 2:
            self.refuse(node, f"needs a (C, spatial...) tensor, the chain carries shape {x.shape}")
        if node.input[0] != chain_name(node, self.chains):
            self.refuse(node, "has a computed weight")
        w = self.const(node, node.input[1], "a constant weight").astype(np.float64)
        nd = len(x.shape) - 1
        group = int(self.attr(node, "group", 1))
        if w.ndim != nd + 2 or w.shape[1] * group != x.shape[0] or w.shape[0] % group:
            self.refuse(node, f"has a weight of shape {w.shape} for an input of shape {x.shape} "
                        f"and group {group}")
        strides = list(self.attr(node, "strides", None) or [1] * nd)
        dil = list(self.attr(node, "dilations", None) or [1] * nd)
        k_eff = [(w.shape[2 + i] - 1) * dil[i] + 1 for i in range(nd)]
        auto = self.attr(node, "auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        pb, pe = _pads(auto, x.shape[1:], k_eff, strides, self.attr(node, "pads", None))
        Wd, shape = _conv_matrix(x.shape, w, strides, pb, pe, dil, group)
        if Wd is None:
            self.refuse(node, f"gives an empty output on shape {x.shape}")
        P = int(np.prod(shape[1:]))
        if len(node.input) > 2 and node.input[2]:
            bias = self.const(node, node.input[2], "a constant bias").astype(np.float64).reshape(-1)
            b = np.repeat(bias, P)
        else:
            b = np.zeros(Wd.shape[0])
        return x.then(Op("affine", Wd, b, "dot"), shape)

    def op_BatchNormalization(self, node, x):
        if self.attr(node, "training_mode", 0):
            self.refuse(node, "is in training mode")
        scale, B, mean, var = (self.const(node, n, "constant statistics").astype(np.float64).reshape(-1)
                               for n in node.input[1:5])
        eps = float(self.attr(node, "epsilon", 1e-5))
        C = x.shape[0]
        if not all(len(v) == C for v in (scale, B, mean, var)):
            self.refuse(node, f"has statistics of size {len(scale)} for {C} channels")
        a = scale / np.sqrt(var + eps)
        c = B - mean * a
        P = int(np.prod(x.shape[1:]))
        mag = np.repeat(np.abs(a * mean) + np.abs(B), P)
        return x.then(Op("diag", np.repeat(a, P), np.repeat(c, P), "bn", mag=mag))

    def op_Gemm(self, node, x):
        if node.input[0] not in self.chains or self.attr(node, "transA", 0):
            self.refuse(node, "has the input as its weight operand")
        if len(x.shape) != 1:
            self.refuse(node, f"needs a (batch, features) input, the chain carries shape {x.shape}")
        Bm = self.const(node, node.input[1], "a constant weight").astype(np.float64)
        Bm = Bm.T if self.attr(node, "transB", 0) else Bm
        W = self.attr(node, "alpha", 1.0) * Bm.T
        if len(node.input) > 2 and node.input[2]:
            c = self.const(node, node.input[2], "a constant bias").astype(np.float64)
        else:
            c = np.zeros(W.shape[0])
        try:
            b = self.attr(node, "beta", 1.0) * np.broadcast_to(c.reshape(-1), (W.shape[0],)).astype(np.float64)
        except ValueError:
            self.refuse(node, f"has a bias of shape {c.shape}")
        if W.shape[1] != x.size:
            self.refuse(node, f"expects {W.shape[1]} inputs but the chain carries {x.size}")
        return x.then(Op("affine", W, b, "dot"), (W.shape[0],))

    def op_MatMul(self, node, x):
        if node.input[0] not in self.chains or node.input[1] not in self.consts:
            self.refuse(node, "is not input @ constant")
        Wc = self.consts[node.input[1]].astype(np.float64)
        K = x.shape[-1]
        if Wc.ndim == 1:
            Wc, drop = Wc[:, None], True
        else:
            drop = False
        if Wc.ndim != 2 or Wc.shape[0] != K:
            self.refuse(node, f"has a weight of shape {Wc.shape} for an input of shape {x.shape}")
        m = x.size // K
        W = Wc.T if m == 1 else np.kron(np.eye(m), Wc.T)
        shape = tuple(x.shape[:-1]) + (() if drop else (Wc.shape[1],))
        return x.then(Op("affine", W, np.zeros(W.shape[0]), "dot"), shape)

    def _const_flat(self, node, k, x):
        k = np.asarray(k, dtype=np.float64)
        full = (1,) + tuple(x.shape)
        try:
            if np.broadcast_shapes(k.shape, full) != full:
                raise ValueError
        except ValueError:
            self.refuse(node, f"broadcasts a constant of shape {k.shape} to more than the tensor's "
                        f"shape {tuple(x.shape)}")
        return np.broadcast_to(k, full).reshape(-1).astype(np.float64)

    def _binary(self, node, x, op):
        a, b = node.input[0], node.input[1]
        if a in self.chains and b in self.chains:
            if op in ("Mul", "Div"):
                self.refuse(node, "multiplies or divides two computed tensors")
            return self._sum(node, self.chains[a], self.chains[b], op == "Sub")
        other = b if a in self.chains else a
        if other not in self.consts:
            self.refuse(node, "combines the chain with a tensor that is not a constant")
        k = self._const_flat(node, self.consts[other], x)
        left = a in self.chains
        n = x.size
        if op == "Add":
            return x.then(Op("diag", np.ones(n), k.copy(), "add"))
        if op == "Sub":
            return x.then(Op("diag", np.ones(n) if left else -np.ones(n), -k if left else k.copy(), "add"))
        if op == "Mul":
            return x.then(Op("diag", k.copy(), np.zeros(n), "mul"))
        if not left or np.any(k == 0):
            self.refuse(node, "divides by the input or by zero")
        return x.then(Op("diag", 1.0 / k, np.zeros(n), "div"))

    def op_Add(self, node, x):
        return self._binary(node, x, "Add")

    def op_Sub(self, node, x):
        return self._binary(node, x, "Sub")

    def op_Mul(self, node, x):
        return self._binary(node, x, "Mul")

    def op_Div(self, node, x):
        return self._binary(node, x, "Div")

    def _sum(self, node, x0: _Chain, x1: _Chain, sub: bool) -> _Chain:
        if x0.shape != x1.shape:
            self.refuse(node, f"adds tensors of shapes {x0.shape} and {x1.shape}")
        if x0.base != x1.base:
            self.refuse(node, "adds two branches of which one passes through a ReLU or max the other "
                        "does not (a residual connection around a nonlinearity); only branches that are "
                        "both affine in the same tensor can be added")
        i = 0
        while i < min(len(x0.lin), len(x1.lin)) and x0.lin[i] is x1.lin[i]:
            i += 1
        op = Op("sum", branches=(tuple(x0.lin[i:]), tuple(x1.lin[i:])), rounding="sub" if sub else "add")
        return _Chain(x0.prefix, x0.base, x0.lin[:i] + (op,), x0.shape)

    # ---------------------------------------------------------------- final squashing

    def _strip(self, node, x, what):
        return _Chain(x.prefix, x.base, x.lin, x.shape, what)

    def op_Sigmoid(self, node, x):
        if x.size != 1:
            self.refuse(node, f"is over {x.size} outputs (a final Sigmoid is supported for one output)")
        return self._strip(node, x, "Sigmoid")

    def op_Softmax(self, node, x):
        r = len(x.shape) + 1
        axis = int(self.attr(node, "axis", -1 if self.opset >= 13 else 1))
        axis = axis + r if axis < 0 else axis
        if axis == 0:
            self.refuse(node, "is over the batch axis")
        if self.opset >= 13:
            others = int(np.prod([d for i, d in enumerate(x.shape) if i + 1 != axis]))
            if others != 1:
                self.refuse(node, f"is over one axis of the shape {x.shape}, not over all features")
        elif axis != 1:
            self.refuse(node, f"is over axes {axis}.. of the shape {x.shape}, not over all features")
        return self._strip(node, x, node.op_type)

    op_LogSoftmax = op_Softmax


def chain_name(node, chains) -> str | None:
    """The first input of ``node`` that is a chain tensor."""
    return next((i for i in node.input if i in chains), None)
