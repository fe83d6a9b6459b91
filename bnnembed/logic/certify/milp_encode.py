"""The DNN as MILP rows: big-M ReLU encoding of a :class:`~.plnet.PlNet`, and refutation rows.

:func:`encode_dnn` adds the folded layers to a :class:`~._milp.MilpBuilder` on given input
variables: stable neurons are constants or equalities, each unstable one gets a binary and
big-M rows from its pre-activation bounds (or, with ``relax``, the triangle relaxation used by
the LP tightening). :func:`add_refutation` adds the rows saying "the claim fails with margin
eps" (with selector binaries when several columns can win) and returns an objective steering
towards violations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._milp import MilpBuilder
from .claims import Sides
from .plnet import PlNet


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
