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
 * board file as a build flag, e.g. `-DBNN_POPCOUNT_STRATEGY=1`). Every strategy provides the
 * same entry point, bnn_xor_popcount(); bnn_xor_popcount_ref() is always compiled so tests can
 * check an optimized kernel against the reference.
 *
 * Adding a kernel: give it a new number below, implement it in bnn_kernels.c under
 * `#elif BNN_POPCOUNT_STRATEGY == BNN_POPCOUNT_<NAME>` (same signature, same result as the
 * reference for every input), and name it in the boards that should use it.
 */
#ifndef BNN_POPCOUNT_H
#define BNN_POPCOUNT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Reference kernel: SWAR popcount per word (shifts, masks and one multiply). */
#define BNN_POPCOUNT_SWAR 1
/** Compiler builtin: only for cores with a popcount instruction (else it calls libgcc). */
#define BNN_POPCOUNT_BUILTIN 2

#ifndef BNN_POPCOUNT_STRATEGY
#define BNN_POPCOUNT_STRATEGY BNN_POPCOUNT_SWAR
#endif

/**
 * @brief Number of set bits of a 32-bit word, branch-free, without library calls.
 * @param x the word
 * @return popcount(x) in 0..32
 */
static inline uint32_t bnn_popcount32_swar(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
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

#ifdef __cplusplus
}
#endif

#endif /* BNN_POPCOUNT_H */
