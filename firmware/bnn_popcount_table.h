/**
 * @file bnn_popcount_table.h
 * @brief Popcount kernel BNN_POPCOUNT_TABLE: a 256-entry byte table in flash, 4 lookups per word (the table is in bnn_kernels.c).
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_TABLE; defines
 * bnn_xor_popcount_inline() with the contract of bnn_xor_popcount_ref().
 */
#ifndef BNN_POPCOUNT_TABLE_H
#define BNN_POPCOUNT_TABLE_H

#include "bnn_popcount_common.h"

/** popcount of every byte value (256 bytes, const: in flash). */
extern const uint8_t bnn_popcount_table8[256];

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    const uint8_t *t = bnn_popcount_table8;
    uint32_t acc = 0;
    uint32_t i;
    for (i = 0; i < n_words; ++i) {
        const uint32_t x = a[i] ^ w[i];
        acc += (uint32_t)t[x & 0xFFu] + t[(x >> 8) & 0xFFu] + t[(x >> 16) & 0xFFu] + t[x >> 24];
    }
    return acc;
}

#endif /* BNN_POPCOUNT_TABLE_H */
