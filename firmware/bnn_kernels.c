/**
 * @file bnn_kernels.c
 * @brief XOR-popcount row kernels: the reference and the one chosen by BNN_POPCOUNT_STRATEGY.
 */
#include "bnn_popcount.h"

uint32_t bnn_xor_popcount_ref(const uint32_t *a, const uint32_t *w, uint32_t n_words)
{
    uint32_t acc = 0;
    uint32_t i;
    for (i = 0; i < n_words; ++i) {
        acc += bnn_popcount32_swar(a[i] ^ w[i]);
    }
    return acc;
}

#if BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_SWAR

uint32_t bnn_xor_popcount(const uint32_t *a, const uint32_t *w, uint32_t n_words)
{
    return bnn_xor_popcount_ref(a, w, n_words);
}

#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_BUILTIN

uint32_t bnn_xor_popcount(const uint32_t *a, const uint32_t *w, uint32_t n_words)
{
    uint32_t acc = 0;
    uint32_t i;
    for (i = 0; i < n_words; ++i) {
        acc += (uint32_t)__builtin_popcount(a[i] ^ w[i]);
    }
    return acc;
}

#else
#error "unknown BNN_POPCOUNT_STRATEGY (see bnn_popcount.h for the available kernels)"
#endif
