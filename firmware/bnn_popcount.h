/**
 * @file bnn_popcount.h
 * @brief Population-count kernels for the XNOR-popcount hot loop.
 *
 * A binary layer spends nearly all its time in one kernel: the number of differing bits
 * between the packed input and a packed weight row, `popcount(a XOR w)` summed over the
 * row's 32-bit words. `__builtin_popcount` compiles to a call to libgcc's `__popcountsi2` on
 * every Cortex-M core and on rv32imc, so the reference kernel uses a branch-free SWAR
 * popcount instead.
 *
 * The kernel is chosen at compile time with `BNN_POPCOUNT_STRATEGY` (normally set by the
 * board file as a build flag, e.g. `-DBNN_POPCOUNT_STRATEGY=3`). Every strategy provides the
 * same entry point, bnn_xor_popcount(), and the same function inlined into the layer loop,
 * bnn_xor_popcount_inline(); bnn_xor_popcount_ref() is always compiled so tests can check an
 * optimized kernel against the reference. The kernels (see docs/firmware.md, "Kernels"):
 *
 * | value | name    | per 32-bit word                                                        |
 * |-------|---------|------------------------------------------------------------------------|
 * | 1     | SWAR    | reference: full SWAR popcount (shifts, masks, one multiply)            |
 * | 2     | BUILTIN | `__builtin_popcount` (only for cores with a popcount instruction)      |
 * | 3     | SWAR3   | SWAR to nibble counts, 3 words summed per nibble, bytes accumulated   |
 * |       |         | across the row, one horizontal sum per row                             |
 * | 4     | CSA     | Harley–Seal: carry-save adders over 4 words, SWAR only on the carries  |
 * | 5     | TABLE   | 256-entry byte table in flash (4 lookups per word)                     |
 * | 6     | ZBB     | RISC-V Zbb `cpop` (emitted as a raw `.insn`, so rv32imc tool chains    |
 * |       |         | build it; the core must implement Zbb)                                 |
 *
 * Adding a kernel: give it a new number below, implement bnn_xor_popcount_inline() for it
 * under `#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_<NAME>` (same result as the reference for
 * every input), add it to `PopcountStrategy` in bnnembed/codegen.py (the QEMU tests run every
 * member through the bit-exactness check) and name it in the boards that should use it.
 */
#ifndef BNN_POPCOUNT_H
#define BNN_POPCOUNT_H

#include <stdint.h>
#if defined(__ARM_FEATURE_SIMD32) && defined(__GNUC__)
#include <arm_acle.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Reference kernel: SWAR popcount per word (shifts, masks and one multiply). */
#define BNN_POPCOUNT_SWAR 1
/** Compiler builtin: only for cores with a popcount instruction (else it calls libgcc). */
#define BNN_POPCOUNT_BUILTIN 2
/** SWAR with deferred reduction: nibble counts of 3 words summed, bytes accumulated per row. */
#define BNN_POPCOUNT_SWAR3 3
/** Harley–Seal carry-save accumulation over groups of 4 words. */
#define BNN_POPCOUNT_CSA 4
/** Byte lookup table (256 bytes of flash). */
#define BNN_POPCOUNT_TABLE 5
/** RISC-V Zbb `cpop` instruction. */
#define BNN_POPCOUNT_ZBB 6

#ifndef BNN_POPCOUNT_STRATEGY
#define BNN_POPCOUNT_STRATEGY BNN_POPCOUNT_SWAR
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

/**
 * @brief Reference kernel: sum over @p n_words of popcount(a[i] XOR w[i]).
 * @param a packed input bits
 * @param w packed weight row (same length, padding bits 0 in both)
 * @param n_words number of 32-bit words
 * @return number of differing bits (the neuron's mismatch count)
 */
uint32_t bnn_xor_popcount_ref(const uint32_t *a, const uint32_t *w, uint32_t n_words);

/**
 * @brief The kernel selected by BNN_POPCOUNT_STRATEGY; same contract as bnn_xor_popcount_ref().
 */
uint32_t bnn_xor_popcount(const uint32_t *a, const uint32_t *w, uint32_t n_words);

#if BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_SWAR

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    uint32_t acc = 0;
    uint32_t i;
    for (i = 0; i < n_words; ++i) {
        acc += bnn_popcount32_swar(a[i] ^ w[i]);
    }
    return acc;
}

#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_BUILTIN

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

#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_SWAR3

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

#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_CSA

/** Carry-save adder: h:l = a + b + c bitwise (h the carries, l the sums). */
#define BNN_CSA(h, l, a, b, c)                  \
    do {                                        \
        const uint32_t bnn_u_ = (a) ^ (b);      \
        (h) = ((a) & (b)) | (bnn_u_ & (c));     \
        (l) = bnn_u_ ^ (c);                     \
    } while (0)

/*
 * Harley–Seal: `ones` and `twos` hold the bitwise running count mod 4; every group of 4 words
 * costs 3 CSAs and produces one `fours` word, whose nibble counts are accumulated as bytes
 * (<= 8 per group: 31 groups per block). The remaining ones, twos and 0..3 tail words are
 * counted with SWAR at the end of the row.
 */
BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    const bnn_masks_t m = bnn_masks();
    uint32_t ones = 0u, twos = 0u, total = 0u, tail;
    uint32_t groups = n_words >> 2;
    n_words &= 3u;
    while (groups != 0u) {
        uint32_t bytes = 0u;
        uint32_t block = groups > 31u ? 31u : groups;
        groups -= block;
        do {
            uint32_t twos_a, twos_b, fours;
            const uint32_t x0 = a[0] ^ w[0], x1 = a[1] ^ w[1];
            const uint32_t x2 = a[2] ^ w[2], x3 = a[3] ^ w[3];
            BNN_CSA(twos_a, ones, ones, x0, x1);
            BNN_CSA(twos_b, ones, ones, x2, x3);
            BNN_CSA(fours, twos, twos, twos_a, twos_b);
            bytes += bnn_nibbles_to_bytes(bnn_nibbles(fours, m), m);
            a += 4;
            w += 4;
        } while (--block != 0u);
        total += bnn_sum_bytes(bytes);
    }
    /* total counts the fours; add twos (x2), ones and the tail words, all as nibbles <= 15 */
    tail = bnn_nibbles(twos, m);
    tail = tail + tail + bnn_nibbles(ones, m);
    total <<= 2;
    while (n_words-- != 0u) {
        total += bnn_popcount32_swar(*a++ ^ *w++);
    }
    return total + bnn_sum_bytes(bnn_nibbles_to_bytes(tail, m));
}

#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_TABLE

/** popcount of every byte value (256 bytes, const: in flash). */
extern const uint8_t bnn_popcount_table8[256];

BNN_ALWAYS_INLINE uint32_t bnn_xor_popcount_inline(const uint32_t *a, const uint32_t *w,
                                                   uint32_t n_words)
{
    const uint8_t *t = bnn_popcount_table8;
    uint32_t acc = 0;
    uint32_t i;
    for (i = 0; i < n_words; ++i) {
        const uint32_t x = a[i] ^ w[i];
        acc += (uint32_t)t[x & 0xFFu] + t[(x >> 8) & 0xFFu] + t[(x >> 16) & 0xFFu] + t[x >> 24];
    }
    return acc;
}

#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_ZBB

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

#else
#error "unknown BNN_POPCOUNT_STRATEGY (see bnn_popcount.h for the available kernels)"
#endif

#ifndef BNN_HAVE_ROW_PLAN
/** Kernels without a row plan: the plan is the row length. */
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

/** Kernels without shape-specialised loops: one call with the plan. */
#define BNN_ROW_DISPATCH(r, CALL) CALL(r)
#endif

#ifdef __cplusplus
}
#endif

#endif /* BNN_POPCOUNT_H */
