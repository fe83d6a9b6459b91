/**
 * @file bnn_popcount_swar3.h
 * @brief Popcount kernel BNN_POPCOUNT_SWAR3: SWAR with deferred reduction: nibble counts of 3 words summed, bytes accumulated across the row, one horizontal sum per block of 30 words; a row plan that specialises short rows.
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_SWAR3; defines
 * bnn_xor_popcount_inline() with the contract of bnn_xor_popcount_ref().
 */
#ifndef BNN_POPCOUNT_SWAR3_H
#define BNN_POPCOUNT_SWAR3_H

#include "bnn_popcount_common.h"

/*
 * Per word only the two SWAR steps that give nibble counts (0..4). Three words' nibbles are
 * added (0..12, still a nibble), folded into bytes (0..24) and accumulated; a block of at most
 * 10 such groups (or 9 plus a tail of up to 2 words) keeps every byte <= 240 < 256.
 * One horizontal sum per block (`usad8` on cores with the DSP extension).
 */
#if defined(__GNUC__) && defined(__thumb2__)
/*
 * Thumb-2 (Cortex-M3/M4/M7/M33/M55): load each operand's three words with one `ldrd` and one
 * `ldr`, both post-incrementing the pointer, instead of three loads and a pointer update. The
 * "m" operands tell the compiler which memory the asm reads.
 */
typedef struct {
    uint32_t v[3];
} bnn_words3_t;

BNN_ALWAYS_INLINE void bnn_load3(const uint32_t **p, uint32_t *x0, uint32_t *x1, uint32_t *x2)
{
    __asm__("ldrd %0, %1, [%3], #8\n\tldr %2, [%3], #4"
            : "=&r"(*x0), "=&r"(*x1), "=&r"(*x2), "+r"(*p)
            : "m"(*(const bnn_words3_t *)*p));
}
#else
BNN_ALWAYS_INLINE void bnn_load3(const uint32_t **p, uint32_t *x0, uint32_t *x1, uint32_t *x2)
{
    *x0 = (*p)[0];
    *x1 = (*p)[1];
    *x2 = (*p)[2];
    *p += 3;
}
#endif

BNN_ALWAYS_INLINE uint32_t bnn_swar3_block(const uint32_t *a, const uint32_t **wp, uint32_t groups,
                                           uint32_t tail, bnn_masks_t m)
{
    const uint32_t *w = *wp;
    uint32_t bytes = 0u;
#if defined(__thumb2__)
    /* measured: the do-while form saves one instruction per group on Thumb-2 ... */
    if (groups != 0u) {
        do {
            uint32_t a0, a1, a2, w0, w1, w2, s;
            bnn_load3(&a, &a0, &a1, &a2);
            bnn_load3(&w, &w0, &w1, &w2);
            s = bnn_nibbles(a0 ^ w0, m) + bnn_nibbles(a1 ^ w1, m) + bnn_nibbles(a2 ^ w2, m);
            bytes += bnn_nibbles_to_bytes(s, m);
        } while (--groups != 0u);
    }
#else
    /* ... but costs 20% on Cortex-M0 (GCC 12 allocates the 8 low registers worse) */
    while (groups-- != 0u) {
        uint32_t a0, a1, a2, w0, w1, w2, s;
        bnn_load3(&a, &a0, &a1, &a2);
        bnn_load3(&w, &w0, &w1, &w2);
        s = bnn_nibbles(a0 ^ w0, m) + bnn_nibbles(a1 ^ w1, m) + bnn_nibbles(a2 ^ w2, m);
        bytes += bnn_nibbles_to_bytes(s, m);
    }
#endif
    if (tail != 0u) {
        uint32_t s = bnn_nibbles(a[0] ^ w[0], m);
        if (tail == 2u) {
            s += bnn_nibbles(a[1] ^ w[1], m);
        }
        bytes += bnn_nibbles_to_bytes(s, m);
        w += tail;
    }
    *wp = w;
    return bnn_sum_bytes(bytes);
}

/**
 * Row plan: `blocks` runs of 10 groups (30 words, bytes <= 240, summed once per block), then
 * `groups` (0..9) groups of 3 words and a tail of 0..2 words (bytes <= 9 * 24 + 16 = 232).
 */
#define BNN_HAVE_ROW_PLAN 1
typedef struct {
    uint32_t blocks; /**< runs of 30 words */
    uint32_t groups; /**< groups of 3 words after the blocks (0..9) */
    uint32_t tail;   /**< words after the groups (0..2) */
} bnn_row_t;

BNN_ALWAYS_INLINE bnn_row_t bnn_row(uint32_t n_words)
{
    bnn_row_t r;
    r.blocks = n_words / 30u;
    n_words %= 30u;
    r.groups = n_words / 3u;
    r.tail = n_words % 3u;
    return r;
}

/**
 * Run CALL(plan) with the row shape as compile-time constants where it matters: short rows
 * (no 30-word block) with a tail of 0, 1 or 2 words each get their own copy of the caller's
 * loop, so the per-neuron path has no shape tests; long rows use the general plan.
 */
#define BNN_ROW_DISPATCH(r, CALL)                                          \
    do {                                                                   \
        if ((r).blocks != 0u) {                                            \
            CALL(r);                                                       \
        } else if ((r).tail == 0u) {                                       \
            const bnn_row_t bnn_r0_ = {0u, (r).groups, 0u};                \
            CALL(bnn_r0_);                                                 \
        } else if ((r).tail == 1u) {                                       \
            const bnn_row_t bnn_r1_ = {0u, (r).groups, 1u};                \
            CALL(bnn_r1_);                                                 \
        } else {                                                           \
            const bnn_row_t bnn_r2_ = {0u, (r).groups, 2u};                \
            CALL(bnn_r2_);                                                 \
        }                                                                  \
    } while (0)

/**
 * One row under plan @p r; @p wp is advanced past the row (the layer loop's weight pointer is the
 * kernel's load pointer, one register fewer in the hot loop).
 */
BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_next(const uint32_t *a, const uint32_t **wp, bnn_row_t r)
{
    const bnn_masks_t m = bnn_masks();
    uint32_t total = 0u;
    uint32_t blocks = r.blocks;
    while (blocks != 0u) {
        total += bnn_swar3_block(a, wp, 10u, 0u, m);
        a += 30;
        --blocks;
    }
    return total + bnn_swar3_block(a, wp, r.groups, r.tail, m);
}

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_row(const uint32_t *a, const uint32_t *w, bnn_row_t r)
{
    return bnn_xor_popcount_next(a, &w, r);
}

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    return bnn_xor_popcount_row(a, w, bnn_row(n_words));
}

#endif /* BNN_POPCOUNT_SWAR3_H */
