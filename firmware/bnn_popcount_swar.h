/**
 * @file bnn_popcount_swar.h
 * @brief Popcount kernel BNN_POPCOUNT_SWAR: the reference kernel: a full SWAR popcount per word.
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_SWAR; defines
 * bnn_xor_popcount_inline() with the contract of bnn_xor_popcount_ref().
 */
#ifndef BNN_POPCOUNT_SWAR_H
#define BNN_POPCOUNT_SWAR_H

#include "bnn_popcount_common.h"

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    uint32_t acc = 0;
    uint32_t i;
    for (i = 0; i < n_words; ++i) {
        acc += bnn_popcount32_swar(a[i] ^ w[i]);
    }
    return acc;
}

#endif /* BNN_POPCOUNT_SWAR_H */
