/**
 * @file bnn_test_counter.h
 * @brief The instruction counter of the QEMU drivers: SysTick on Cortex-M (it advances with
 *        instructions under -icount), `instret` on RISC-V, `ccount` on Xtensa, none elsewhere.
 *
 * A driver prints one calibration line, "C <ticks> <instructions> <empty ticks> <have counter>",
 * from test_calibration_loop() (2 instructions per iteration), so the host converts ticks into
 * instructions (bnnembed/device/qemu.py).
 */
#ifndef BNN_TEST_COUNTER_H
#define BNN_TEST_COUNTER_H

#include <stdint.h>
#include <stdio.h>

#if defined(__ARM_ARCH) && defined(__ARM_ARCH_PROFILE) && (__ARM_ARCH_PROFILE == 'M')
/* Cortex-M: SysTick at the core clock; under QEMU -icount it advances with instructions. */
#define BNN_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define BNN_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define BNN_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define BNN_COUNTER_MASK 0x00FFFFFFu
static void test_counter_start(void)
{
    BNN_SYST_RVR = BNN_COUNTER_MASK;
    BNN_SYST_CVR = 0u;
    BNN_SYST_CSR = 5u; /* enable, processor clock, no interrupt */
    (void)BNN_SYST_CVR; /* dummy read */
}
/* SysTick counts down: negate so that later reads are larger */
static uint32_t test_counter(void) { return (0u - BNN_SYST_CVR) & BNN_COUNTER_MASK; }
static void test_calibration_loop(uint32_t n)
{
    __asm__ volatile(".syntax unified\n1: subs %0, %0, #1\n bne 1b" : "+l"(n) : : "cc");
}
#define BNN_HAVE_COUNTER 1
#elif defined(__riscv)
#define BNN_COUNTER_MASK 0xFFFFFFFFu
static void test_counter_start(void) {}
static uint32_t test_counter(void)
{
    uint32_t v;
    __asm__ volatile("rdinstret %0" : "=r"(v));
    return v;
}
static void test_calibration_loop(uint32_t n)
{
    __asm__ volatile("1: addi %0, %0, -1\n bnez %0, 1b" : "+r"(n));
}
#define BNN_HAVE_COUNTER 1
#elif defined(__XTENSA__)
#define BNN_COUNTER_MASK 0xFFFFFFFFu
static void test_counter_start(void) {}
static uint32_t test_counter(void)
{
    uint32_t v;
    __asm__ volatile("rsr.ccount %0" : "=a"(v));
    return v;
}
static void test_calibration_loop(uint32_t n)
{
    __asm__ volatile("1: addi %0, %0, -1\n bnez %0, 1b" : "+a"(n));
}
#define BNN_HAVE_COUNTER 1
#else
#define BNN_COUNTER_MASK 0xFFFFFFFFu
static void test_counter_start(void) {}
static uint32_t test_counter(void) { return 0u; }
static void test_calibration_loop(uint32_t n) { (void)n; }
#define BNN_HAVE_COUNTER 0
#endif

/** Instructions of the calibration loop: 2 per iteration (decrement, branch). */
#define BNN_CALIBRATION_ITERATIONS 100000u

static uint32_t test_elapsed(uint32_t from, uint32_t to) { return (to - from) & BNN_COUNTER_MASK; }

/** Start the counter and print the calibration line "C <ticks> <instructions> <empty> <have>". */
static void test_print_calibration(void)
{
    uint32_t t0, t1, t2;
    test_counter_start();
    t0 = test_counter();
    test_calibration_loop(BNN_CALIBRATION_ITERATIONS);
    t1 = test_counter();
    t2 = test_counter();
    printf("C %lu %lu %lu %d\n", (unsigned long)test_elapsed(t0, t1),
           (unsigned long)(2u * BNN_CALIBRATION_ITERATIONS), (unsigned long)test_elapsed(t1, t2),
           BNN_HAVE_COUNTER);
}

#endif /* BNN_TEST_COUNTER_H */
