/**
 * @file bnn_popcount_zbb.h
 * @brief Popcount kernel BNN_POPCOUNT_ZBB: RISC-V Zbb `cpop` (emitted as a raw `.insn`, so rv32imc tool chains build it; the core must implement Zbb).
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_ZBB; defines
 * bnn_xor_popcount_inline() with the contract of bnn_xor_popcount_ref().
 */
#ifndef BNN_POPCOUNT_ZBB_H
#define BNN_POPCOUNT_ZBB_H

#include "bnn_popcount_common.h"

#if !defined(__riscv)
#error "BNN_POPCOUNT_ZBB needs a RISC-V core with the Zbb extension"
#endif

/** RISC-V Zbb `cpop rd, rs` (encoded with .insn, so the assembler needs no Zbb flag). */
BNN_ALWAYS_INLINE uint32_t bnn_cpop(uint32_t x)
{
#if defined(__riscv_zbb)
    return (uint32_t)__builtin_popcount(x);
#else
    uint32_t r;
    __asm__(".insn i 0x13, 1, %0, %1, 0x602" : "=r"(r) : "r"(x));
    return r;
#endif
}

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    uint32_t acc0 = 0, acc1 = 0;
    uint32_t i = 0;
    for (; i + 2u <= n_words; i += 2u) {
        acc0 += bnn_cpop(a[i] ^ w[i]);
        acc1 += bnn_cpop(a[i + 1u] ^ w[i + 1u]);
    }
    if (i < n_words) {
        acc0 += bnn_cpop(a[i] ^ w[i]);
    }
    return acc0 + acc1;
}

#endif /* BNN_POPCOUNT_ZBB_H */
