"""Folding a chain of :class:`~.plnet.Op` operators into alternating affine and ReLU layers.

Consecutive linear operators (``affine``, ``diag``, ``sum``) are composed into one ``(W, b)``
layer in float64; a ``relu`` closes the pending layer; a ``max`` over windows becomes extra
ReLU layers (``max(a, c) = a + relu(c - a)``, :func:`_fold_max`), so the folded layers compute
the max exactly. :func:`_compose_linear` is also what the error bound uses to get the exact
interval of a two-branch ``sum``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from .plnet import Op


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
    becomes ReLU layers (see :func:`_fold_max`), so :meth:`~.plnet.PlNet.forward` on the layers
    computes the max exactly."""
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
