"""A dense hidden layer stored by columns: the tables of the COLUMNS kernel, and its arithmetic in numpy.

The COLUMNS kernel (``firmware/bnn_popcount_columns.h``) counts 32 neurons at once: word ``i`` of a
group holds input bit ``i``'s weight for each of the group's 32 neurons, and the counts live in
bit planes (plane ``j`` = bit ``j`` of every neuron's count). It visits only the input bits on the
minority side, with ``h = popcount(a)``:

- ones side (``2 h <= n_in``): ``S = sum of w_i over the 1 bits``, ``mismatch = pop(w) + h - 2 S``;
- zeros side: ``S = sum of w_i over the 0 bits``, ``mismatch = 2 S + h - pop(w)``.

A neuron with ``M = max_mismatch`` fires

- ones side iff ``S >= R = ceil((pop(w) - M + h) / 2)``,
- zeros side iff not ``S >= floor((M + pop(w) - h) / 2) + 1``.

On each side ``h`` has a known range (ones: ``0 .. n2`` with ``n2 = n_in // 2``; zeros:
``n2 + 1 .. n_in``), so the mismatch count does too, and ``M`` is clamped to it per side without
changing a decision: ``C1 = clamp(M, pop - n2 - 1, pop + n2) - pop`` (ones) and
``C0 = -clamp(M, n2 - pop, 2 n_in - n2 - 1 - pop) - pop - 1`` (zeros) each take at most
``n_in + 2`` values. With ``top`` the bit length of ``n_in`` (so ``2^top > n_in``), counters that
start at ``I = 2^top + floor((C1 - h) / 2)`` (ones) or ``2^top + floor((C0 + h) / 2)`` (zeros)
never leave ``0 .. 2^(top+1) - 1`` after adding ``S <= n_in / 2``, and the test is bit ``top`` of
``I + S`` (ones), its complement (zeros). The table stores ``K1 = C1 + n2 + 1`` and
``K0 = C0 + 2 n_in - n2`` (both ``0 .. 2^top - 1``: ``top`` planes per side); per layer the device
adds one scalar to them, ``I = (K + s) >> 1`` with ``s = 2^(top+1) - n2 - 1 - h`` (ones) or
``2^(top+1) - 2 n_in + n2 + h`` (zeros): one bit-sliced add per group. Padding neurons of the last
group (no weights, ``M = -1``) give 0 on both sides.

:func:`columns_forward` runs exactly that arithmetic in numpy (the tests compare it with the
dense layer, exhaustively on small layers); the C kernel runs it on the device.
"""

from __future__ import annotations

import numpy as np

GROUP = 32  #: neurons per column word


def stored_by_columns(layer, last: bool, columns: bool) -> bool:
    """Is this layer stored by columns? Its bound's dense hidden layers, when rendered for the
    COLUMNS kernel (``columns``); the output neuron and masked layers stay rows."""
    return columns and not last and not layer.masked


def column_items_words(upper, lower) -> int:
    """Words of the COLUMNS kernel's scratch, ``bnn_column_items``: the most minority-side bits a
    layer by columns can have (``n_in // 2``, at least 1); 0 when no layer would be by columns."""
    halves = [layer.n_in // 2 for net in (upper, lower) for i, layer in enumerate(net.layers)
              if stored_by_columns(layer, i == len(net.layers) - 1, True)]
    return max([1] + halves) if halves else 0


def columns_top(n_in: int) -> int:
    """Bit of the counters that decides: the bit length of ``n_in``."""
    return int(n_in).bit_length()


def planes_per_side(n_in: int) -> int:
    """Stored threshold planes per side and group (``top``)."""
    return columns_top(n_in)


def side_constants(n_in: int, max_mismatch: np.ndarray, pop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(K1, K0)`` per neuron: the ones- and zeros-side constants, each in ``0 .. 2^top - 1``."""
    m = np.asarray(max_mismatch, np.int64)
    pop = np.asarray(pop, np.int64)
    n2 = n_in // 2
    c1 = np.clip(m, pop - n2 - 1, pop + n2) - pop
    c0 = -np.clip(m, n2 - pop, 2 * n_in - n2 - 1 - pop) - pop - 1
    return c1 + n2 + 1, c0 + 2 * n_in - n2


def side_scalar(n_in: int, h: int) -> int:
    """The scalar the device adds to the side's constants for an input with ``h`` ones."""
    top, n2 = columns_top(n_in), n_in // 2
    return (1 << (top + 1)) - n2 - 1 - h if 2 * h <= n_in else (1 << (top + 1)) - 2 * n_in + n2 + h


def column_words(n_in: int, n_out: int) -> int:
    """Words of a layer's table by columns."""
    return -(-n_out // GROUP) * (n_in + 2 * planes_per_side(n_in))


def _bits(packed: np.ndarray, n_in: int) -> np.ndarray:
    """(rows, n_in) 0/1 of packed rows (bit i of word i // 32 at position i % 32)."""
    b = np.unpackbits(np.ascontiguousarray(packed, dtype="<u4").view(np.uint8), axis=-1, bitorder="little")
    return b[..., :n_in]


def _planes(values: np.ndarray, n_planes: int) -> np.ndarray:
    """Bit planes of 32 lane values (taken mod 2^n_planes): word j has bit l = bit j of value l."""
    v = np.asarray(values, dtype=np.int64) % (1 << n_planes)
    lanes = (v[None, :] >> np.arange(n_planes)[:, None]) & 1
    return (lanes << np.arange(GROUP)[None, :]).sum(axis=1).astype(np.uint32)


def column_table(weights: np.ndarray, n_in: int, max_mismatch: np.ndarray) -> np.ndarray:
    """The flash table of a dense layer by columns, from its packed rows and ``max_mismatch``.

    Per group of 32 neurons: ``n_in`` column words, the ones-side planes, the zeros-side planes.
    """
    n_out = weights.shape[0]
    n_groups = -(-n_out // GROUP)
    n_e = planes_per_side(n_in)
    w = np.zeros((n_groups * GROUP, n_in), np.uint8)
    w[:n_out] = _bits(weights, n_in)
    m = np.full(n_groups * GROUP, -1, np.int64)
    m[:n_out] = np.asarray(max_mismatch, np.int64)
    pop = w.sum(axis=1, dtype=np.int64)
    k1, k0 = side_constants(n_in, m, pop)
    out = []
    for g in range(n_groups):
        lanes = slice(g * GROUP, (g + 1) * GROUP)
        cols = (w[lanes].astype(np.uint64).T << np.arange(GROUP, dtype=np.uint64)).sum(axis=1)
        out.append(cols.astype(np.uint32))
        out.append(_planes(k1[lanes], n_e))
        out.append(_planes(k0[lanes], n_e))
    return np.concatenate(out).astype(np.uint32)


def column_counters(table: np.ndarray, n_in: int, n_out: int, a: np.ndarray) -> tuple[np.ndarray, bool]:
    """The kernel's counters ``I + S`` per neuron (``n_out``) on one input row of 0/1 bits, and
    whether it took the ones side: the minority side, ``I = (K + s) >> 1``, ``S`` its columns' sum."""
    a = np.asarray(a, np.int64)[:n_in]
    h = int(a.sum())
    ones = 2 * h <= n_in
    n_e = planes_per_side(n_in)
    stride = n_in + 2 * n_e
    visit = np.flatnonzero(a == (1 if ones else 0))
    lanes = np.arange(GROUP, dtype=np.int64)
    out = []
    for g in range(-(-n_out // GROUP)):
        block = np.asarray(table[g * stride:(g + 1) * stride], np.int64)
        k_planes = block[n_in:n_in + n_e] if ones else block[n_in + n_e:]
        k = (((k_planes[:, None] >> lanes[None, :]) & 1) << np.arange(n_e)[:, None]).sum(axis=0)
        s = ((block[visit][:, None] >> lanes[None, :]) & 1).sum(axis=0)
        out.append(((k + side_scalar(n_in, h)) >> 1) + s)
    return np.concatenate(out)[:n_out], ones


def columns_forward(table: np.ndarray, n_in: int, n_out: int, a: np.ndarray) -> np.ndarray:
    """Output bits (0/1, ``n_out``) of a layer by columns on one input row: bit ``top`` of the
    counters, complemented on the zeros side."""
    v, ones = column_counters(table, n_in, n_out, a)
    bit = (v >> columns_top(n_in)) & 1
    return (bit if ones else 1 - bit).astype(np.uint8)


def fires_dense(weights: np.ndarray, n_in: int, max_mismatch: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The same layer the row way: ``popcount(a XOR w) <= max_mismatch`` per neuron (0/1)."""
    w = _bits(weights, n_in).astype(np.int64)
    mism = (w != np.asarray(a, np.int64)[None, :n_in]).sum(axis=1)
    return (mism <= np.asarray(max_mismatch, np.int64)).astype(np.uint8)


__all__ = ["GROUP", "stored_by_columns", "column_items_words", "columns_top", "planes_per_side", "column_words", "column_table", "column_counters",
           "columns_forward", "side_constants", "side_scalar",
           "fires_dense"]
