"""Bit packing: the convention numpy, C and CNF share (property-tested)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from bnnembed.model.packing import n_words, pack_bits, popcount_words, unpack_bits


@given(st.integers(1, 200).flatmap(lambda n: arrays(np.uint8, (3, n), elements=st.integers(0, 1))))
@settings(max_examples=200, deadline=None)
def test_pack_roundtrip_and_layout(bits):
    n = bits.shape[1]
    words = pack_bits(bits)
    assert words.dtype == np.uint32 and words.shape == (3, n_words(n))
    assert np.array_equal(unpack_bits(words, n), bits)
    # element i lives in bit i % 32 of word i // 32, LSB first
    for i in range(n):
        assert np.array_equal((words[:, i // 32] >> np.uint32(i % 32)) & 1, bits[:, i])
    # padding bits are zero
    pad = n_words(n) * 32 - n
    if pad:
        assert not np.any(words[:, -1] >> np.uint32(32 - pad))


@given(st.integers(1, 300).flatmap(
    lambda n: st.tuples(arrays(np.uint8, (n,), elements=st.integers(0, 1)), arrays(np.uint8, (n,), elements=st.integers(0, 1)))))
@settings(max_examples=200, deadline=None)
def test_xnor_popcount_is_the_dot_product(pair):
    a, w = pair
    n = len(a)
    va, vw = 1 - 2 * a.astype(int), 1 - 2 * w.astype(int)  # bit 1 means -1
    xor_count = int(popcount_words(pack_bits(a) ^ pack_bits(w)))
    assert int(va @ vw) == n - 2 * xor_count


def test_known_word():
    bits = np.zeros(40, np.uint8)
    bits[[0, 3, 31, 32, 39]] = 1
    assert pack_bits(bits).tolist() == [0x80000009, 0x81]
