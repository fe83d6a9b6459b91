"""Cardinality encodings: a layer's neurons ``h <=> (l_1 + ... + l_n >= T)`` as clauses.

Every neuron is a *reified* cardinality constraint over signed literals, encoded in both
directions (its output feeds the next layer with both polarities). :func:`encode_layer` writes
a layer's neurons into a :class:`~bnnembed.render.cnf.clauses.ClauseSink` with one of the
encodings of :class:`CardEncoding` (compared in docs/cnf.md):

``adder`` (default)
    A parallel counter: the literals are summed in binary by full adders (``s <=> a xor b xor c``,
    8 clauses; ``carry <=> maj(a, b, c)``, 6 clauses) and half adders, compressing column by
    column (Wallace/Dadda style, FIFO per column so the tree stays shallow), then the binary sum
    is compared with the constant ``T`` by a chain of AND/OR gates from the least significant bit:
    ``G_i = s_i AND G_{i-1}`` where bit ``i`` of ``T`` is 1, ``s_i OR G_{i-1}`` where it is 0,
    ``G_{-1} = true``; ``h = G_top``. About 14 clauses per synapse, every gate a full Tseitin
    definition, so fixing the inputs unit-propagates every neuron.
``totalizer``
    A two-way totalizer (both ``sum >= k => o_k`` and ``o_k => sum >= k``), outputs cut at ``T``.
``seqcounter``
    A two-way sequential counter ``s_{i,j} <=> s_{i-1,j} OR (s_{i-1,j-1} AND l_i)``, ``j <= T``.
``sortnet``
    Batcher's odd-even merge sorting network with two-way comparators (``max = a OR b``,
    ``min = a AND b``), only the gates in the cone of output ``T`` emitted.

The last three grow with ``n * T`` or ``n log^2 n`` per neuron and are kept for the comparison.
A neuron with ``T <= 0`` (always fires) or ``T > n`` (never fires) is a unit clause. A masked
layer's neuron is the same constraint over the literals of the bits it reads only
(:func:`encode_layer_rows`; ``n`` is then its ``n_j``).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .clauses import ClauseSink


class CardEncoding(str, enum.Enum):
    """How a reified cardinality constraint ``h <=> sum(lits) >= T`` becomes clauses."""

    ADDER = "adder"
    TOTALIZER = "totalizer"
    SEQCOUNTER = "seqcounter"
    SORTNET = "sortnet"

    def __str__(self) -> str:  # argparse shows the value
        return self.value


DEFAULT_ENCODING = CardEncoding.ADDER


# --------------------------------------------------------------------------------------------
# gates (full Tseitin definitions) and the shared ends of a neuron
# --------------------------------------------------------------------------------------------


def _xor3_clauses(a: int, b: int, c: int, s: int) -> list[list[int]]:
    out = []
    for va in (0, 1):
        for vb in (0, 1):
            for vc in (0, 1):
                p = va ^ vb ^ vc
                out.append([-a if va else a, -b if vb else b, -c if vc else c, s if p else -s])
    return out


def _maj_clauses(a: int, b: int, c: int, o: int) -> list[list[int]]:
    return [[-a, -b, o], [-a, -c, o], [-b, -c, o], [a, b, -o], [a, c, -o], [b, c, -o]]


def _xor2_clauses(a: int, b: int, s: int) -> list[list[int]]:
    return [[-a, -b, -s], [a, b, -s], [a, -b, s], [-a, b, s]]


def _and_clauses(a: int, b: int, g: int) -> list[list[int]]:
    return [[-g, a], [-g, b], [g, -a, -b]]


def _or_clauses(a: int, b: int, g: int) -> list[list[int]]:
    return [[g, -a], [g, -b], [-g, a, b]]


def _const_or_lit(sink: ClauseSink, out: int, T: int, n: int) -> bool:
    """A neuron over ``n`` literals that is constant (``T <= 0`` or ``T > n``): its unit clause,
    and True; otherwise nothing, and False."""
    if T <= 0:
        sink.add([out])
        return True
    if T > n:
        sink.add([-out])
        return True
    return False


def _equate(sink: ClauseSink, out: int, res: bool | int) -> None:
    """``out <=> res``: a unit clause for a constant, two clauses for another literal."""
    if res is True:
        sink.add([out])
    elif res is False:
        sink.add([-out])
    elif res != out:
        sink.add([-out, res])
        sink.add([out, -res])


# --------------------------------------------------------------------------------------------
# adder: a template per input width, instantiated per neuron with numpy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _AdderTemplate:
    """Clauses over slots: ``1..n`` are the inputs, ``n+1..n+n_aux`` auxiliary variables."""

    n: int
    n_aux: int
    clauses: np.ndarray  # int32 (C, 4) signed slot references, 0 = padding
    sum_bits: tuple  # slot of each binary digit of the sum (LSB first), 0 = constant 0


@lru_cache(maxsize=256)
def _adder_template(n: int) -> _AdderTemplate:
    cols: list[deque] = [deque(range(1, n + 1))]
    rows: list[list[int]] = []
    nxt = n + 1
    k = 0
    while k < len(cols):
        q = cols[k]
        while len(q) >= 2:
            if k + 1 == len(cols):
                cols.append(deque())
            s, co = nxt, nxt + 1
            nxt += 2
            if len(q) >= 3:
                a, b, c = q.popleft(), q.popleft(), q.popleft()
                rows += _xor3_clauses(a, b, c, s) + _maj_clauses(a, b, c, co)
            else:
                a, b = q.popleft(), q.popleft()
                rows += _xor2_clauses(a, b, s) + _and_clauses(a, b, co)
            q.append(s)
            cols[k + 1].append(co)
        k += 1
    arr = np.zeros((len(rows), 4), dtype=np.int32)
    for i, r in enumerate(rows):
        arr[i, : len(r)] = r
    bits = tuple(q[0] if q else 0 for q in cols)
    return _AdderTemplate(n, nxt - n - 1, arr, bits)


def _comparator(sink: ClauseSink, sum_lits: list[int | None], T: int, out: int) -> None:
    """``out <=> (binary number sum_lits >= T)``; a None digit is constant 0."""
    if T <= 0:
        sink.add([out])
        return
    if T >= (1 << len(sum_lits)):
        sink.add([-out])
        return
    g: bool | int = True  # G_{-1}: the empty suffix compares equal
    top = len(sum_lits) - 1
    for i, s in enumerate(sum_lits):
        tbit = (T >> i) & 1
        # constant folding
        if s is None:
            g = False if tbit else g
            continue
        if g is True:
            g = s if tbit else True
            continue
        if g is False:
            g = False if tbit else s
            continue
        gv = out if i == top else sink.fresh()
        for c in (_and_clauses(s, g, gv) if tbit else _or_clauses(s, g, gv)):
            sink.add(c)
        g = gv
    _equate(sink, out, g)


def _adder_neuron(sink: ClauseSink, tpl: _AdderTemplate, aref: np.ndarray, sign: np.ndarray,
                  lits: np.ndarray, t: int, out: int) -> None:
    """One neuron ``out <=> (sum of lits >= t)`` from the adder template of its width."""
    n = tpl.n
    if _const_or_lit(sink, out, t, n):
        return
    base = sink.pool.top
    sink.pool.top = base + tpl.n_aux  # reserve the template's auxiliary variables
    slot = np.zeros(n + tpl.n_aux + 1, dtype=np.int64)
    slot[1 : n + 1] = lits
    slot[n + 1 :] = np.arange(base + 1, base + tpl.n_aux + 1)
    if tpl.clauses.size:
        sink.add_block((sign * slot[aref]).astype(np.int32))
    sum_lits = [int(slot[s]) if s else None for s in tpl.sum_bits]
    _comparator(sink, sum_lits, t, out)


def _encode_layer_adder(sink: ClauseSink, lits: np.ndarray, T: np.ndarray, outs: np.ndarray) -> None:
    """All neurons of a layer: ``lits`` (n_out, n) signed literals, thresholds, output vars."""
    n_out, n = lits.shape
    tpl = _adder_template(n)
    aref, sign = np.abs(tpl.clauses), np.sign(tpl.clauses)
    for j in range(n_out):
        _adder_neuron(sink, tpl, aref, sign, lits[j], int(T[j]), int(outs[j]))


def _encode_rows_adder(sink: ClauseSink, rows, T: np.ndarray, outs: np.ndarray) -> None:
    """Neurons of different widths (a masked layer): one adder template per width."""
    for j, row in enumerate(rows):
        tpl = _adder_template(len(row))
        _adder_neuron(sink, tpl, np.abs(tpl.clauses), np.sign(tpl.clauses), np.asarray(row, np.int64),
                      int(T[j]), int(outs[j]))


# --------------------------------------------------------------------------------------------
# the other encodings (per neuron, plain Python; kept for the comparison in docs/cnf.md)
# --------------------------------------------------------------------------------------------


def _encode_neuron_totalizer(sink: ClauseSink, lits: list[int], T: int, out: int) -> None:
    n = len(lits)
    if _const_or_lit(sink, out, T, n):
        return

    def build(lo: int, hi: int, is_root: bool) -> tuple[list[int], int]:
        """Unary outputs o_1..o_cap (o_k <=> count >= k, saturating at T) of lits[lo:hi]."""
        size = hi - lo
        if size == 1:
            return [lits[lo]], 1
        mid = (lo + hi) // 2
        a, p = build(lo, mid, False)
        b, q = build(mid, hi, False)
        cap = min(p + q, T)
        r = [sink.fresh() for _ in range(cap)]
        if is_root:
            r[T - 1] = out if cap == T else r[T - 1]
        A = lambda i: a[i - 1]  # noqa: E731
        B = lambda j: b[j - 1]  # noqa: E731
        ca, cb = len(a), len(b)
        # upward: a_i and b_j => r_{min(i+j, cap)}
        for i in range(0, ca + 1):
            for j in range(0, cb + 1):
                if i + j == 0:
                    continue
                k = min(i + j, cap)
                cl = [r[k - 1]]
                if i:
                    cl.append(-A(i))
                if j:
                    cl.append(-B(j))
                sink.add(cl)
                if i + j >= cap:
                    break
        # downward: not a_{i+1} and not b_{j+1} => not r_{i+j+1}
        for k in range(1, cap + 1):
            for i in range(0, k):
                j = k - 1 - i
                if i > p or j > q:
                    continue
                cl = [-r[k - 1]]
                if i < p:
                    if i + 1 > ca:
                        continue
                    cl.append(A(i + 1))
                if j < q:
                    if j + 1 > cb:
                        continue
                    cl.append(B(j + 1))
                sink.add(cl)
        return r, p + q

    r, _ = build(0, n, True)
    if len(r) < T:  # cannot happen: T <= n
        raise AssertionError
    _equate(sink, out, r[T - 1])


def _encode_neuron_seqcounter(sink: ClauseSink, lits: list[int], T: int, out: int) -> None:
    n = len(lits)
    if _const_or_lit(sink, out, T, n):
        return
    prev: list = [True]  # prev[j] = "at least j of the first i-1" (True/False constants or var)
    for i, x in enumerate(lits, start=1):
        top = min(i, T)
        cur: list = [True]
        for j in range(1, top + 1):
            keep = prev[j] if j < len(prev) else False  # s_{i-1,j}
            inc = prev[j - 1]  # s_{i-1,j-1}
            v = out if (i == n and j == T) else sink.fresh()
            # v <=> keep OR (inc AND x)
            if keep is not False:
                sink.add([v, -keep] if keep is not True else [v])
            if inc is True:
                sink.add([v, -x])
            else:
                sink.add([v, -inc, -x])
            # v => keep OR inc ; v => keep OR x
            c1 = [-v] + ([] if keep is False else [keep])
            c2 = [-v, x] + ([] if keep is False else [keep])
            if inc is not True:
                sink.add(c1 + [inc])
            sink.add(c2)
            cur.append(v)
        prev = cur


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Comparators of Batcher's odd-even merge sort on ``n`` (a power of two) wires."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(0, min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def _encode_neuron_sortnet(sink: ClauseSink, lits: list[int], T: int, out: int) -> None:
    n = len(lits)
    if _const_or_lit(sink, out, T, n):
        return
    size = 1 << max(0, (n - 1).bit_length())
    # node: ("lit", l) | ("c", bool) | ("max"/"min", node_a, node_b); wire i ends sorted descending
    nodes: list = [("lit", l) for l in lits] + [("c", False)] * (size - n)
    wires = list(range(len(nodes)))
    for a, b in _batcher_pairs(size):
        na, nb = wires[a], wires[b]
        nodes.append(("max", na, nb))
        nodes.append(("min", na, nb))
        wires[a], wires[b] = len(nodes) - 2, len(nodes) - 1
    memo: dict[int, object] = {}

    def emit(idx: int, want: int | None = None):
        if idx in memo:
            return memo[idx]
        node = nodes[idx]
        if node[0] == "lit":
            res = node[1]
        elif node[0] == "c":
            res = node[1]
        else:
            x, y = emit(node[1]), emit(node[2])
            is_max = node[0] == "max"
            if isinstance(x, bool) or isinstance(y, bool):
                c, other = (x, y) if isinstance(x, bool) else (y, x)
                res = (True if c else other) if is_max else (other if c else False)
            else:
                g = want if want is not None else sink.fresh()
                for cl in (_or_clauses(x, y, g) if is_max else _and_clauses(x, y, g)):
                    sink.add(cl)
                res = g
        memo[idx] = res
        return res

    _equate(sink, out, emit(wires[T - 1], out))


_NEURON_ENCODERS = {
    CardEncoding.TOTALIZER: _encode_neuron_totalizer,
    CardEncoding.SEQCOUNTER: _encode_neuron_seqcounter,
    CardEncoding.SORTNET: _encode_neuron_sortnet,
}


def encode_layer(sink: ClauseSink, encoding: CardEncoding, lits: np.ndarray, T: np.ndarray,
                 outs: np.ndarray) -> None:
    """Neuron ``j`` of a layer as ``outs[j] <=> (sum of lits[j] >= T[j])``: ``lits`` (n_out, n)
    signed literals, ``T`` thresholds, ``outs`` output variables."""
    if encoding is CardEncoding.ADDER:
        _encode_layer_adder(sink, lits, T, outs)
    else:
        enc = _NEURON_ENCODERS[encoding]
        for j in range(lits.shape[0]):
            enc(sink, [int(v) for v in lits[j]], int(T[j]), int(outs[j]))


def encode_layer_rows(sink: ClauseSink, encoding: CardEncoding, rows, T: np.ndarray,
                      outs: np.ndarray) -> None:
    """A masked layer: neuron ``j`` as ``outs[j] <=> (sum of rows[j] >= T[j])`` with ``rows[j]``
    the signed literals of the input bits it reads only (rows of different lengths; a neuron
    that reads nothing is a constant: it fires iff ``T[j] <= 0``)."""
    if encoding is CardEncoding.ADDER:
        _encode_rows_adder(sink, rows, T, outs)
    else:
        enc = _NEURON_ENCODERS[encoding]
        for j, row in enumerate(rows):
            enc(sink, [int(v) for v in row], int(T[j]), int(outs[j]))
