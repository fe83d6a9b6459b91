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

#include "bnn_test_counter.h" /* firmware/test: the QEMU drivers' instruction counter */

#if !BNN_HAVE_COUNTER
#error "dense_main.c: a core with an instruction counter (Cortex-M, RISC-V, Xtensa) only"
#endif

static float row_buf[DENSE_N_IN];

int main(void)
{
    uint32_t header[2];
    uint32_t row, t0, t1;
    FILE *in = fopen("bnn_rows.bin", "rb");
    if (in == NULL || fread(header, sizeof header, 1, in) != 1 || header[1] != 4u) {
        printf("BNN-TEST-ERROR bad input\n");
        return 3;
    }
    test_print_calibration();
    for (row = 0; row < header[0]; ++row) {
        int pred;
        if (fread(row_buf, sizeof row_buf, 1, in) != 1) {
            printf("BNN-TEST-ERROR short read\n");
            return 5;
        }
        t0 = test_counter();
        pred = dense_predict(row_buf);
        t1 = test_counter();
        printf("R %lu %d 0 0 0 %lu\n", (unsigned long)row, pred, (unsigned long)test_elapsed(t0, t1));
    }
    fclose(in);
    printf("BNN-TEST-DONE rows=%lu\n", (unsigned long)header[0]);
    return 0;
}
