"""A bound (thermometer encoding + binary layers) as rows of a mixed-integer program.

Over raw input variables ``x`` (continuous, inside a box):

- thermometer bit ``b_k`` of feature ``f`` (binary, or a constant where the box decides it):
  ``b_k = 1  =>  x_f >= t_k``  as  ``x_f - (t_k - lo_f) b_k >= lo_f``;
  ``b_k = 0  =>  x_f <= t_k``  as  ``x_f - (hi_f - t_k) b_k <= t_k`` (closed: the exact region
  ``x_f < t_k`` is widened by its boundary point, so a proof covers every real input and a
  counterexample on the boundary is moved to ``nextafter(t_k, -inf)`` before it is replayed,
  see :func:`snap_to_bits`); order ``b_(k+1) <= b_k``;
- neuron ``j`` of a binary layer with input bits ``a`` (variables or constants) and weight bits
  ``w``: the agreement of ``a_i`` and ``w_ji`` is ``a_i`` if ``w_ji = 1`` else ``1 - a_i``, so the
  count ``c_j = n0_j + sum_i s_ji a_i`` is linear (``s = +1`` where ``w = 1``, ``-1`` where
  ``w = 0``, ``n0_j`` the number of zero weights; a masked layer's sum runs over the bits the
  neuron reads only); the output ``h_j = [c_j >= T_j]`` is a binary
  with two big-M rows ``c_j - (T_j - L_j) h_j >= L_j`` and ``c_j - (U_j - T_j + 1) h_j <= T_j - 1``
  (``L_j, U_j`` the count's bounds given the constant inputs; a neuron the bounds decide is a
  constant);
- the last neuron's count is the bound's *score*, returned as a linear expression.

:func:`bound_rows` is checked against the numpy reference by enumerating every input of tiny
nets in tests/logic/test_certify.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...model.encoding import Thermometer
from ...model.intmodel import BoundNet
from ._milp import MilpBuilder


@dataclass
class Bits:
    """A vector of 0/1 quantities: builder variables where ``var >= 0``, else the constant."""

    var: np.ndarray  # int64, -1 where constant
    const: np.ndarray  # 0/1 value where constant (ignored where a variable)

    @property
    def is_var(self) -> np.ndarray:
        return self.var >= 0


def thermometer_rows(b: MilpBuilder, enc: Thermometer, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Bits:
    """Thermometer bits of raw inputs ``x`` (builder variables) constrained to ``[lo, hi]``."""
    n = enc.n_bits
    var = np.full(n, -1, dtype=np.int64)
    const = np.zeros(n, dtype=np.int64)
    for f in range(enc.n_kept):
        col = int(enc.feature_index[f])
        t = enc.feature_thresholds(f).astype(np.float64)
        prev = -1
        for k, tk in enumerate(t):
            i = int(enc.offsets[f]) + k
            if tk <= lo[col]:
                const[i] = 1
                continue
            if tk > hi[col]:
                const[i] = 0
                continue
            v = int(b.add_vars(0, 1, integer=True)[0])
            var[i] = v
            b.add_row([x[col], v], [1.0, -(tk - lo[col])], lo[col], np.inf)
            b.add_row([x[col], v], [1.0, -(hi[col] - tk)], -np.inf, tk)
            if prev >= 0:
                b.add_row([v, prev], [1.0, -1.0], -np.inf, 0.0)
            prev = v
    return Bits(var, const)


def _count_expr(wbits: np.ndarray, a: Bits, read: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """Agreement count of one neuron as ``const + sum val * var``; with its bounds (L, U).
    ``read`` (0/1 per input bit, a masked layer's mask row) keeps the bits the neuron reads."""
    if read is not None:
        keep = read.astype(bool)
        wbits, a = wbits[keep], Bits(a.var[keep], a.const[keep])
    s = np.where(wbits == 1, 1, -1)
    agree_const = np.where(wbits == 1, a.const, 1 - a.const)
    isv = a.is_var
    const = int(agree_const[~isv].sum()) + int((wbits[isv] == 0).sum())
    val = s[isv]
    L = const + int(val[val < 0].sum())
    U = const + int(val[val > 0].sum())
    return a.var[isv], val.astype(np.float64), const, L, U


def bound_rows(b: MilpBuilder, net: BoundNet, bits: Bits) -> tuple[tuple[np.ndarray, np.ndarray, float], int, int]:
    """Encode the bound's layers on input bits; returns the score expression
    ``(vars, coefficients, constant)`` and the score's bounds ``(L, U)``."""
    a = bits
    for layer in net.layers[:-1]:
        W = layer.weight_bits()
        R = layer.read_bits() if layer.masked else None
        var = np.full(layer.n_out, -1, dtype=np.int64)
        const = np.zeros(layer.n_out, dtype=np.int64)
        for j in range(layer.n_out):
            idx, val, c0, L, U = _count_expr(W[j], a, None if R is None else R[j])
            T = int(layer.thresholds[j])
            if L >= T:
                const[j] = 1
                continue
            if U < T:
                const[j] = 0
                continue
            h = int(b.add_vars(0, 1, integer=True)[0])
            var[j] = h
            # c - (T - L) h >= L  and  c - (U - T + 1) h <= T - 1, with c = c0 + val . a
            b.add_row(np.append(idx, h), np.append(val, -(T - L)), L - c0, np.inf)
            b.add_row(np.append(idx, h), np.append(val, -(U - T + 1)), -np.inf, T - 1 - c0)
        a = Bits(var, const)
    last = net.layers[-1]
    W = last.weight_bits()
    idx, val, c0, L, U = _count_expr(W[0], a, last.read_bits()[0] if last.masked else None)
    return (idx, val, float(c0)), L, U


def snap_to_bits(enc: Thermometer, x: np.ndarray, bit_values: np.ndarray) -> np.ndarray:
    """A float32 input whose thermometer code is ``bit_values`` (a valid code), as close to ``x``
    as possible: each kept feature is clamped into ``[t_(L-1), nextafter(t_L, -inf)]``."""
    x32 = np.asarray(x, dtype=np.float32).copy()
    levels = enc.levels(np.asarray(bit_values, dtype=np.int64)[None, :])[0]
    for f in range(enc.n_kept):
        col = int(enc.feature_index[f])
        t = enc.feature_thresholds(f)
        L = int(levels[f])
        if L > 0 and x32[col] < t[L - 1]:
            x32[col] = t[L - 1]
        if L < len(t) and x32[col] >= t[L]:
            x32[col] = np.nextafter(t[L], np.float32(-np.inf))
    return x32
