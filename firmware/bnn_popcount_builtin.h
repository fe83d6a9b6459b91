/**
 * @file bnn_popcount_builtin.h
 * @brief Popcount kernel BNN_POPCOUNT_BUILTIN: `__builtin_popcount` per word (only for cores with a popcount instruction; elsewhere GCC calls libgcc's `__popcountsi2`).
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_BUILTIN; defines
 * bnn_xor_popcount_inline() with the contract of bnn_xor_popcount_ref().
 */
#ifndef BNN_POPCOUNT_BUILTIN_H
#define BNN_POPCOUNT_BUILTIN_H

#include "bnn_popcount_common.h"

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    uint32_t acc = 0;
    uint32_t i;
    for (i = 0; i < n_words; ++i) {
        acc += (uint32_t)__builtin_popcount(a[i] ^ w[i]);
    }
    return acc;
}

#endif /* BNN_POPCOUNT_BUILTIN_H */
