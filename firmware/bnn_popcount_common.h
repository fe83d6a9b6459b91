/**
 * @file bnn_popcount_common.h
 * @brief Building blocks shared by the popcount kernels: SWAR masks held in registers, nibble
 *        and byte counts, the horizontal byte sum (`usad8` on cores with the DSP extension).
 */
#ifndef BNN_POPCOUNT_COMMON_H
#define BNN_POPCOUNT_COMMON_H

#include <stdint.h>
#if defined(__ARM_FEATURE_SIMD32) && defined(__GNUC__)
#include <arm_acle.h>
#endif

#if defined(__GNUC__)
#define BNN_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define BNN_ALWAYS_INLINE static inline
#endif

/** SWAR masks: 2-bit fields, nibbles, bytes, 16-bit halves. */
#define BNN_M1 0x55555555u
#define BNN_M2 0x33333333u
#define BNN_M4 0x0F0F0F0Fu
#define BNN_M8 0x00FF00FFu

/**
 * @brief Number of set bits of a 32-bit word, branch-free, without library calls.
 * @param x the word
 * @return popcount(x) in 0..32
 */
static inline uint32_t bnn_popcount32_swar(uint32_t x)
{
    x = x - ((x >> 1) & BNN_M1);
    x = (x & BNN_M2) + ((x >> 2) & BNN_M2);
    x = (x + (x >> 4)) & BNN_M4;
    return (x * 0x01010101u) >> 24;
}

/**
 * Keep a constant in a register: GCC otherwise re-materialises SWAR masks as immediates, which
 * Thumb-2 cannot combine with a shifted operand (`and rd, m, x, lsr #1` needs m in a register)
 * and Thumb-1 reloads from a literal pool. Harmless elsewhere; a no-op for other compilers.
 */
#if defined(__GNUC__)
#define BNN_IN_REGISTER(v) __asm__("" : "+r"(v))
#else
#define BNN_IN_REGISTER(v) ((void)0)
#endif

/** SWAR masks held in registers by the kernels that use them. */
typedef struct {
    uint32_t m1, m2, m4;
} bnn_masks_t;

#if defined(__thumb2__)
/*
 * Thumb-2 encodes 0x55555555-style masks as immediates but cannot combine an immediate with a
 * shifted operand. Masking before shifting, `(x & 0xAAAAAAAA) >> 1` instead of
 * `(x >> 1) & 0x55555555`, gives `and t, x, #imm` + `sub x, x, t, lsr #1`: the same two
 * instructions as with a mask register, and no register is tied up by the masks.
 */
BNN_ALWAYS_INLINE bnn_masks_t bnn_masks(void)
{
    bnn_masks_t m = {0u, 0u, 0u};
    return m;
}

/** Eight nibble counts (each 0..4) of @p x: the first two SWAR steps. */
BNN_ALWAYS_INLINE uint32_t bnn_nibbles(uint32_t x, bnn_masks_t m)
{
    uint32_t t = x & 0xAAAAAAAAu;
    (void)m;
    BNN_IN_REGISTER(t); /* keeps GCC from folding it back to (x >> 1) & 0x55555555 */
    x = x - (t >> 1);
    t = x & 0xCCCCCCCCu;
    BNN_IN_REGISTER(t);
    x = (x & BNN_M2) + (t >> 2);
    BNN_IN_REGISTER(x); /* and from re-associating the sum of three words (a wasted shift) */
    return x;
}

/** Four byte sums of pairs of nibbles (nibbles up to 15 give bytes up to 30). */
BNN_ALWAYS_INLINE uint32_t bnn_nibbles_to_bytes(uint32_t s, bnn_masks_t m)
{
    uint32_t t = s & 0xF0F0F0F0u;
    (void)m;
    BNN_IN_REGISTER(t);
    return (s & BNN_M4) + (t >> 4);
}
#else
BNN_ALWAYS_INLINE bnn_masks_t bnn_masks(void)
{
    bnn_masks_t m;
    m.m1 = BNN_M1;
    m.m2 = BNN_M2;
    m.m4 = BNN_M4;
    BNN_IN_REGISTER(m.m1);
    BNN_IN_REGISTER(m.m2);
    BNN_IN_REGISTER(m.m4);
    return m;
}

/** Eight nibble counts (each 0..4) of @p x: the first two SWAR steps. */
BNN_ALWAYS_INLINE uint32_t bnn_nibbles(uint32_t x, bnn_masks_t m)
{
    x = x - ((x >> 1) & m.m1);
    return (x & m.m2) + ((x >> 2) & m.m2);
}

/** Four byte sums of pairs of nibbles (nibbles up to 15 give bytes up to 30). */
BNN_ALWAYS_INLINE uint32_t bnn_nibbles_to_bytes(uint32_t s, bnn_masks_t m)
{
    return (s & m.m4) + ((s >> 4) & m.m4);
}
#endif

/** Sum of the four bytes of @p b (any byte values: the total may exceed 255). */
BNN_ALWAYS_INLINE uint32_t bnn_sum_bytes(uint32_t b)
{
#if defined(__ARM_FEATURE_SIMD32) && defined(__GNUC__)
    return __usad8(b, 0u); /* Cortex-M4/M7/M33 DSP: sum of absolute byte differences */
#else
    b = (b & BNN_M8) + ((b >> 8) & BNN_M8);
    return (b + (b >> 16)) & 0xFFFFu;
#endif
}

/*
 * Row lengths of the model's dense hidden layers, in 32-bit words, when the build names them
 * (-DBNN_ROW_WORDS_0=21u -DBNN_ROW_WORDS_1=13u, up to four; bnnembed's PlatformIO projects and
 * QEMU builds pass them, from bnnembed.render.c.row_word_defines). A kernel that keeps one copy
 * of the layer loop per row shape (BNN_ROW_DISPATCH) then compiles only the shapes of those
 * lengths, plus one general copy for any other length: a wrong or missing list costs flash or
 * speed, never a wrong count. Not named: a copy for every shape.
 */
#ifdef BNN_ROW_WORDS_0
#ifndef BNN_ROW_WORDS_1
#define BNN_ROW_WORDS_1 BNN_ROW_WORDS_0
#endif
#ifndef BNN_ROW_WORDS_2
#define BNN_ROW_WORDS_2 BNN_ROW_WORDS_0
#endif
#ifndef BNN_ROW_WORDS_3
#define BNN_ROW_WORDS_3 BNN_ROW_WORDS_0
#endif
/** Does a row of the model have shape @p t, TAIL_OF(n_words) being the kernel's shape of a row
 *  of n_words words? (a compile-time constant) */
#define BNN_ROW_SHAPE_USED(TAIL_OF, t)                                                   \
    (TAIL_OF(BNN_ROW_WORDS_0) == (t) || TAIL_OF(BNN_ROW_WORDS_1) == (t) ||              \
     TAIL_OF(BNN_ROW_WORDS_2) == (t) || TAIL_OF(BNN_ROW_WORDS_3) == (t))
#else
#define BNN_ROW_SHAPE_USED(TAIL_OF, t) 1
#endif

/** One case of a BNN_ROW_DISPATCH: a copy of the loop with the row plan (the initialiser
 *  fields after @p general, its shape @p t a constant) when the model has rows of that shape,
 *  else the general copy (@p general set for after the switch). */
#define BNN_ROW_CASE(TAIL_OF, t, CALL, general, ...)                                    \
    if (BNN_ROW_SHAPE_USED(TAIL_OF, t)) {                                               \
        const bnn_row_t bnn_r_ = {__VA_ARGS__};                                         \
        CALL(bnn_r_);                                                                   \
    } else {                                                                            \
        (general) = 1;                                                                  \
    }                                                                                   \
    break

#endif /* BNN_POPCOUNT_COMMON_H */
