/**
 * @file bnn_popcount_csa7.h
 * @brief Popcount kernel BNN_POPCOUNT_CSA7: carry-save adder trees over units of 7 words (4 CSAs give the unit's count as three words of weight 1, 2 and 4), nibble counts of those, byte sums (`usada8` on cores with the DSP extension).
 *
 * Included by bnn_popcount.h when BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_CSA7; defines
 * bnn_xor_popcount_inline() with the contract of bnn_xor_popcount_ref().
 */
#ifndef BNN_POPCOUNT_CSA7_H
#define BNN_POPCOUNT_CSA7_H

#include "bnn_popcount_common.h"

/** Full adder on 32 bit lanes, 5 instructions: h:l = a + b + c (majority = a unless a != b). */
#define BNN_FA(h, l, a, b, c)                       \
    do {                                            \
        const uint32_t bnn_u_ = (a) ^ (b);          \
        (l) = bnn_u_ ^ (c);                         \
        (h) = (a) ^ (((a) ^ (c)) & bnn_u_);         \
    } while (0)

#if defined(__ARM_FEATURE_SIMD32) && defined(__GNUC__)
/*
 * DSP cores: a word of nibble counts s (each <= 15) is added to the accumulator as
 * usad8(s) + usad8(ror(s, 4)) = 17 x (sum of its nibbles): two `usada8` and one `ror`, no masks.
 * The accumulators hold 17 x the count; one multiply by the inverse of 17 (mod 2^32) ends a row.
 */
typedef struct {
    uint32_t one, four;
} bnn_csa7_acc_t;
BNN_ALWAYS_INLINE uint32_t bnn_csa7_fold(uint32_t acc, uint32_t s)
{
    return __usada8((s >> 4) | (s << 28), 0u, __usada8(s, 0u, acc));
}
#define BNN_CSA7_FOLD(acc, s) ((acc) = bnn_csa7_fold((acc), (s)))
BNN_ALWAYS_INLINE uint32_t bnn_csa7_total(bnn_csa7_acc_t c)
{
    return (c.one + (c.four << 2)) * 0xF0F0F0F1u; /* exact: the sum is a multiple of 17 */
}
#else
/* Other cores: nibble counts folded into byte counts (<= 24 per unit), one horizontal sum per row. */
typedef struct {
    uint32_t one, four;
} bnn_csa7_acc_t;
#define BNN_CSA7_FOLD(acc, s) ((acc) += bnn_nibbles_to_bytes((s), m))
BNN_ALWAYS_INLINE uint32_t bnn_csa7_total(bnn_csa7_acc_t c)
{
    return bnn_sum_bytes(c.one) + (bnn_sum_bytes(c.four) << 2);
}
#endif

/**
 * Row plan: `blocks` runs of 3 units (21 words; the weight-4 nibble counts, <= 4 per unit, are
 * folded once per block), then `units` (0..2) units of 7 words and `tail` (0..6) words. Byte
 * counts (cores without DSP) grow by <= 24 + 4 x 4 per unit: a block is at most 120 per byte, and
 * blocks are summed horizontally one by one.
 */
#define BNN_HAVE_ROW_PLAN 1
typedef struct {
    uint32_t blocks; /**< runs of 21 words */
    uint32_t units;  /**< units of 7 words after the blocks (0..2) */
    uint32_t tail;   /**< words after the units (0..6) */
} bnn_row_t;

BNN_ALWAYS_INLINE bnn_row_t bnn_row(uint32_t n_words)
{
    bnn_row_t r;
    r.blocks = n_words / 21u;
    n_words %= 21u;
    r.units = n_words / 7u;
    r.tail = n_words % 7u;
    return r;
}

#if defined(__thumb2__) && defined(__ARM_FEATURE_SIMD32) && defined(__GNUC__) && defined(__OPTIMIZE__)
/*
 * Thumb-2 with DSP: the unit as one block of assembly. Each operand's 7 words come in with two
 * `ldm` (4 + 3 registers), then 7 `eor`, 4 full adders (20), the nibble counts of l, t and f
 * (15), s = nl + 2 nt (1) and the two folds (6): 53 instructions for 224 binary MACs. The fixed
 * registers r4-r11 and ip hold the words (ldm needs ascending register lists).
 */
#define BNN_NIB_ASM(x, t)                                  \
    "and " t ", " x ", #0xAAAAAAAA\n\t"                    \
    "sub " x ", " x ", " t ", lsr #1\n\t"                  \
    "and " t ", " x ", #0xCCCCCCCC\n\t"                    \
    "and " x ", " x ", #0x33333333\n\t"                    \
    "add " x ", " x ", " t ", lsr #2\n\t"
/* full adder h:l = x + y + z, destroying y; t a scratch register: 5 instructions */
#define BNN_FA_ASM(x, y, z, t) /* x <- h, z <- l */          \
    "eor " y ", " y ", " x "\n\t"                          \
    "eor " t ", " x ", " z "\n\t"                          \
    "eor " z ", " y ", " z "\n\t"                          \
    "and " t ", " t ", " y "\n\t"                          \
    "eor " x ", " x ", " t "\n\t"

/** One unit of 7 words. The registers r4-r6, r8-r11 and ip hold the words (`ldm` needs
 *  ascending register lists); r7, the Thumb frame pointer, is left alone. */
BNN_ALWAYS_INLINE void bnn_csa7_unit(const uint32_t **ap, const uint32_t **wp, bnn_csa7_acc_t *acc)
{
    const uint32_t *a = *ap, *w = *wp;
    uint32_t one = acc->one, four = acc->four;
    uint32_t zero = 0u; /* an output operand too, so that no other operand shares its register */
    __asm__("ldmia %[a]!, {r4, r5, r6, r8}\n\t"
            "ldmia %[w]!, {r9, r10, r11, ip}\n\t"
            "eor r4, r4, r9\n\t"
            "eor r5, r5, r10\n\t"
            "eor r6, r6, r11\n\t"
            "eor r8, r8, ip\n\t"
            BNN_FA_ASM("r4", "r5", "r6", "r9")      /* r4 = h1, r6 = l1 */
            "ldmia %[a]!, {r5, r9, r10}\n\t"
            "ldmia %[w]!, {r11, ip}\n\t"
            "eor r5, r5, r11\n\t"
            "eor r9, r9, ip\n\t"
            "ldr r11, [%[w]], #4\n\t"
            "eor r10, r10, r11\n\t"
            BNN_FA_ASM("r8", "r5", "r9", "r11")     /* r8 = h2, r9 = l2 */
            BNN_FA_ASM("r6", "r9", "r10", "r11")    /* r6 = h3, r10 = l */
            BNN_FA_ASM("r4", "r8", "r6", "r11")     /* r4 = f, r6 = t */
            BNN_NIB_ASM("r10", "r11")
            BNN_NIB_ASM("r6", "r11")
            "add r10, r10, r6, lsl #1\n\t"
            "usada8 %[one], r10, %[z], %[one]\n\t"
            "ror r10, r10, #4\n\t"
            "usada8 %[one], r10, %[z], %[one]\n\t"
            BNN_NIB_ASM("r4", "r11")
            "usada8 %[four], r4, %[z], %[four]\n\t"
            "ror r4, r4, #4\n\t"
            "usada8 %[four], r4, %[z], %[four]"
            : [a] "+r"(a), [w] "+r"(w), [one] "+r"(one), [four] "+r"(four), [z] "+r"(zero)
            : "m"(*(const uint32_t(*)[7])a), "m"(*(const uint32_t(*)[7])w)
            : "r4", "r5", "r6", "r8", "r9", "r10", "r11", "ip");
    acc->one = one;
    acc->four = four;
    *ap = a;
    *wp = w;
}
#define BNN_CSA7_UNIT_FOLDS 1 /* the unit folds its weight-4 counts itself */
#else
/** One unit of 7 words: adds the weight-1/2 nibble counts to acc->one, returns the weight-4 ones. */
BNN_ALWAYS_INLINE uint32_t bnn_csa7_unit(const uint32_t **ap, const uint32_t **wp, bnn_csa7_acc_t *acc,
                                         bnn_masks_t m)
{
    const uint32_t *a = *ap, *w = *wp;
    uint32_t h1, l1, h2, l2, h3, l, t, f, s;
    BNN_FA(h1, l1, a[0] ^ w[0], a[1] ^ w[1], a[2] ^ w[2]);
    BNN_FA(h2, l2, a[3] ^ w[3], a[4] ^ w[4], a[5] ^ w[5]);
    BNN_FA(h3, l, l1, l2, a[6] ^ w[6]);
    BNN_FA(f, t, h1, h2, h3);
    s = bnn_nibbles(l, m) + (bnn_nibbles(t, m) << 1); /* <= 12 per nibble */
    BNN_CSA7_FOLD(acc->one, s);
    *ap = a + 7;
    *wp = w + 7;
    return bnn_nibbles(f, m);
}
#endif

/** The last 0..6 words of a row (tail is a compile-time constant under BNN_ROW_DISPATCH):
 *  groups of 3 words through one full adder, 1 or 2 words as nibble counts. */
BNN_ALWAYS_INLINE void bnn_csa7_tail(const uint32_t *a, const uint32_t *w, uint32_t tail,
                                     bnn_csa7_acc_t *acc, bnn_masks_t m)
{
    uint32_t h, l, s;
    if (tail >= 3u) {
        BNN_FA(h, l, a[0] ^ w[0], a[1] ^ w[1], a[2] ^ w[2]);
        s = bnn_nibbles(l, m) + (bnn_nibbles(h, m) << 1);
        BNN_CSA7_FOLD(acc->one, s);
        a += 3;
        w += 3;
        tail -= 3u;
    }
    if (tail == 3u) {
        BNN_FA(h, l, a[0] ^ w[0], a[1] ^ w[1], a[2] ^ w[2]);
        s = bnn_nibbles(l, m) + (bnn_nibbles(h, m) << 1);
        BNN_CSA7_FOLD(acc->one, s);
    } else if (tail != 0u) {
        s = bnn_nibbles(a[0] ^ w[0], m);
        if (tail == 2u) {
            s += bnn_nibbles(a[1] ^ w[1], m);
        }
        BNN_CSA7_FOLD(acc->one, s);
    }
}

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_next(const uint32_t *a, const uint32_t **wp, bnn_row_t r)
{
    const bnn_masks_t m = bnn_masks();
    const uint32_t *w = *wp;
    bnn_csa7_acc_t acc = {0u, 0u};
    uint32_t total = 0u;
#ifdef BNN_CSA7_UNIT_FOLDS
    uint32_t units = 3u * r.blocks + r.units;
    while (units != 0u) {
        bnn_csa7_unit(&a, &w, &acc);
        --units;
    }
#else
    uint32_t blocks = r.blocks, units = r.units, s4;
    while (blocks != 0u) {
        s4 = bnn_csa7_unit(&a, &w, &acc, m);
        s4 += bnn_csa7_unit(&a, &w, &acc, m);
        s4 += bnn_csa7_unit(&a, &w, &acc, m);
        BNN_CSA7_FOLD(acc.four, s4);
        total += bnn_csa7_total(acc);
        acc.one = 0u;
        acc.four = 0u;
        --blocks;
    }
    if (units != 0u) {
        s4 = bnn_csa7_unit(&a, &w, &acc, m);
        if (units == 2u) {
            s4 += bnn_csa7_unit(&a, &w, &acc, m);
        }
        BNN_CSA7_FOLD(acc.four, s4);
    }
#endif
    bnn_csa7_tail(a, w, r.tail, &acc, m);
    *wp = w + r.tail;
    return total + bnn_csa7_total(acc);
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
#define BNN_CSA7_TAIL(n) ((uint32_t)(n) % 7u)

/** Each tail length (0..6) the model's rows have gets its own copy of the layer loop (a
 *  compile-time constant; BNN_ROW_WORDS_<i>, bnn_popcount_common.h), other lengths the general one. */
#define BNN_CSA7_CASE(r, CALL, t, general) \
    BNN_ROW_CASE(BNN_CSA7_TAIL, t, CALL, general, (r).blocks, (r).units, t)
#define BNN_ROW_DISPATCH(r, CALL)                                              \
    do {                                                                       \
        int bnn_general_ = 0;                                                  \
        switch ((r).tail) {                                                    \
        case 0u: BNN_CSA7_CASE(r, CALL, 0u, bnn_general_);                     \
        case 1u: BNN_CSA7_CASE(r, CALL, 1u, bnn_general_);                     \
        case 2u: BNN_CSA7_CASE(r, CALL, 2u, bnn_general_);                     \
        case 3u: BNN_CSA7_CASE(r, CALL, 3u, bnn_general_);                     \
        case 4u: BNN_CSA7_CASE(r, CALL, 4u, bnn_general_);                     \
        case 5u: BNN_CSA7_CASE(r, CALL, 5u, bnn_general_);                     \
        default: BNN_CSA7_CASE(r, CALL, 6u, bnn_general_);                     \
        }                                                                      \
        if (bnn_general_) {                                                    \
            CALL(r);                                                           \
        }                                                                      \
    } while (0)

#endif /* BNN_POPCOUNT_CSA7_H */
