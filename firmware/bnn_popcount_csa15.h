/**
 * @file bnn_popcount_csa15.h
 * @brief Popcount kernel BNN_POPCOUNT_CSA15: carry-save adder trees over units of 15 words (11 full adders give the unit's count as four words of weight 1, 2, 4 and 8), a 7-word unit and 0..7 tail words for the rest of the row; nibble counts, byte folds, one multiply per reduction.
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_CSA15; defines
 * bnn_xor_popcount_inline() with the contract of bnn_xor_popcount_ref(). Written for cores with
 * many registers and no shifted operands (rv32imc: 31 registers, every mask held in one).
 */
#ifndef BNN_POPCOUNT_CSA15_H
#define BNN_POPCOUNT_CSA15_H

#include "bnn_popcount_common.h"

/** Full adder on 32 bit lanes, 5 instructions: h:l = a + b + c. */
#define BNN_FA15(h, l, a, b, c)                     \
    do {                                            \
        const uint32_t bnn_u_ = (a) ^ (b);          \
        (l) = bnn_u_ ^ (c);                         \
        (h) = (a) ^ (((a) ^ (c)) & bnn_u_);         \
    } while (0)

/** The masks of this kernel: the SWAR ones and 0x00FF00FF for the reduction of bytes. */
typedef struct {
    bnn_masks_t m;
    uint32_t m8;
} bnn_csa15_masks_t;

BNN_ALWAYS_INLINE bnn_csa15_masks_t bnn_csa15_masks(void)
{
    bnn_csa15_masks_t k;
    k.m = bnn_masks();
    k.m8 = BNN_M8;
#if !defined(__thumb2__)
    BNN_IN_REGISTER(k.m8);
#endif
    return k;
}

/**
 * Sum of the four bytes of @p b (each <= 255): `usad8` on DSP cores, else 16-bit halves and one
 * multiply (the sum of the halves lands in the top half).
 */
BNN_ALWAYS_INLINE uint32_t bnn_csa15_hsum(uint32_t b, bnn_csa15_masks_t k)
{
#if defined(__ARM_FEATURE_SIMD32) && defined(__GNUC__)
    (void)k;
    return __usad8(b, 0u);
#else
    b = (b & k.m8) + ((b >> 8) & k.m8);
    return (b * 0x00010001u) >> 16;
#endif
}

/** x_i = a[i] ^ w[i] */
#define BNN_X15(i) (a[(i)] ^ w[(i)])

/**
 * One unit of 15 words: 11 full adders reduce them to l, t, f, e (weights 1, 2, 4, 8); returns
 * their count as bytes: fold(nl + 2 nt) + 4 fold(nf + 2 ne), each byte <= 24 + 96 = 120.
 */
BNN_ALWAYS_INLINE uint32_t bnn_csa15_unit(const uint32_t *a, const uint32_t *w, bnn_masks_t m)
{
    uint32_t h1, l1, h2, l2, h3, l3, h4, l4, h5, l5, h6, l6, h7, l, g1, t1, g2, t2, g3, t, e, f;
    uint32_t s1, s4;
    BNN_FA15(h1, l1, BNN_X15(0), BNN_X15(1), BNN_X15(2));
    BNN_FA15(h2, l2, BNN_X15(3), BNN_X15(4), BNN_X15(5));
    BNN_FA15(h6, l6, l1, l2, BNN_X15(6));
    BNN_FA15(h3, l3, BNN_X15(7), BNN_X15(8), BNN_X15(9));
    BNN_FA15(h4, l4, BNN_X15(10), BNN_X15(11), BNN_X15(12));
    BNN_FA15(h7, l5, l3, l4, BNN_X15(13));
    BNN_FA15(h5, l, l5, l6, BNN_X15(14));
    BNN_FA15(g1, t1, h1, h2, h6);
    BNN_FA15(g2, t2, h3, h4, h7);
    BNN_FA15(g3, t, t1, t2, h5);
    BNN_FA15(e, f, g1, g2, g3);
    s1 = bnn_nibbles(l, m) + (bnn_nibbles(t, m) << 1); /* <= 12 per nibble */
    s4 = bnn_nibbles(f, m) + (bnn_nibbles(e, m) << 1);
    return bnn_nibbles_to_bytes(s1, m) + (bnn_nibbles_to_bytes(s4, m) << 2);
}

/** One unit of 7 words, of which the first @p n (6 or 7, a compile-time constant) are read and a
 *  seventh past them counts as 0: 4 full adders to l, t, f; bytes <= 24 + 4 x 8 = 56. */
BNN_ALWAYS_INLINE uint32_t bnn_csa15_unit7(const uint32_t *a, const uint32_t *w, uint32_t n, bnn_masks_t m)
{
    uint32_t h1, l1, h2, l2, h3, l, t, f, s1;
    BNN_FA15(h1, l1, BNN_X15(0), BNN_X15(1), BNN_X15(2));
    BNN_FA15(h2, l2, BNN_X15(3), BNN_X15(4), BNN_X15(5));
    BNN_FA15(h3, l, l1, l2, n == 7u ? BNN_X15(6) : 0u);
    BNN_FA15(f, t, h1, h2, h3);
    s1 = bnn_nibbles(l, m) + (bnn_nibbles(t, m) << 1);
    return bnn_nibbles_to_bytes(s1, m) + (bnn_nibbles_to_bytes(bnn_nibbles(f, m), m) << 2);
}

/** The last 0..7 words (a compile-time constant under BNN_ROW_DISPATCH): groups of 3 through a
 *  full adder (bytes <= 24), then 1 or 2 words as nibble counts (bytes <= 16); <= 56 in all. */
BNN_ALWAYS_INLINE uint32_t bnn_csa15_tail(const uint32_t *a, const uint32_t *w, uint32_t tail,
                                          bnn_masks_t m)
{
    uint32_t b = 0u, h, l, s;
    while (tail >= 3u) {
        BNN_FA15(h, l, BNN_X15(0), BNN_X15(1), BNN_X15(2));
        s = bnn_nibbles(l, m) + (bnn_nibbles(h, m) << 1);
        b += bnn_nibbles_to_bytes(s, m);
        a += 3;
        w += 3;
        tail -= 3u;
    }
    if (tail != 0u) {
        s = bnn_nibbles(BNN_X15(0), m);
        if (tail == 2u) {
            s += bnn_nibbles(BNN_X15(1), m);
        }
        b += bnn_nibbles_to_bytes(s, m);
    }
    return b;
}

/**
 * Row plan: `units` of 15 words, then `unit7` (0 or 1) unit of 7 words and `tail` (0..7) words.
 * Every 15-word unit but the last is reduced on its own (bytes <= 120); the last one, the 7-word
 * unit and the tail share one reduction (bytes <= 120 + 56 + 56 = 232 < 256). A tail of 6 words
 * (21 = 15 + 6: the whole-word MNIST first layer) goes through the 7-word unit with its seventh
 * word 0 (a constant under BNN_ROW_DISPATCH): measured on those bounds, 0.596 -> 0.535
 * instructions per binary MAC on the Cortex-M0, 0.462 -> 0.452 on rv32imc, 0.390 -> 0.373 on the
 * Cortex-M4; a tail of 5 words (the digits first layer) was measured slower that way, and 4 and 5
 * keep the tail path.
 */
#define BNN_HAVE_ROW_PLAN 1
typedef struct {
    uint32_t units; /**< units of 15 words */
    uint32_t unit7; /**< one unit of 7 words after them (0 or 1) */
    uint32_t tail;  /**< words after that (0..7) */
} bnn_row_t;

BNN_ALWAYS_INLINE bnn_row_t bnn_row(uint32_t n_words)
{
    bnn_row_t r;
    r.units = n_words / 15u;
    n_words %= 15u;
    r.unit7 = (n_words >= 7u) ? 1u : 0u;
    r.tail = n_words - 7u * r.unit7;
    return r;
}

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_next(const uint32_t *a, const uint32_t **wp, bnn_row_t r)
{
    const bnn_csa15_masks_t k = bnn_csa15_masks();
    const uint32_t *w = *wp;
    uint32_t total = 0u, b = 0u, units = r.units;
    if (units != 0u) {
        b = bnn_csa15_unit(a, w, k.m);
        a += 15;
        w += 15;
        while (--units != 0u) {
            total += bnn_csa15_hsum(b, k);
            b = bnn_csa15_unit(a, w, k.m);
            a += 15;
            w += 15;
        }
    }
    if (r.unit7 != 0u) {
        b += bnn_csa15_unit7(a, w, 7u, k.m);
        a += 7;
        w += 7;
    }
    if (r.tail == 6u) { /* six words: the 7-word unit with the seventh 0 (see bnn_row_t) */
        b += bnn_csa15_unit7(a, w, 6u, k.m);
    } else {
        b += bnn_csa15_tail(a, w, r.tail, k.m);
    }
    *wp = w + r.tail;
    return total + bnn_csa15_hsum(b, k);
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

/** The tail length of a row of @p n words (a constant expression, for BNN_ROW_SHAPE_USED). */
#define BNN_CSA15_TAIL(n) (((uint32_t)(n) % 15u) - (((uint32_t)(n) % 15u) >= 7u ? 7u : 0u))

/** Each tail length (0..7) the model's rows have gets its own copy of the layer loop (a
 *  compile-time constant; BNN_ROW_WORDS_<i>, bnn_popcount_common.h), other lengths the general one. */
#define BNN_CSA15_CASE(r, CALL, t, general) \
    BNN_ROW_CASE(BNN_CSA15_TAIL, t, CALL, general, (r).units, (r).unit7, t)
#define BNN_ROW_DISPATCH(r, CALL)                                              \
    do {                                                                       \
        int bnn_general_ = 0;                                                  \
        switch ((r).tail) {                                                    \
        case 0u: BNN_CSA15_CASE(r, CALL, 0u, bnn_general_);                    \
        case 1u: BNN_CSA15_CASE(r, CALL, 1u, bnn_general_);                    \
        case 2u: BNN_CSA15_CASE(r, CALL, 2u, bnn_general_);                    \
        case 3u: BNN_CSA15_CASE(r, CALL, 3u, bnn_general_);                    \
        case 4u: BNN_CSA15_CASE(r, CALL, 4u, bnn_general_);                    \
        case 5u: BNN_CSA15_CASE(r, CALL, 5u, bnn_general_);                    \
        case 6u: BNN_CSA15_CASE(r, CALL, 6u, bnn_general_);                    \
        default: BNN_CSA15_CASE(r, CALL, 7u, bnn_general_);                    \
        }                                                                      \
        if (bnn_general_) {                                                    \
            CALL(r);                                                           \
        }                                                                      \
    } while (0)

#endif /* BNN_POPCOUNT_CSA15_H */
