/**
 * @file bnn_defer_frame_main.c
 * @brief QEMU driver: the instructions to build one DEFER frame (the link's
 *        bnn_proto_build_request_frame(): payload at its narrowest width, CRC-32, COBS, delimiters,
 *        into the transmit buffer) for every row of bnn_rows.bin: float32 rows, or with
 *        -DBNN_TEST_INPUT_UINT8 uint8 rows through bnn_proto_build_request_frame_u8(), placed
 *        BNN_TEST_ROW_OFFSET (0..3) bytes past a word boundary.
 *
 * Compiled with -DBNN_N_FEATURES=<n> beside bnn_protocol.c by bnnembed/device/qemu.py
 * (defer_frames). Prints the counter's calibration line "C ...", one line
 * "D <row> <ticks> <frame bytes> <payload CRC>" per row, then "BNN-TEST-DONE rows=<n>". UART
 * time is not included: the frame is built in RAM, as the link does before it sends it.
 */
#include <stdint.h>
#include <stdio.h>

#include "bnn_io.h"
#include "bnn_protocol.h"
#include "bnn_test_counter.h"

#ifndef BNN_N_FEATURES
#error "compile with -DBNN_N_FEATURES=<features per row>"
#endif

#ifdef BNN_TEST_INPUT_UINT8
typedef uint8_t test_value_t;
#ifndef BNN_TEST_ROW_OFFSET
#define BNN_TEST_ROW_OFFSET 0 /* bytes past a word boundary where the row sits (0..3) */
#endif
static uint32_t test_row_store[(BNN_N_FEATURES + 3 + 3) / 4];
#define test_row ((uint8_t *)test_row_store + BNN_TEST_ROW_OFFSET)
#else
typedef float test_value_t;
static test_value_t test_row[BNN_N_FEATURES];
#endif
static uint8_t test_frame[BNN_PROTO_FRAME_SIZE(BNN_N_FEATURES)];

/* the link's port functions: this driver never sends, it only builds frames */
void bnn_io_init(void) {}
void bnn_io_putc(uint8_t c) { (void)c; }
int bnn_io_getc(uint32_t timeout_ms)
{
    (void)timeout_ms;
    return -1;
}
uint32_t bnn_io_millis(void) { return 0u; }

int main(void)
{
    uint32_t header[2];
    uint32_t row;
    uint32_t t0, t1;
    FILE *in = fopen("bnn_rows.bin", "rb");
    if (in == NULL) {
        printf("BNN-TEST-ERROR cannot open bnn_rows.bin\n");
        return 3;
    }
    if (fread(header, sizeof header, 1, in) != 1 || header[1] != sizeof(test_value_t)) {
        printf("BNN-TEST-ERROR bad header (value size %lu expected)\n", (unsigned long)sizeof(test_value_t));
        return 4;
    }
    test_print_calibration();
    for (row = 0; row < header[0]; ++row) {
        size_t m;
        uint32_t crc;
        if (fread(test_row, sizeof(test_value_t) * BNN_N_FEATURES, 1, in) != 1) {
            printf("BNN-TEST-ERROR short read at row %lu\n", (unsigned long)row);
            return 5;
        }
        t0 = test_counter();
#ifdef BNN_TEST_INPUT_UINT8
        m = bnn_proto_build_request_frame_u8(test_frame, sizeof test_frame, BNN_MSG_DEFER, 1u, row + 1u,
                                             0x12345678u, 0u, test_row, (uint16_t)BNN_N_FEATURES, &crc);
#else
        m = bnn_proto_build_request_frame(test_frame, sizeof test_frame, BNN_MSG_DEFER, 1u, row + 1u,
                                          0x12345678u, 0u, test_row, (uint16_t)BNN_N_FEATURES, &crc);
#endif
        t1 = test_counter();
        if (m == 0u) {
            printf("BNN-TEST-ERROR frame not built at row %lu\n", (unsigned long)row);
            return 6;
        }
        printf("D %lu %lu %lu %lu\n", (unsigned long)row, (unsigned long)test_elapsed(t0, t1), (unsigned long)m,
               (unsigned long)crc);
    }
    fclose(in);
    printf("BNN-TEST-DONE rows=%lu\n", (unsigned long)header[0]);
    return 0;
}
