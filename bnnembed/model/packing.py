"""Bit packing shared by numpy, C and CNF.

Convention (Larq Compute Engine): a binary vector is stored in 32-bit words, element ``i`` in bit
``i % 32`` of word ``i // 32`` (least significant bit first). A set bit means the value -1, a clear
bit +1. Padding bits past the vector's length are 0 in every operand, so they contribute nothing
to ``popcount(a XOR w)``; the dot product of two n-element vectors is ``n - 2*popcount(a XOR w)``.
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 32


def n_words(n_bits: int) -> int:
    """Number of 32-bit words that hold ``n_bits`` bits."""
    return (int(n_bits) + WORD_BITS - 1) // WORD_BITS


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Pack a ``(..., n)`` array of 0/1 into ``(..., n_words(n))`` uint32, LSB first."""
    bits = np.asarray(bits)
    n = bits.shape[-1]
    nw = n_words(n)
    padded = np.zeros(bits.shape[:-1] + (nw * WORD_BITS,), dtype=np.uint8)
    padded[..., :n] = bits != 0
    as_bytes = np.packbits(padded, axis=-1, bitorder="little")
    return np.ascontiguousarray(as_bytes).view("<u4").astype(np.uint32, copy=False)


def unpack_bits(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``(..., n_words)`` uint32 to ``(..., n_bits)`` uint8."""
    words = np.ascontiguousarray(np.asarray(words, dtype="<u4"))
    as_bytes = words.view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")
    return bits[..., :n_bits]


def popcount_words(words: np.ndarray) -> np.ndarray:
    """Population count summed over the last axis of a uint32 array (exact integers)."""
    return np.bitwise_count(np.asarray(words, dtype=np.uint32)).sum(axis=-1, dtype=np.int64)
