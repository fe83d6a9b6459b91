/**
 * @file dense_main.c
 * @brief Benchmark driver for the DNN on the device (emlearn float C, or the int8 reference).
 *
 * Same protocol as firmware/test/bnn_test_main.c, so bnnembed.qemu parses it: reads
 * `bnn_rows.bin` (float32 rows) through semihosting and prints, per row,
 * `R <row> <decision> 0 0 0 <count>` where count is the instruction counter around
 * dense_predict(), then `C ...` (calibration) and the sentinel `BNN-TEST-DONE rows=<n>`.
 */
#include <stdint.h>
#include <stdio.h>

#include "dense_model.h"

#if defined(__ARM_ARCH) && defined(__ARM_ARCH_PROFILE) && (__ARM_ARCH_PROFILE == 'M')
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define COUNTER_MASK 0x00FFFFFFu
static void counter_start(void)
{
    SYST_RVR = COUNTER_MASK;
    SYST_CVR = 0u;
    SYST_CSR = 5u;
    (void)SYST_CVR;
}
static uint32_t counter(void) { return (0u - SYST_CVR) & COUNTER_MASK; }
static void calibration_loop(uint32_t n)
{
    __asm__ volatile(".syntax unified\n1: subs %0, %0, #1\n bne 1b" : "+l"(n) : : "cc");
}
#elif defined(__riscv)
#define COUNTER_MASK 0xFFFFFFFFu
static void counter_start(void) {}
static uint32_t counter(void)
{
    uint32_t v;
    __asm__ volatile("rdinstret %0" : "=r"(v));
    return v;
}
static void calibration_loop(uint32_t n) { __asm__ volatile("1: addi %0, %0, -1\n bnez %0, 1b" : "+r"(n)); }
#else
#error "dense_main.c: Cortex-M or RISC-V only"
#endif

#define CALIBRATION_ITERATIONS 100000u

static float row_buf[DENSE_N_IN];

static uint32_t elapsed(uint32_t from, uint32_t to) { return (to - from) & COUNTER_MASK; }

int main(void)
{
    uint32_t header[2];
    uint32_t row, t0, t1, t2;
    FILE *in = fopen("bnn_rows.bin", "rb");
    if (in == NULL || fread(header, sizeof header, 1, in) != 1 || header[1] != 4u) {
        printf("BNN-TEST-ERROR bad input\n");
        return 3;
    }
    counter_start();
    t0 = counter();
    calibration_loop(CALIBRATION_ITERATIONS);
    t1 = counter();
    t2 = counter();
    printf("C %lu %lu %lu 1\n", (unsigned long)elapsed(t0, t1),
           (unsigned long)(2u * CALIBRATION_ITERATIONS), (unsigned long)elapsed(t1, t2));
    for (row = 0; row < header[0]; ++row) {
        int pred;
        if (fread(row_buf, sizeof row_buf, 1, in) != 1) {
            printf("BNN-TEST-ERROR short read\n");
            return 5;
        }
        t0 = counter();
        pred = dense_predict(row_buf);
        t1 = counter();
        printf("R %lu %d 0 0 0 %lu\n", (unsigned long)row, pred, (unsigned long)elapsed(t0, t1));
    }
    fclose(in);
    printf("BNN-TEST-DONE rows=%lu\n", (unsigned long)header[0]);
    return 0;
}
