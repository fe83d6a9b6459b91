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
 * This header is the dispatcher: the kernel is chosen at compile time with
 * `BNN_POPCOUNT_STRATEGY` (normally set by the board file as a build flag, e.g.
 * `-DBNN_POPCOUNT_STRATEGY=3`) and lives in its own header, bnn_popcount_<name>.h. Every strategy provides the
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
 * |       |         | build it; the core must implement Zbb); rows unrolled, two rows per    |
 * |       |         | pass sharing each input word                                           |
 * | 7     | CSA7    | 4 carry-save adders per 7 words, nibble counts of the three results,   |
 * |       |         | `usada8` byte sums; one asm block per unit with `ldm` on Thumb-2 DSP   |
 * | 8     | CSA15   | 11 carry-save adders per 15 words (weights 1, 2, 4, 8), then a 7-word  |
 * |       |         | unit and 0..7 tail words; nibble counts, one byte reduction per unit   |
 * | 9     | COLUMNS | hidden layers stored by columns: 32 neurons per word, bit-sliced       |
 * |       |         | counters over the input's minority bits (Harley–Seal over 16 columns); |
 * |       |         | rows (output neuron, masked layers) by SWAR3                           |
 *
 * A kernel may also define BNN_HAVE_ROW_PAIR and bnn_xor_popcount_pair(): the layer loop then
 * counts two neurons per pass (register blocking), and bnn_xor_popcount_next() for an odd last one.
 * Adding a kernel: add a member to `PopcountStrategy` in bnnembed/render/c.py and regenerate
 * bnn_codes.h (`python -m bnnembed.render.codes --write`), write bnn_popcount_<name>.h with a
 * bnn_xor_popcount_inline() that gives the reference's result for every input, include it below
 * and list it in RUNTIME_FILES (bnnembed/render/c.py). The QEMU tests run every member through
 * the bit-exactness check; name it in the boards that should use it.
 */
#ifndef BNN_POPCOUNT_H
#define BNN_POPCOUNT_H

#include <stdint.h>

#include "bnn_codes.h"
#include "bnn_popcount_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef BNN_POPCOUNT_STRATEGY
#define BNN_POPCOUNT_STRATEGY BNN_POPCOUNT_SWAR
#endif

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
#include "bnn_popcount_swar.h"
#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_BUILTIN
#include "bnn_popcount_builtin.h"
#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_SWAR3
#include "bnn_popcount_swar3.h"
#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_CSA
#include "bnn_popcount_csa.h"
#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_TABLE
#include "bnn_popcount_table.h"
#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_ZBB
#include "bnn_popcount_zbb.h"
#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_CSA7
#include "bnn_popcount_csa7.h"
#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_CSA15
#include "bnn_popcount_csa15.h"
#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_COLUMNS
#include "bnn_popcount_columns.h"
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
