/**
 * @file bnn_popcount_zbb.h
 * @brief Popcount kernel BNN_POPCOUNT_ZBB: RISC-V Zbb `cpop` (emitted as a raw `.insn`, so rv32imc tool chains build it; the core must implement Zbb), rows unrolled.
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

/* Duff's device over the last 0..16 words of a row: case k does word k - 1, then falls through. */
#define BNN_ZBB_DUFF(n, WORD)                                             \
    switch (n) {                                                          \
    case 16u: WORD(15); /* fall through */                                \
    case 15u: WORD(14); /* fall through */                                \
    case 14u: WORD(13); /* fall through */                                \
    case 13u: WORD(12); /* fall through */                                \
    case 12u: WORD(11); /* fall through */                                \
    case 11u: WORD(10); /* fall through */                                \
    case 10u: WORD(9); /* fall through */                                 \
    case 9u: WORD(8); /* fall through */                                  \
    case 8u: WORD(7); /* fall through */                                  \
    case 7u: WORD(6); /* fall through */                                  \
    case 6u: WORD(5); /* fall through */                                  \
    case 5u: WORD(4); /* fall through */                                  \
    case 4u: WORD(3); /* fall through */                                  \
    case 3u: WORD(2); /* fall through */                                  \
    case 2u: WORD(1); /* fall through */                                  \
    case 1u: WORD(0); /* fall through */                                  \
    default: break;                                                       \
    }

#define BNN_ZBB_16(WORD)                                                  \
    do {                                                                  \
        WORD(0); WORD(1); WORD(2); WORD(3); WORD(4); WORD(5); WORD(6);    \
        WORD(7); WORD(8); WORD(9); WORD(10); WORD(11); WORD(12);          \
        WORD(13); WORD(14); WORD(15);                                     \
    } while (0)

#define BNN_ZBB_WORD(k) acc += bnn_cpop(a[(k)] ^ w[(k)])
/* register blocking: one load of the input word for two rows */
#define BNN_ZBB_WORD2(k)                 \
    do {                                 \
        const uint32_t x_ = a[(k)];      \
        acc0 += bnn_cpop(x_ ^ w0[(k)]);  \
        acc1 += bnn_cpop(x_ ^ w1[(k)]);  \
    } while (0)

/*
 * Per word: two loads with immediate offsets, `xor`, `cpop`, `add` (5 instructions); two rows
 * at a time (bnn_xor_popcount_pair) 4.5 per row and word. Rows are done 16 words per loop turn and the
 * last 0..16 words by a jump into an unrolled run (Duff's device): no per-word loop overhead.
 */
BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    uint32_t acc = 0u;
    while (n_words > 16u) {
        BNN_ZBB_16(BNN_ZBB_WORD);
        a += 16;
        w += 16;
        n_words -= 16u;
    }
    BNN_ZBB_DUFF(n_words, BNN_ZBB_WORD)
    return acc;
}

#define BNN_HAVE_ROW_PAIR 1
#define BNN_HAVE_ROW_PLAN 1
typedef struct {
    uint32_t n_words; /**< 32-bit words per row */
} bnn_row_t;

BNN_ALWAYS_INLINE bnn_row_t bnn_row(uint32_t n_words)
{
    bnn_row_t r;
    r.n_words = n_words;
    return r;
}

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_row(const uint32_t *a, const uint32_t *w, bnn_row_t r)
{
    return bnn_xor_popcount_inline(a, w, r.n_words);
}

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_next(const uint32_t *a, const uint32_t **wp, bnn_row_t r)
{
    const uint32_t c = bnn_xor_popcount_inline(a, *wp, r.n_words);
    *wp += r.n_words;
    return c;
}

/** Two consecutive rows: returns the first row's count, stores the second's in @p second. */
BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_pair(const uint32_t *a, const uint32_t **wp, bnn_row_t r,
                                                 uint32_t *second)
{
    const uint32_t *w0 = *wp;
    const uint32_t *w1 = w0 + r.n_words;
    uint32_t n = r.n_words;
    uint32_t acc0 = 0u, acc1 = 0u;
    *wp = w1 + n;
    while (n > 16u) {
        BNN_ZBB_16(BNN_ZBB_WORD2);
        a += 16;
        w0 += 16;
        w1 += 16;
        n -= 16u;
    }
    BNN_ZBB_DUFF(n, BNN_ZBB_WORD2)
    *second = acc1;
    return acc0;
}

#define BNN_ROW_DISPATCH(r, CALL) CALL(r)

#endif /* BNN_POPCOUNT_ZBB_H */
