/**
 * @file bnn_kernels.c
 * @brief XOR-popcount row kernels: the reference and the one chosen by BNN_POPCOUNT_STRATEGY.
 *
 * The optimized kernels themselves live in bnn_popcount.h as bnn_xor_popcount_inline(), so the
 * layer loop in bnn.c inlines them; this file gives them their out-of-line entry point.
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

uint32_t bnn_xor_popcount(const uint32_t *a, const uint32_t *w, uint32_t n_words)
{
    return bnn_xor_popcount_inline(a, w, n_words);
}

#if BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_TABLE
const uint8_t bnn_popcount_table8[256] = {
#define BNN_B2(n) n, n + 1, n + 1, n + 2
#define BNN_B4(n) BNN_B2(n), BNN_B2(n + 1), BNN_B2(n + 1), BNN_B2(n + 2)
#define BNN_B6(n) BNN_B4(n), BNN_B4(n + 1), BNN_B4(n + 1), BNN_B4(n + 2)
    BNN_B6(0), BNN_B6(1), BNN_B6(1), BNN_B6(2)
#undef BNN_B6
#undef BNN_B4
#undef BNN_B2
};
#endif
