/**
 * @file bnn_test_main.c
 * @brief Test driver: decide every row of a file and print decisions, scores and counters.
 *
 * Built by `bnnembed qemu` (and by the host-gcc tests) around the generated model. Reads
 * `bnn_rows.bin` from the working directory (semihosting under QEMU, stdio on a host):
 * a header of two little-endian uint32 (rows, bytes per value: 4 = float32, 2 = int16, 1 = uint8
 * when compiled with -DBNN_TEST_INPUT_UINT8, decided through bnn_encode_u8() whatever the encoding)
 * followed by rows of BNN_N_FEATURES values. For each row it prints
 *
 *     R <row> <decision> <upper score> <lower score> <encode count> <bounds count>
 *
 * where the counts are the target's instruction counter (see test_counter()) around the
 * encoder and around both bounds. A float row with a NaN or an infinity is decided as bnn_decide()
 * decides it: BNN_INVALID, scores BNN_SCORE_NONE, without encoding or running the bounds (the
 * finiteness check is counted with the encoder). A model with shifted copies (BNN_N_COPIES > 1)
 * encodes each moved image inside the decision: its rows go through bnn_decide(),
 * bnn_decide_q16() or bnn_decide_u8() whole, counted as the bounds' part (encode count 0). It then prints `C <calibration count> <loop instructions>`
 * and ends with the sentinel line `BNN-TEST-DONE rows=<n>`, which the runner requires.
 */
#include <stdint.h>
#include <stdio.h>

#include "bnn.h"
#include "bnn_model.h"

#include "bnn_test_counter.h"

#if defined(BNN_TEST_INPUT_UINT8)
typedef uint8_t test_value_t;
#define BNN_VALUE_BYTES 1u
#elif defined(BNN_ENCODING_FLOAT)
typedef float test_value_t;
#define BNN_VALUE_BYTES 4u
#else
typedef int16_t test_value_t;
#define BNN_VALUE_BYTES 2u
#endif

static test_value_t test_row[BNN_N_FEATURES];
static uint32_t test_bits[BNN_INPUT_WORDS];

int main(void)
{
    uint32_t header[2];
    uint32_t row;
    uint32_t t0, t1, t2;
    FILE *in = fopen("bnn_rows.bin", "rb");
    if (in == NULL) {
        printf("BNN-TEST-ERROR cannot open bnn_rows.bin\n");
        return 3;
    }
    if (fread(header, sizeof header, 1, in) != 1 || header[1] != BNN_VALUE_BYTES) {
        printf("BNN-TEST-ERROR bad header (value size %lu, expected %lu)\n",
               (unsigned long)header[1], (unsigned long)BNN_VALUE_BYTES);
        return 4;
    }
    test_print_calibration();
    for (row = 0; row < header[0]; ++row) {
        bnn_scores_t scores;
        bnn_decision_t decision = BNN_INVALID;
        int finite = 1;
        if (fread(test_row, sizeof test_row, 1, in) != 1) {
            printf("BNN-TEST-ERROR short read at row %lu\n", (unsigned long)row);
            return 5;
        }
        t0 = test_counter();
#if BNN_N_COPIES > 1
        t1 = t0;
#if defined(BNN_TEST_INPUT_UINT8)
        decision = bnn_decide_u8(&bnn_model, test_row, &scores);
#elif defined(BNN_ENCODING_FLOAT)
        decision = bnn_decide(&bnn_model, test_row, &scores);
#else
        decision = bnn_decide_q16(&bnn_model, test_row, &scores);
#endif
        (void)finite;
        (void)test_bits;
#else
#if defined(BNN_TEST_INPUT_UINT8)
        bnn_encode_u8(bnn_model.encoder, test_row, test_bits); /* a byte is always a number */
#elif defined(BNN_ENCODING_FLOAT)
        finite = bnn_features_finite(bnn_model.encoder, test_row);
        if (finite) {
            bnn_encode(bnn_model.encoder, test_row, test_bits);
        }
#else
        bnn_encode_q16(bnn_model.encoder, test_row, test_bits); /* an int16 is always a number */
#endif
        t1 = test_counter();
        if (finite) {
            decision = bnn_decide_bits(&bnn_model, test_bits, &scores);
        } else {
            scores.upper = BNN_SCORE_NONE;
            scores.lower = BNN_SCORE_NONE;
        }
#endif
        t2 = test_counter();
        printf("R %lu %d %ld %ld %lu %lu\n", (unsigned long)row, (int)decision, (long)scores.upper,
               (long)scores.lower, (unsigned long)test_elapsed(t0, t1),
               (unsigned long)test_elapsed(t1, t2));
    }
    fclose(in);
    printf("BNN-TEST-DONE rows=%lu\n", (unsigned long)header[0]);
    return 0;
}
