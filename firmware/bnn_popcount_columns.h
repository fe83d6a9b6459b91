/**
 * @file bnn_popcount_columns.h
 * @brief Kernel BNN_POPCOUNT_COLUMNS: hidden layers stored by columns, 32 neurons counted at once
 *        in bit-sliced counters over the input's minority bits; rows (the output neuron, masked
 *        layers) by the SWAR3 row kernel.
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_COLUMNS.
 *
 * Why: a row kernel spends its instructions per input word per neuron. Stored by columns, one
 * 32-bit word holds the weights of 32 neurons for one input bit, and adding it to 32 counters kept
 * as bit planes (plane j = bit j of every neuron's count) costs a carry-save adder's share, about
 * 6 instructions for 32 binary MACs. Only the input bits on the minority side are visited:
 *
 * - "ones" (h = popcount(a) <= n_in / 2): S = sum over the 1 bits i of a of w_i, and
 *   popcount(a XOR w) = popcount(w) + h - 2 S;
 * - "zeros" (h > n_in / 2): S = sum over the 0 bits of a of w_i, and
 *   popcount(a XOR w) = 2 S + h - popcount(w).
 *
 * Either way the neuron fires iff S crosses a threshold that is a per-neuron constant shifted by
 * h. The generator stores, per group of 32 neurons and per side, that constant K as `top` bit
 * planes (top = bit length of n_in); the counters start at I = (K + s) >> 1 with one scalar s per
 * layer and side, and the neuron fires iff bit `top` of I + S is 1 (ones side) or 0 (zeros side).
 * bnnembed/render/columns.py derives K and s and the range argument (I + S never leaves
 * 0 .. 2^(top+1) - 1); its tests check the arithmetic exhaustively on small layers.
 *
 * Table of a layer stored by columns (`layout = BNN_LAYOUT_COLUMNS`), per group of 32 neurons:
 * n_in column words (bit l of word i = weight bit of neuron 32 g + l for input i), then the
 * ones-side planes (top words), then the zeros-side planes (top words).
 */
#ifndef BNN_POPCOUNT_COLUMNS_H
#define BNN_POPCOUNT_COLUMNS_H

#include "bnn_popcount_common.h"
#include "bnn_popcount_swar3.h" /* rows: the output neuron and masked layers */

#define BNN_HAVE_COLUMNS 1

/** Counter planes for the widest layer the generator allows (n_in <= 32767: top = 15, planes
 *  0 .. top, and one more is kept so that the 16-column blocks always have a weight-16 plane). */
#define BNN_COLUMNS_MAX_PLANES 17u

/** The counters' top bit: the bit length of n_in (bnnembed.render.columns.columns_top). */
BNN_ALWAYS_INLINE uint32_t bnn_columns_top(uint32_t n_in)
{
    uint32_t v = n_in, b = 0u;
    while (v != 0u) {
        ++b;
        v >>= 1;
    }
    return b;
}

/** Index of the lowest set bit of a non-zero word. */
#if defined(__GNUC__) && ((defined(__ARM_FEATURE_CLZ) && defined(__thumb2__)) || defined(__riscv_zbb) || \
                          defined(__x86_64__) || defined(__i386__) || defined(__aarch64__))
#define bnn_ctz32(w) ((uint32_t)__builtin_ctz(w)) /* rbit + clz, ctz, tzcnt: no library call */
#else
BNN_ALWAYS_INLINE uint32_t bnn_ctz32(uint32_t w) /* de Bruijn: one multiply and a 32-byte table */
{
    static const uint8_t debruijn[32] = {0,  1,  28, 2,  29, 14, 24, 3,  30, 22, 20, 15, 25, 17, 4,  8,
                                         31, 27, 13, 23, 21, 19, 16, 7,  26, 12, 18, 6,  11, 5,  10, 9};
    return debruijn[((w & (0u - w)) * 0x077CB531u) >> 27];
}
#endif

/** Byte offsets (4 x bit index) of the input bits that are 1 in a XOR flip, bits < n_in; returns
 *  how many. */
static inline uint32_t bnn_columns_items(const uint32_t *a, uint32_t n_in, uint32_t flip, uint32_t *items)
{
    const uint32_t n_words = (n_in + 31u) >> 5;
    const uint32_t last = (n_in & 31u) ? ((1u << (n_in & 31u)) - 1u) : ~0u;
    uint32_t k = 0u, i;
    for (i = 0; i < n_words; ++i) {
        uint32_t w = a[i] ^ flip;
        const uint32_t off = i << 7;
        if (i + 1u == n_words) {
            w &= last;
        }
        while (w != 0u) {
            items[k++] = off + (bnn_ctz32(w) << 2);
            w &= w - 1u;
        }
    }
    return k;
}

/** Full adder on 32 lanes, 5 instructions: h:l = a + b + c (l may be a; a and c are read into
 *  temporaries first, so the two assignments do not depend on their order). */
#define BNN_COL_FA(h, l, a, b, c)                   \
    do {                                            \
        const uint32_t bnn_a_ = (a);                \
        const uint32_t bnn_c_ = (c);                \
        const uint32_t bnn_u_ = bnn_a_ ^ (b);       \
        (l) = bnn_u_ ^ bnn_c_;                      \
        (h) = bnn_a_ ^ ((bnn_a_ ^ bnn_c_) & bnn_u_); \
    } while (0)

/** Add a word of weight 2^k into the planes p[k..n_p-1] (ripple, stops when nothing carries). */
BNN_ALWAYS_INLINE void bnn_columns_add(uint32_t *p, uint32_t k, uint32_t c, uint32_t n_p)
{
    for (; c != 0u && k < n_p; ++k) {
        const uint32_t t = p[k] & c;
        p[k] ^= c;
        c = t;
    }
}

/** The column word of item @p k (a byte offset into the group's columns). */
#define BNN_COL(k) (*(const uint32_t *)(const void *)(col + it[k]))

/**
 * Add the n columns named by @p it to the counters p[0..n_p-1] (n_p >= 5): Harley–Seal over
 * blocks of 16 (15 full adders: the weight-1, 2, 4 and 8 planes stay in registers, the weight-16
 * carry ripples into the planes above), the last 0..15 in pairs.
 */
static inline void bnn_columns_count(const uint8_t *col, const uint32_t *it, uint32_t n, uint32_t *p, uint32_t n_p)
{
    uint32_t ones = p[0], twos = p[1], fours = p[2], eights = p[3];
    for (; n >= 16u; n -= 16u, it += 16) {
        uint32_t twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteens;
        BNN_COL_FA(twos_a, ones, ones, BNN_COL(0), BNN_COL(1));
        BNN_COL_FA(twos_b, ones, ones, BNN_COL(2), BNN_COL(3));
        BNN_COL_FA(fours_a, twos, twos, twos_a, twos_b);
        BNN_COL_FA(twos_a, ones, ones, BNN_COL(4), BNN_COL(5));
        BNN_COL_FA(twos_b, ones, ones, BNN_COL(6), BNN_COL(7));
        BNN_COL_FA(fours_b, twos, twos, twos_a, twos_b);
        BNN_COL_FA(eights_a, fours, fours, fours_a, fours_b);
        BNN_COL_FA(twos_a, ones, ones, BNN_COL(8), BNN_COL(9));
        BNN_COL_FA(twos_b, ones, ones, BNN_COL(10), BNN_COL(11));
        BNN_COL_FA(fours_a, twos, twos, twos_a, twos_b);
        BNN_COL_FA(twos_a, ones, ones, BNN_COL(12), BNN_COL(13));
        BNN_COL_FA(twos_b, ones, ones, BNN_COL(14), BNN_COL(15));
        BNN_COL_FA(fours_b, twos, twos, twos_a, twos_b);
        BNN_COL_FA(eights_b, fours, fours, fours_a, fours_b);
        BNN_COL_FA(sixteens, eights, eights, eights_a, eights_b);
        bnn_columns_add(p, 4u, sixteens, n_p);
    }
    p[0] = ones;
    p[1] = twos;
    p[2] = fours;
    p[3] = eights;
    for (; n >= 2u; n -= 2u, it += 2) {
        uint32_t carry;
        BNN_COL_FA(carry, p[0], p[0], BNN_COL(0), BNN_COL(1));
        bnn_columns_add(p, 1u, carry, n_p);
    }
    if (n != 0u) {
        bnn_columns_add(p, 0u, BNN_COL(0), n_p);
    }
}
#undef BNN_COL

/**
 * One hidden layer stored by columns: output bit j is 1 iff neuron j fires (bits past n_out stay
 * 0: their columns are 0 and their constants never fire). @p items is scratch for the minority
 * side's bit offsets (at most n_in / 2). Preconditions, as the generator and the encoder make
 * them: 1 <= n_in <= 32767, and the input's padding bits (past n_in in its last word) are 0, since
 * h counts whole words.
 */
static inline void bnn_layer_columns(uint32_t n_in, uint32_t n_out, const uint32_t *table, const uint32_t *a,
                                     uint32_t *out, uint32_t *items)
{
    const uint32_t n_words = (n_in + 31u) >> 5;
    const uint32_t top = bnn_columns_top(n_in);          /* stored planes per side */
    const uint32_t n_p = (top + 1u < 5u) ? 5u : top + 1u; /* counter planes (>= 5 for the blocks) */
    const uint32_t stride = n_in + 2u * top;
    const uint32_t n_groups = (n_out + 31u) >> 5;
    const uint32_t n2 = n_in >> 1;
    uint32_t sm[BNN_COLUMNS_MAX_PLANES]; /* plane j of the scalar s: all ones or zero */
    uint32_t h = 0u, n, s, g, j;
    int ones;
    for (j = 0; j < n_words; ++j) {
        h += bnn_popcount32_swar(a[j]);
    }
    ones = (2u * h <= n_in);
    n = bnn_columns_items(a, n_in, ones ? 0u : ~0u, items);
    /* 0 <= s < 2^(top+1) on both sides (bnnembed/render/columns.py), so planes 0 .. top carry it */
    s = (2u << top) + (ones ? 0u - n2 - 1u - h : n2 + h - 2u * n_in);
    for (j = 0; j <= top; ++j) {
        sm[j] = 0u - ((s >> j) & 1u);
    }
    for (g = 0; g < n_groups; ++g, table += stride) {
        uint32_t p[BNN_COLUMNS_MAX_PLANES];
        const uint32_t *k = table + n_in + (ones ? 0u : top);
        uint32_t c = k[0] & sm[0]; /* p = (K + s) >> 1: one bit-sliced add; plane 0 only carries */
        for (j = 1; j < top; ++j) {
            const uint32_t t = k[j] ^ sm[j];
            p[j - 1u] = t ^ c;
            c = (k[j] & sm[j]) | (t & c);
        }
        p[top - 1u] = sm[top] ^ c; /* K has no plane top, s none above it */
        p[top] = sm[top] & c;
        for (j = top + 1u; j < n_p; ++j) {
            p[j] = 0u;
        }
        bnn_columns_count((const uint8_t *)table, items, n, p, n_p);
        out[g] = ones ? p[top] : ~p[top];
    }
}

#endif /* BNN_POPCOUNT_COLUMNS_H */
