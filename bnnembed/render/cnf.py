"""Exact CNF of a bound: every neuron a reified cardinality constraint over its input bits.

A neuron of an :class:`~bnnembed.model.intmodel.IntLayer` fires iff its agreement count
``c = sum_i XNOR(a_i, w_i)`` reaches its threshold ``T``. With a constant weight bit, the XNOR is
just a literal: ``a_i`` when ``w_i = 1``, ``NOT a_i`` when ``w_i = 0``; so a neuron is the
*reified* cardinality constraint ``h <=> (l_1 + ... + l_n >= T)`` over those literals, in both
directions (the output feeds the next layer with both polarities). The bound's decision literal
is the output of its last neuron. Thermometer bits of a feature carry their order constraints
``x_{k+1} => x_k`` so that only codes a real input can produce are models.

Cardinality encodings (:class:`CardEncoding`, compared in docs/cnf.md):

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

Variables are allocated from a :class:`pysat.formula.IDPool` keyed by meaning: ``("x", bit)``
for input bit ``bit`` (always variables ``1..n_bits``), then ``("h", layer, j)`` for every neuron
output in layer order; auxiliary (adder) variables follow, anonymous. The decision literal is
``("h", last_layer, 0)``.

In an artifact, :func:`write_cnf` writes ``cnf_upper.cnf`` / ``cnf_lower.cnf`` (DIMACS) and
``cnf.json`` (the variable map: input bit -> feature and threshold, neuron outputs, decision
literal) and registers them in the manifest.
"""

from __future__ import annotations

import enum
import json
import os
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from pysat.formula import IDPool

from ..model.encoding import Thermometer
from ..errors import BnnError
from ..model.intmodel import BoundNet

CNF_JSON = "cnf.json"
CNF_FORMAT = "bnnembed-cnf"
CNF_FORMAT_VERSION = 1


class CardEncoding(str, enum.Enum):
    """How a reified cardinality constraint ``h <=> sum(lits) >= T`` becomes clauses."""

    ADDER = "adder"
    TOTALIZER = "totalizer"
    SEQCOUNTER = "seqcounter"
    SORTNET = "sortnet"

    def __str__(self) -> str:  # argparse shows the value
        return self.value


DEFAULT_ENCODING = CardEncoding.ADDER


def cnf_file_name(answer: str) -> str:
    """DIMACS file of a bound inside an artifact (``answer`` is "yes" for upper, "no" for lower)."""
    return f"cnf_{'upper' if answer == 'yes' else 'lower'}.cnf"


# --------------------------------------------------------------------------------------------
# clause sink
# --------------------------------------------------------------------------------------------


class ClauseSink:
    """Collects clauses compactly: numpy blocks ``(rows, width)`` padded with 0, plus small lists.

    ``count_only`` keeps just the numbers (used to size encodings too large to build).
    """

    def __init__(self, pool: IDPool, count_only: bool = False) -> None:
        self.pool = pool
        self.count_only = count_only
        self.n_clauses = 0
        self.n_lits = 0
        self._blocks: list[np.ndarray] = []
        self._small: list[list[int]] = []

    def fresh(self) -> int:
        return self.pool.id()

    def add(self, clause: list[int]) -> None:
        self.n_clauses += 1
        self.n_lits += len(clause)
        if not self.count_only:
            self._small.append(clause)
            if len(self._small) >= 1 << 20:  # keep big encodings in numpy, not Python lists
                self.flush()

    def add_block(self, block: np.ndarray) -> None:
        """Clauses as rows of an int array, 0 = padding."""
        self.n_clauses += int(block.shape[0])
        self.n_lits += int(np.count_nonzero(block))
        if not self.count_only:
            self._blocks.append(np.ascontiguousarray(block, dtype=np.int32))

    def flush(self) -> None:
        if self._small:
            width = max(len(c) for c in self._small)
            arr = np.zeros((len(self._small), width), dtype=np.int32)
            for i, c in enumerate(self._small):
                arr[i, : len(c)] = c
            self._blocks.append(arr)
            self._small = []

    def blocks(self) -> list[np.ndarray]:
        self.flush()
        return self._blocks


# --------------------------------------------------------------------------------------------
# gates (full Tseitin definitions)
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


@lru_cache(maxsize=16)
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
    if g is True:
        sink.add([out])
    elif g is False:
        sink.add([-out])
    elif g != out:
        sink.add([-out, g])
        sink.add([out, -g])


def _encode_layer_adder(sink: ClauseSink, lits: np.ndarray, T: np.ndarray, outs: np.ndarray) -> None:
    """All neurons of a layer: ``lits`` (n_out, n) signed literals, thresholds, output vars."""
    n_out, n = lits.shape
    tpl = _adder_template(n)
    ref = tpl.clauses
    aref = np.abs(ref)
    sign = np.sign(ref)
    for j in range(n_out):
        t = int(T[j])
        if t <= 0 or t > n:
            sink.add([int(outs[j])] if t <= 0 else [-int(outs[j])])
            continue
        base = sink.pool.top
        sink.pool.top = base + tpl.n_aux  # reserve the template's auxiliary variables
        slot = np.zeros(n + tpl.n_aux + 1, dtype=np.int64)
        slot[1 : n + 1] = lits[j]
        slot[n + 1 :] = np.arange(base + 1, base + tpl.n_aux + 1)
        if ref.size:
            sink.add_block((sign * slot[aref]).astype(np.int32))
        sum_lits = [int(slot[s]) if s else None for s in tpl.sum_bits]
        _comparator(sink, sum_lits, t, int(outs[j]))


# --------------------------------------------------------------------------------------------
# the other encodings (per neuron, plain Python; kept for the comparison in docs/cnf.md)
# --------------------------------------------------------------------------------------------


def _const_or_lit(sink: ClauseSink, out: int, T: int, n: int) -> bool:
    if T <= 0:
        sink.add([out])
        return True
    if T > n:
        sink.add([-out])
        return True
    return False


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
    if r[T - 1] != out:
        sink.add([-out, r[T - 1]])
        sink.add([out, -r[T - 1]])


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

    res = emit(wires[T - 1], out)
    if res is True:
        sink.add([out])
    elif res is False:
        sink.add([-out])
    elif res != out:
        sink.add([-out, res])
        sink.add([out, -res])


_NEURON_ENCODERS = {
    CardEncoding.TOTALIZER: _encode_neuron_totalizer,
    CardEncoding.SEQCOUNTER: _encode_neuron_seqcounter,
    CardEncoding.SORTNET: _encode_neuron_sortnet,
}


# --------------------------------------------------------------------------------------------
# a whole bound
# --------------------------------------------------------------------------------------------


@dataclass
class BoundCnf:
    """The CNF of one bound plus what its variables mean."""

    answer: str
    encoding: CardEncoding
    n_bits: int
    n_vars: int
    n_clauses: int
    n_lits: int
    x_vars: np.ndarray  # (n_bits,) variable of each input bit (1..n_bits)
    h_vars: list[np.ndarray]  # per layer, variable of each neuron output
    blocks: list[np.ndarray] = field(default_factory=list)  # clause rows, 0-padded

    @property
    def decision(self) -> int:
        """Literal that is true iff the bound answers."""
        return int(self.h_vars[-1][0])

    def clause_lists(self, offset: int = 0):
        """Yield every clause as a list of ints; variables above the inputs shifted by ``offset``
        (used to put several bounds, sharing their inputs, in one solver)."""
        for block in self.blocks:
            if offset:
                block = shift_vars(block, self.n_bits, offset)
            for chunk in rows_by_length(block):
                yield from chunk


def rows_by_length(block: np.ndarray):
    """The rows of a 0-padded clause block as lists, grouped by clause length (fast ``tolist``)."""
    lengths = np.count_nonzero(block, axis=1)
    for w in np.unique(lengths).tolist():
        yield block[lengths == w][:, :w].tolist()


def shift_vars(block: np.ndarray, n_bits: int, offset: int) -> np.ndarray:
    """Add ``offset`` to every variable above ``n_bits`` (signs kept, padding 0 kept)."""
    a = np.abs(block)
    return np.where(a > n_bits, block + np.sign(block) * offset, block).astype(block.dtype)


def order_clauses(encoder: Thermometer | None, n_bits: int, x_vars) -> list[list[int]]:
    """``x_{k+1} => x_k`` for consecutive thermometer bits of each kept feature."""
    if encoder is None:
        return []
    out = []
    for f in range(encoder.n_kept):
        lo, hi = int(encoder.offsets[f]), int(encoder.offsets[f + 1])
        for b in range(lo, hi - 1):
            out.append([-int(x_vars[b + 1]), int(x_vars[b])])
    return out


def encode_bound(net: BoundNet, encoder: Thermometer | None = None,
                 encoding: CardEncoding | str = DEFAULT_ENCODING, *, count_only: bool = False,
                 layers: slice | None = None, neurons: int | None = None) -> BoundCnf:
    """Encode a bound. ``encoder`` adds the thermometer order constraints (None: free bits).

    ``count_only`` counts variables and clauses without keeping them; with ``neurons`` it encodes
    only the first ``neurons`` of each layer and with ``layers`` (a slice of the layer indices)
    only those layers (for extrapolating the size of huge encodings, layer by layer).
    """
    encoding = CardEncoding(encoding)
    pool = IDPool()
    n_bits = net.n_in
    x_vars = np.array([pool.id(("x", i)) for i in range(n_bits)], dtype=np.int64)
    h_vars = [np.array([pool.id(("h", l, j)) for j in range(layer.n_out)], dtype=np.int64)
              for l, layer in enumerate(net.layers)]
    sink = ClauseSink(pool, count_only=count_only)
    for cl in order_clauses(encoder, n_bits, x_vars):
        sink.add(cl)
    inputs = x_vars
    chosen = set(range(len(net.layers))[layers if layers is not None else slice(None)])
    for l, layer in enumerate(net.layers):
        if l not in chosen:
            inputs = h_vars[l]
            continue
        w = layer.weight_bits().astype(np.int64)  # 1: agreement iff input bit is 1
        lits = np.where(w == 1, inputs[None, :], -inputs[None, :])
        T = layer.thresholds
        outs = h_vars[l]
        if neurons is not None:
            lits, T, outs = lits[:neurons], T[:neurons], outs[:neurons]
        if encoding is CardEncoding.ADDER:
            _encode_layer_adder(sink, lits, T, outs)
        else:
            enc = _NEURON_ENCODERS[encoding]
            for j in range(lits.shape[0]):
                enc(sink, [int(v) for v in lits[j]], int(T[j]), int(outs[j]))
        inputs = h_vars[l]
    return BoundCnf(net.answer, encoding, n_bits, pool.top, sink.n_clauses, sink.n_lits, x_vars,
                    h_vars, [] if count_only else sink.blocks())


# --------------------------------------------------------------------------------------------
# DIMACS
# --------------------------------------------------------------------------------------------


def _format_block(block: np.ndarray) -> str:
    """Rows of a 0-padded clause block (padding at the end of a row) as DIMACS lines."""
    if block.size == 0:
        return ""
    lengths = np.count_nonzero(block, axis=1)
    parts = []
    for w in np.unique(lengths).tolist():
        sub = block[lengths == w][:, :w]
        fmt = "%d " * w + "0\n"
        parts.append((fmt * len(sub)) % tuple(sub.ravel().tolist()))
    return "".join(parts)


def write_dimacs(cnf: BoundCnf, path: str, comments: list[str] = ()) -> None:
    """Write ``p cnf V C`` and every clause (one per line, 0-terminated)."""
    with open(path, "w") as fh:
        for c in comments:
            fh.write(f"c {c}\n")
        fh.write(f"p cnf {cnf.n_vars} {cnf.n_clauses}\n")
        for block in cnf.blocks:
            for start in range(0, block.shape[0], 200_000):
                text = _format_block(block[start : start + 200_000])
                fh.write(text)


def read_dimacs(path: str) -> tuple[int, int, np.ndarray]:
    """``(n_vars, n_clauses, flat)``: ``flat`` holds every literal with a 0 after each clause."""
    with open(path, "rb") as fh:
        data = fh.read()
    pos, n_vars, n_clauses = 0, None, None
    while pos < len(data):
        nl = data.find(b"\n", pos)
        nl = len(data) if nl < 0 else nl
        line = data[pos:nl].strip()
        pos = nl + 1
        if not line or line.startswith(b"c"):
            continue
        parts = line.split()
        if len(parts) == 4 and parts[:2] == [b"p", b"cnf"]:
            n_vars, n_clauses = int(parts[2]), int(parts[3])
        break
    if n_vars is None:
        raise BnnError(f"{path}: no DIMACS header; regenerate it with 'bnnembed cnf DIR'")
    flat = np.fromstring(data[pos:].decode("ascii"), dtype=np.int64, sep=" ")
    if flat.size and flat[-1] != 0:
        raise BnnError(f"{path}: truncated DIMACS file; regenerate it with 'bnnembed cnf DIR'")
    if int(np.count_nonzero(flat == 0)) != n_clauses:
        raise BnnError(f"{path}: clause count differs from its header; regenerate it with 'bnnembed cnf DIR'")
    return n_vars, n_clauses, flat


def split_clauses(flat: np.ndarray) -> list[list[int]]:
    """Clauses (lists) from a 0-terminated flat literal array, grouped by length."""
    ends = np.flatnonzero(flat == 0)
    starts = np.concatenate([[0], ends[:-1] + 1])
    lengths = ends - starts
    out = []
    for w in np.unique(lengths).tolist():
        s = starts[lengths == w]
        out += flat[s[:, None] + np.arange(w)[None, :]].tolist()
    return out


# --------------------------------------------------------------------------------------------
# the artifact step
# --------------------------------------------------------------------------------------------


def variable_map(cnf: BoundCnf, encoder: Thermometer, feature_names: list[str]) -> dict:
    """JSON-able meaning of the variables of a bound's CNF."""
    owner = encoder.bit_owner()
    inputs = []
    for b in range(cnf.n_bits):
        f = int(owner[b])
        col = int(encoder.feature_index[f])
        inputs.append({
            "bit": b,
            "var": int(cnf.x_vars[b]),
            "feature": feature_names[col] if col < len(feature_names) else f"x{col}",
            "column": col,
            "kept_feature": f,
            "rank": b - int(encoder.offsets[f]),
            "threshold": float(encoder.thresholds[b]),
            "meaning": "feature >= threshold",
        })
    return {
        "answer": cnf.answer,
        "encoding": cnf.encoding.value,
        "n_vars": cnf.n_vars,
        "n_clauses": cnf.n_clauses,
        "decision": cnf.decision,
        "inputs": inputs,
        "neurons": [[int(v) for v in layer] for layer in cnf.h_vars],
    }


def write_cnf(artifact_dir: str, encoding: CardEncoding | str = DEFAULT_ENCODING) -> dict:
    """Write both bounds' DIMACS files and ``cnf.json`` into an artifact and register them.

    Returns the JSON variable map. Call it at the end of ``bnnembed build`` or via ``bnnembed cnf``.
    """
    from ..artifact import load_artifact, register_files

    art = load_artifact(artifact_dir)
    encoding = CardEncoding(encoding)
    meta = {"format": CNF_FORMAT, "format_version": CNF_FORMAT_VERSION,
            "model_hash": art.model_hash, "encoding": encoding.value, "bounds": {}}
    names = []
    for net in (art.upper, art.lower):
        cnf = encode_bound(net, art.encoder, encoding)
        fname = cnf_file_name(net.answer)
        write_dimacs(cnf, os.path.join(artifact_dir, fname), comments=[
            f"bnnembed CNF of the {'upper' if net.answer == 'yes' else 'lower'} bound "
            f"(answers {net.answer!r} iff literal {cnf.decision} is true)",
            f"model_hash {art.model_hash} encoding {encoding.value} shape {net.shape}",
            f"variables 1..{cnf.n_bits} are the thermometer input bits (see {CNF_JSON})",
        ])
        vm = variable_map(cnf, art.encoder, art.feature_names)
        vm["file"] = fname
        vm["n_synapses"] = net.n_synapses()
        meta["bounds"]["upper" if net.answer == "yes" else "lower"] = vm
        names.append(fname)
    with open(os.path.join(artifact_dir, CNF_JSON), "w") as fh:
        json.dump(meta, fh)
        fh.write("\n")
    register_files(artifact_dir, *names, CNF_JSON)
    return meta


def read_cnf_meta(artifact_dir: str, model_hash: str | None = None) -> dict:
    """The artifact's ``cnf.json``, or a one-line error telling how to create it."""
    path = os.path.join(artifact_dir, CNF_JSON)
    if not os.path.exists(path):
        raise BnnError(f"{artifact_dir}: the artifact has no CNF; create it with 'bnnembed cnf {artifact_dir}'")
    with open(path) as fh:
        meta = json.load(fh)
    if meta.get("format") != CNF_FORMAT:
        raise BnnError(f"{path}: not a bnnembed CNF map; regenerate it with 'bnnembed cnf {artifact_dir}'")
    if model_hash is not None and meta.get("model_hash") != model_hash:
        raise BnnError(f"{path}: CNF belongs to another model; regenerate it with 'bnnembed cnf {artifact_dir}'")
    return meta


# --------------------------------------------------------------------------------------------
# checking a CNF against the numpy reference
# --------------------------------------------------------------------------------------------


def cnf_answers(cnf: BoundCnf, bits: np.ndarray, solver: str = "g4", clauses=None,
                hidden: bool = False):
    """What the CNF says about inputs: fix the input bits and unit-propagate.

    Returns a bool array (does the bound answer?) and, with ``hidden``, a list of per-layer 0/1
    arrays of the neuron outputs. An input whose outputs are not fixed by propagation alone is
    decided with a full solve (counted in the third return value), which stays exact.
    """
    from pysat.solvers import Solver

    bits = np.asarray(bits, dtype=np.uint8)
    answers = np.zeros(len(bits), dtype=bool)
    layers = [np.zeros((len(bits), len(h)), dtype=np.uint8) for h in cnf.h_vars] if hidden else None
    n_solved = 0
    wanted = [int(cnf.decision)] + ([int(v) for h in cnf.h_vars for v in h] if hidden else [])
    with Solver(name=solver, bootstrap_with=clauses if clauses is not None else cnf.clause_lists()) as s:
        # propagate() does not report literals fixed at the root (unit clauses of constant
        # neurons); find those once
        root = set()
        for v in wanted:
            if not s.propagate(assumptions=[v])[0]:
                root.add(-v)
            elif not s.propagate(assumptions=[-v])[0]:
                root.add(v)
        for i, row in enumerate(bits):
            assume = np.where(row == 1, cnf.x_vars, -cnf.x_vars).tolist()
            ok, lits = s.propagate(assumptions=assume)
            if not ok:
                raise AssertionError("input bits contradict the CNF (order constraints?)")
            val = set(lits) | root
            if not all(v in val or -v in val for v in wanted):
                n_solved += 1
                if not s.solve(assumptions=assume):
                    raise AssertionError("input bits contradict the CNF")
                val = set(s.get_model())
            answers[i] = cnf.decision in val
            if hidden:
                for l, h in enumerate(cnf.h_vars):
                    layers[l][i] = [1 if int(v) in val else 0 for v in h]
    return answers, layers, n_solved


def clause_matrix(clauses) -> np.ndarray:
    """Clauses as one 0-padded ``(C, width)`` int64 matrix.

    ``clauses``: a :class:`BoundCnf`, its ``blocks`` or one such 0-padded block, the 0-terminated
    flat array of :func:`read_dimacs`, or an iterable of clause lists.
    """
    if isinstance(clauses, BoundCnf):
        clauses = clauses.blocks
    if isinstance(clauses, np.ndarray) and clauses.ndim == 2:
        clauses = [clauses]
    if isinstance(clauses, np.ndarray) and clauses.ndim == 1:
        flat = clauses.astype(np.int64, copy=False)
        ends = np.flatnonzero(flat == 0)
        starts = np.concatenate([[0], ends[:-1] + 1])
        lengths = ends - starts
        width = max(int(lengths.max(initial=0)), 1)
        out = np.zeros((len(ends), width), dtype=np.int64)
        lits = flat[flat != 0]
        rows = np.repeat(np.arange(len(ends)), lengths)
        cols = np.arange(len(lits)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[rows, cols] = lits
        return out
    if isinstance(clauses, list) and all(isinstance(b, np.ndarray) and b.ndim == 2 for b in clauses):
        width = max([b.shape[1] for b in clauses] + [1])
        out = np.concatenate([np.pad(b.astype(np.int64), ((0, 0), (0, width - b.shape[1])))
                              for b in clauses] or [np.zeros((0, width), np.int64)])
        if np.any((out[:, :-1] == 0) & (out[:, 1:] != 0)):  # move padding to the end of each row
            out = np.take_along_axis(out, np.argsort(out == 0, axis=1, kind="stable"), axis=1)
        return out
    lists = [list(c) for c in clauses]
    flat = np.fromiter((v for c in lists for v in c + [0]), dtype=np.int64)
    return clause_matrix(flat)


class _LanePropagator:
    """Unit propagation on many inputs at once: one bit per input ("lane") in uint64 words.

    ``A[2v]`` holds the lanes where variable ``v`` is known false (literal ``+v`` false),
    ``A[2v+1]`` the lanes where it is known true (literal ``-v`` false); the code of a literal
    ``l`` is ``2|l| + (l < 0)``, so ``A[code]`` is where the literal is false and ``A[code ^ 1]``
    where it is true. Row 0 (the padding "literal") is false in every lane.

    The unit rule, for every position ``i`` of a clause: where all other literals are false,
    literal ``i`` is true. Every value set is implied by the clauses and the inputs, so a lane
    where every variable ends up set, without conflict and with every clause satisfied, has
    exactly one model; a lane with a conflict has none.

    Speed: :meth:`learn` propagates a few sample inputs and records which clause derived which
    variable; :meth:`sweep` then visits each clause once, in the depth order of the variables it
    derives, which evaluates a circuit in topological order. That order is only a heuristic (a
    gate whose inputs never took some combination in the sample is ordered by the combinations
    seen): what a sweep leaves open, further sweeps over the clauses of the open variables
    settle, until nothing changes (the fixpoint of unit propagation).
    """

    CHUNK_WORDS = 1 << 22  # uint64 words per (clauses, width, lanes) temporary (32 MB)

    def __init__(self, mat: np.ndarray, n_vars: int) -> None:
        self.n_vars = n_vars
        self.codes = np.where(mat > 0, 2 * mat, -2 * mat + 1).astype(np.int64)
        self.codes[mat == 0] = 0
        var = (self.codes >> 1).ravel()
        cls = np.repeat(np.arange(mat.shape[0]), mat.shape[1])
        keep = var > 0
        var, cls = var[keep], cls[keep]
        order = np.argsort(var, kind="stable")
        self.occ = cls[order]
        self.occ_ptr = np.concatenate([[0], np.cumsum(np.bincount(var, minlength=n_vars + 1))])
        self.groups: list[np.ndarray] = [np.arange(mat.shape[0])]  # sweep order, see learn()

    def _derive(self, A: np.ndarray, idx: np.ndarray, fired: list | None = None):
        """Yield ``(rows, masks)`` the unit rule derives from clauses ``idx``, chunk by chunk.

        With ``fired`` (a list), only new values are derived, and ``(clause, position)`` index
        arrays of the literals that got one are appended to it.
        """
        L = A.shape[1]
        width = self.codes.shape[1]
        step = max(1, self.CHUNK_WORDS // (width * L))
        for s in range(0, len(idx), step):
            cd = self.codes[idx[s : s + step]]
            G = A[cd]  # (k, width, L): lanes where each literal is false
            ex = np.empty_like(G)  # AND of the other literals' "false" masks
            acc = np.full(G.shape[::2], ~np.uint64(0))
            for j in range(width):
                ex[:, j] = acc
                acc &= G[:, j]
            acc[:] = ~np.uint64(0)
            for j in range(width - 1, -1, -1):
                ex[:, j] &= acc
                acc &= G[:, j]
            if fired is not None:
                ex &= ~A[cd ^ 1]
            sel = (cd != 0) & ex.any(axis=2)
            if not sel.any():
                continue
            if fired is not None:
                ci, pi = np.nonzero(sel)
                fired.append((idx[s : s + step][ci], pi))
            t, m = cd[sel] ^ 1, ex[sel]  # literal true where m: its negation is false
            order = np.argsort(t, kind="stable")
            t, m = t[order], m[order]
            first = np.flatnonzero(np.concatenate([[True], t[1:] != t[:-1]]))
            yield t[first], np.bitwise_or.reduceat(m, first, axis=0)

    @staticmethod
    def _apply(A: np.ndarray, rows: np.ndarray, red: np.ndarray, changed: np.ndarray) -> None:
        before = A[rows]
        after = before | red
        A[rows] = after
        changed[rows[(after != before).any(axis=1)] >> 1] = True

    def _clauses_of(self, cv: np.ndarray) -> np.ndarray:
        lo, hi = self.occ_ptr[cv], self.occ_ptr[cv + 1]
        n = hi - lo
        pos = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
        mark = np.zeros(self.codes.shape[0], dtype=bool)
        mark[self.occ[pos]] = True
        return np.flatnonzero(mark)

    def run(self, A: np.ndarray, fired: list | None = None) -> None:
        """Propagate to the fixpoint in place: every clause, then, round after round, the
        clauses of the variables that changed; with ``fired``, record what fired."""
        changed = np.zeros(self.n_vars + 1, dtype=bool)
        idx = np.arange(self.codes.shape[0])
        while len(idx):
            changed[:] = False
            for rows, red in self._derive(A, idx, fired):
                self._apply(A, rows, red, changed)
            cv = np.flatnonzero(changed)
            if not len(cv):
                break
            idx = self._clauses_of(cv)

    def learn(self, A: np.ndarray) -> None:
        """Set the sweep order from propagating the sample lanes in ``A`` (in place).

        A clause that derived variable ``v`` makes ``v`` depend on the clause's other variables;
        a variable's depth is its longest path from the inputs; a clause is visited at the
        depth of the deepest variable it derived (one that derived nothing: of its deepest
        variable).
        """
        fired: list = []
        self.run(A, fired=fired)
        nv1 = self.n_vars + 1
        var = self.codes >> 1
        fc = np.concatenate([f[0] for f in fired] + [np.zeros(0, np.int64)])
        fp = np.concatenate([f[1] for f in fired] + [np.zeros(0, np.int64)])
        tv = var[fc, fp]
        rows = var[fc]  # (k, width): the deriving clauses' variables
        src = rows.ravel()
        dst = np.repeat(tv, var.shape[1])
        keep = (src != 0) & (src != dst)
        edges = np.unique(src[keep] * nv1 + dst[keep])
        src, dst = edges // nv1, edges % nv1
        indeg = np.bincount(dst, minlength=nv1)
        order = np.argsort(src, kind="stable")
        src, dst = src[order], dst[order]
        ptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=nv1))])
        depth = np.zeros(nv1, dtype=np.int64)
        frontier = np.flatnonzero(indeg == 0)
        while len(frontier):
            lo, hi = ptr[frontier], ptr[frontier + 1]
            n = hi - lo
            pos = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))
            t = dst[pos]
            np.maximum.at(depth, t, np.repeat(depth[frontier] + 1, n))
            np.subtract.at(indeg, t, 1)
            frontier = np.unique(t[indeg[t] == 0])
        depth[indeg > 0] = depth.max(initial=0) + 1  # on a dependency cycle: last
        key = depth[var].max(axis=1)
        key[fc] = -1
        np.maximum.at(key, fc, depth[tv])
        order = np.argsort(key, kind="stable")
        cuts = np.flatnonzero(np.diff(key[order])) + 1
        self.groups = np.split(order, cuts)

    def sweep(self, A: np.ndarray, idx: np.ndarray | None = None) -> bool:
        """One pass over clauses ``idx`` (default all) in the learned order, in place; returns
        whether any value changed."""
        changed = np.zeros(self.n_vars + 1, dtype=bool)
        mark = None
        if idx is not None:
            mark = np.zeros(self.codes.shape[0], dtype=bool)
            mark[idx] = True
        for g in self.groups:
            for rows, red in self._derive(A, g if mark is None else g[mark[g]]):
                self._apply(A, rows, red, changed)
        return bool(changed.any())

    def all_satisfied(self, A: np.ndarray) -> np.ndarray:
        """Lanes (uint64 words) where every clause has a literal known true."""
        L = A.shape[1]
        ok = np.full(L, ~np.uint64(0))
        width = self.codes.shape[1]
        step = max(1, self.CHUNK_WORDS // (width * L))
        for s in range(0, self.codes.shape[0], step):
            T = A[self.codes[s : s + step] ^ 1]  # row 1 (padding, "true") is all 0
            sat = np.bitwise_or.reduce(T, axis=1)
            ok &= np.bitwise_and.reduce(sat, axis=0)
        return ok


def _lanes_to_bool(words: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8), bitorder="little")[:n].astype(bool)


def cnf_decisions(cnf: BoundCnf, bits: np.ndarray, clauses=None, *, solver: str = "g4",
                  batch: int = 1024, hidden: bool = False, sample: np.ndarray | None = None):
    """What the CNF forces the bound to answer on each input, fast and exact.

    Fixes the input bits of ``batch`` inputs at once and unit-propagates the clauses
    (``clauses``: anything :func:`clause_matrix` takes, default the encoder's own) on all of them
    together, one bit per input. Where every variable gets a value without conflict and every
    clause is satisfied, the CNF has exactly one model with those inputs and the decision literal's
    value is what the CNF says. Other inputs go to a SAT solver: ``solve(inputs + [d])`` and
    ``solve(inputs + [-d])``. ``sample``: input rows (up to ~128; default rows spread over
    ``bits``) whose propagation sets the order clauses are visited in; only speed depends on it,
    and it is faster when the sample varies every input bit (e.g. real rows plus random codes).

    Returns ``(codes, layers, n_solved)``: ``codes`` int8 per input, 1 = the CNF forces the
    bound to answer, 0 = forces it not to, -1 = no model with these inputs, 2 = both possible;
    ``layers`` (with ``hidden``) per-layer 0/1 neuron outputs of the forced model (rows with a code
    other than 0/1 are left 0); ``n_solved`` how many inputs needed the solver.
    """
    bits = np.asarray(bits, dtype=np.uint8)
    n_in = len(bits)
    mat = clause_matrix(cnf.blocks if clauses is None else clauses)
    n_vars = max(int(cnf.n_vars), int(np.abs(mat).max(initial=0)))
    prop = _LanePropagator(mat, n_vars)
    L = max(1, (min(batch, max(n_in, 1)) + 63) // 64)
    lanes = 64 * L
    codes = np.zeros(n_in, dtype=np.int8)
    layers = [np.zeros((n_in, len(h)), dtype=np.uint8) for h in cnf.h_vars] if hidden else None
    d = int(cnf.decision)
    d_true = (2 * abs(d) + (d < 0)) ^ 1  # row of A: lanes where literal d is true
    h_rows = [2 * np.asarray(h, dtype=np.int64) + 1 for h in cnf.h_vars]
    xv = np.asarray(cnf.x_vars, dtype=np.int64)
    # variables that must get a value: those in a clause, and the decision (a decision variable
    # in no clause is free, so never accepted here; the solver reports it as "both possible")
    used = np.union1d(np.flatnonzero(np.diff(prop.occ_ptr) > 0), [abs(d)])
    undecided: list[int] = []

    def lanes_of(rows: np.ndarray, width: int) -> np.ndarray:
        """Fresh state with the input bits of ``rows`` set (padded with copies of row 0)."""
        if len(rows) < 64 * width:
            rows = np.concatenate([rows, np.repeat(rows[:1], 64 * width - len(rows), axis=0)])
        ones = np.ascontiguousarray(np.packbits(rows.T, axis=1, bitorder="little")).view(np.uint64)
        A = np.zeros((2 * (n_vars + 1), width), dtype=np.uint64)
        A[0] = ~np.uint64(0)
        A[2 * xv + 1] = ones
        A[2 * xv] = ~ones
        return A

    def open_vars(A: np.ndarray) -> np.ndarray:
        """Variables (that occur in a clause) not yet known in every lane."""
        return used[((A[2 * used] | A[2 * used + 1]) != ~np.uint64(0)).any(axis=1)]

    def status(A: np.ndarray, m: int):
        f, t = A[2 * used], A[2 * used + 1]
        assigned = np.bitwise_and.reduce(f | t, axis=0)
        conflict = np.bitwise_or.reduce(f & t, axis=0)
        good = assigned & ~conflict
        if good.any():
            good &= prop.all_satisfied(A)
        return _lanes_to_bool(good, m), _lanes_to_bool(conflict, m)

    if n_in:
        if sample is None:  # up to 128 inputs spread over the rows
            sample = bits[np.unique(np.linspace(0, n_in - 1, min(n_in, 128)).astype(np.int64))]
        sample = np.asarray(sample, dtype=np.uint8)
        prop.learn(lanes_of(sample, (len(sample) + 63) // 64))
    for start in range(0, n_in, lanes):
        chunk = bits[start : start + lanes]
        m = len(chunk)
        A = lanes_of(chunk, L)
        progress = prop.sweep(A)
        while progress:  # only clauses with a variable still open can derive anything more
            ov = open_vars(A)
            progress = len(ov) > 0 and prop.sweep(A, prop._clauses_of(ov))
        good_b, conflict_b = status(A, m)
        codes[start : start + m] = _lanes_to_bool(A[d_true], m)
        if hidden:
            for l, rows in enumerate(h_rows):
                layers[l][start : start + m] = np.unpackbits(
                    A[rows].view(np.uint8), axis=1, bitorder="little")[:, :m].T
                layers[l][start : start + m][~good_b] = 0
        codes[start : start + m][conflict_b] = -1  # unit propagation refuted the inputs
        undecided += (start + np.flatnonzero(~good_b & ~conflict_b)).tolist()
    if undecided:
        from pysat.solvers import Solver

        with Solver(name=solver, bootstrap_with=(c for part in rows_by_length(mat) for c in part)) as s:
            for i in undecided:
                assume = np.where(bits[i] == 1, xv, -xv).tolist()
                yes, no = s.solve(assumptions=assume + [d]), s.solve(assumptions=assume + [-d])
                codes[i] = 2 if (yes and no) else 1 if yes else 0 if no else -1
                if hidden and yes != no:
                    s.solve(assumptions=assume + [d if yes else -d])
                    val = set(s.get_model())
                    for l, h in enumerate(cnf.h_vars):
                        layers[l][i] = [1 if int(v) in val else 0 for v in h]
    return codes, layers, len(undecided)
