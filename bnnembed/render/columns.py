"""A dense hidden layer stored by columns: the tables of the COLUMNS kernel, and its arithmetic in numpy.

The COLUMNS kernel (``firmware/bnn_popcount_columns.h``) counts 32 neurons at once: word ``i`` of a
group holds input bit ``i``'s weight for each of the group's 32 neurons, and the counts live in
bit planes (plane ``j`` = bit ``j`` of every neuron's count). It visits only the input bits on the
minority side, with ``h = popcount(a)``:

- ones side (``2 h <= n_in``): ``S = sum of w_i over the 1 bits``, ``mismatch = pop(w) + h - 2 S``;
- zeros side: ``S = sum of w_i over the 0 bits``, ``mismatch = 2 S + h - pop(w)``.

A neuron with ``M = max_mismatch`` (clamped to ``-1 .. n_in``, which changes no decision) fires

- ones side iff ``S >= R = ceil((pop(w) - M + h) / 2)``,
- zeros side iff not ``S >= R' = floor((M + pop(w) - h) / 2) + 1``.

Both R and R' lie in ``-floor(n_in / 2) .. n_in + 1``. With ``top`` the bit length of
``n_in + floor(n_in / 2)``, counters that start at ``I = 2^top - R`` never leave
``0 .. 2^(top+1) - 1`` after adding ``S <= n_in``, and the test is bit ``top`` of ``I + S``. The
device gets ``I`` from one stored constant per side, ``E = 2^(top+1) + C mod 2^(top+2)`` with
``C = M - pop(w)`` (ones) or ``C = -M - pop(w) - 1`` (zeros): ``I = (E - h) >> 1`` (ones) or
``(E + h) >> 1`` (zeros), one bit-sliced add of a scalar per group. Padding neurons of the last
group (``pop(w) = 0``, ``M = -1``) give 0 on both sides.

:func:`columns_forward` runs exactly that arithmetic in numpy (the tests compare it with the
dense layer, exhaustively on small layers); the C kernel runs it on the device.
"""

from __future__ import annotations

import numpy as np

GROUP = 32  #: neurons per column word


def columns_top(n_in: int) -> int:
    """Bit of the counters that decides: the bit length of ``n_in + n_in // 2``."""
    return int(n_in + n_in // 2).bit_length()


def planes_per_side(n_in: int) -> int:
    """Stored threshold planes per side and group (``top + 2``)."""
    return columns_top(n_in) + 2


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
    top = columns_top(n_in)
    w = np.zeros((n_groups * GROUP, n_in), np.uint8)
    w[:n_out] = _bits(weights, n_in)
    m = np.full(n_groups * GROUP, -1, np.int64)
    m[:n_out] = np.clip(np.asarray(max_mismatch, np.int64), -1, n_in)
    pop = w.sum(axis=1, dtype=np.int64)
    out = []
    for g in range(n_groups):
        lanes = slice(g * GROUP, (g + 1) * GROUP)
        cols = (w[lanes].astype(np.uint64).T << np.arange(GROUP, dtype=np.uint64)).sum(axis=1)
        out.append(cols.astype(np.uint32))
        out.append(_planes((1 << (top + 1)) + m[lanes] - pop[lanes], n_e))
        out.append(_planes((1 << (top + 1)) - m[lanes] - pop[lanes] - 1, n_e))
    return np.concatenate(out).astype(np.uint32)


def columns_forward(table: np.ndarray, n_in: int, n_out: int, a: np.ndarray) -> np.ndarray:
    """Output bits (0/1, ``n_out``) of a layer by columns on one input row of 0/1 bits, by the
    kernel's arithmetic: the minority side, ``I = (E -+ h) >> 1``, bit ``top`` of ``I + S``."""
    a = np.asarray(a, np.int64)[:n_in]
    h = int(a.sum())
    ones = 2 * h <= n_in
    n_e, top = planes_per_side(n_in), columns_top(n_in)
    stride = n_in + 2 * n_e
    visit = np.flatnonzero(a == (1 if ones else 0))
    lanes = np.arange(GROUP, dtype=np.int64)
    out = []
    for g in range(-(-n_out // GROUP)):
        block = np.asarray(table[g * stride:(g + 1) * stride], np.int64)
        e_planes = block[n_in:n_in + n_e] if ones else block[n_in + n_e:]
        e = (((e_planes[:, None] >> lanes[None, :]) & 1) << np.arange(n_e)[:, None]).sum(axis=0)
        start = ((e + (-h if ones else h)) % (1 << n_e)) >> 1
        s = ((block[visit][:, None] >> lanes[None, :]) & 1).sum(axis=0)
        bit = ((start + s) >> top) & 1
        out.append(bit if ones else 1 - bit)
    return np.concatenate(out)[:n_out].astype(np.uint8)


def fires_dense(weights: np.ndarray, n_in: int, max_mismatch: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The same layer the row way: ``popcount(a XOR w) <= max_mismatch`` per neuron (0/1)."""
    w = _bits(weights, n_in).astype(np.int64)
    mism = (w != np.asarray(a, np.int64)[None, :n_in]).sum(axis=1)
    return (mism <= np.asarray(max_mismatch, np.int64)).astype(np.uint8)


__all__ = ["GROUP", "columns_top", "planes_per_side", "column_words", "column_table", "columns_forward",
           "fires_dense"]
