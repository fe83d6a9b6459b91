"""Bit packing, pinned down for mutation testing: word counts at the 32-bit boundaries, known
words, any-dimensional batches, non-0/1 inputs, and the popcount's exact integer type."""

import numpy as np
import pytest

from bnnembed.model.packing import WORD_BITS, n_words, pack_bits, popcount_words, unpack_bits


@pytest.mark.parametrize("n,words", [(0, 0), (1, 1), (31, 1), (32, 1), (33, 2), (64, 2), (65, 3), (np.int64(96), 3)])
def test_n_words_at_the_boundaries(n, words):
    assert WORD_BITS == 32
    assert n_words(n) == words and type(n_words(n)) is int


def test_known_words_in_a_3d_batch_and_nonzero_means_set():
    bits = np.zeros((2, 2, 33), np.uint8)
    bits[0, 0, 0] = 1
    bits[0, 1, 31] = 7  # any non-zero value is a set bit
    bits[1, 0, 32] = 255
    bits[1, 1, :] = 1
    words = pack_bits(bits)
    assert words.dtype == np.uint32 and words.shape == (2, 2, 2)
    assert words.tolist() == [[[1, 0], [0x80000000, 0]], [[0, 1], [0xFFFFFFFF, 1]]]
    back = unpack_bits(words, 33)
    assert back.dtype == np.uint8 and back.tolist() == (bits != 0).astype(np.uint8).tolist()


def test_unpack_reads_words_by_value_whatever_their_byte_order_or_type():
    value = [0x00000001, 0x80000100]
    expected = np.zeros(64, np.uint8)
    expected[[0, 40, 63]] = 1
    for words in (np.array(value, "<u4"), np.array(value, ">u4"), np.array(value, np.int64), value):
        assert unpack_bits(words, 64).tolist() == expected.tolist()
    assert unpack_bits(np.array([0xFFFFFFFF], np.uint32), 5).tolist() == [1] * 5  # cut at n_bits


def test_popcount_words_exact_sum_over_the_last_axis():
    w = np.array([[0xFFFFFFFF] * 10, [0x80000001] + [0] * 9], np.uint32)
    got = popcount_words(w)
    assert got.dtype == np.int64 and got.tolist() == [320, 2]  # 320 does not fit the uint8 popcounts
    assert popcount_words(np.array([-1, 1], np.int32)).tolist() == 33  # a signed word is its 32 bits
    assert int(popcount_words([0x0F0F0F0F, 0x1])) == 17
