/**
 * @file bnn_popcount_csa.h
 * @brief Popcount kernel BNN_POPCOUNT_CSA: Harley–Seal: carry-save adders over groups of 4 words, SWAR only on the carries.
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_CSA; defines
 * bnn_xor_popcount_inline() with the contract of bnn_xor_popcount_ref().
 */
#ifndef BNN_POPCOUNT_CSA_H
#define BNN_POPCOUNT_CSA_H

#include "bnn_popcount_common.h"

/** Carry-save adder: h:l = a + b + c bitwise (h the carries, l the sums). */
#define BNN_CSA(h, l, a, b, c)                  \
    do {                                        \
        const uint32_t bnn_u_ = (a) ^ (b);      \
        (h) = ((a) & (b)) | (bnn_u_ & (c));     \
        (l) = bnn_u_ ^ (c);                     \
    } while (0)

/*
 * Harley–Seal: `ones` and `twos` hold the bitwise running count mod 4; every group of 4 words
 * costs 3 CSAs and produces one `fours` word, whose nibble counts are accumulated as bytes
 * (<= 8 per group: 31 groups per block). The remaining ones, twos and 0..3 tail words are
 * counted with SWAR at the end of the row.
 */
BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    const bnn_masks_t m = bnn_masks();
    uint32_t ones = 0u, twos = 0u, total = 0u, tail;
    uint32_t groups = n_words >> 2;
    n_words &= 3u;
    while (groups != 0u) {
        uint32_t bytes = 0u;
        uint32_t block = groups > 31u ? 31u : groups;
        groups -= block;
        do {
            uint32_t twos_a, twos_b, fours;
            const uint32_t x0 = a[0] ^ w[0], x1 = a[1] ^ w[1];
            const uint32_t x2 = a[2] ^ w[2], x3 = a[3] ^ w[3];
            BNN_CSA(twos_a, ones, ones, x0, x1);
            BNN_CSA(twos_b, ones, ones, x2, x3);
            BNN_CSA(fours, twos, twos, twos_a, twos_b);
            bytes += bnn_nibbles_to_bytes(bnn_nibbles(fours, m), m);
            a += 4;
            w += 4;
        } while (--block != 0u);
        total += bnn_sum_bytes(bytes);
    }
    /* total counts the fours; add twos (x2), ones and the tail words, all as nibbles <= 15 */
    tail = bnn_nibbles(twos, m);
    tail = tail + tail + bnn_nibbles(ones, m);
    total <<= 2;
    while (n_words-- != 0u) {
        total += bnn_popcount32_swar(*a++ ^ *w++);
    }
    return total + bnn_sum_bytes(bnn_nibbles_to_bytes(tail, m));
}

#endif /* BNN_POPCOUNT_CSA_H */
