/*
 * Host check of bnn_encode_u8() against its definition, on every byte 0..255 (compiled twice by
 * tests/device/test_qemu.py: -DBNN_HAVE_FPU_SINGLE=0, the integer compare of IEEE bits that cores
 * without an FPU use, and =1, the float compare):
 *   - float tables: the bits bnn_encode() gives the float x, over thresholds that include negative
 *     ones, -0.0, +0.0, subnormals, +-infinity, the halves and the neighbours of whole numbers;
 *   - int16 tables: floor(x * 2^shift) clamped to int16 against the int16 threshold, for every
 *     shift -64..40 (computed here in 64-bit arithmetic).
 * Prints "OK <checks>" or the first mismatch.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bnn.h"

#define N_T 64
#define N_SHIFT 105 /* -64 .. 40 */

static float thr[N_T];
static uint16_t idx[N_T > N_SHIFT ? N_T : N_SHIFT];
static uint16_t off[(N_T > N_SHIFT ? N_T : N_SHIFT) + 1];
static int16_t thr_q[N_SHIFT];
static int8_t shifts[N_SHIFT];

static int bit(const uint32_t *bits, unsigned k) { return (int)((bits[k >> 5] >> (k & 31u)) & 1u); }

int main(void)
{
    const float special[] = {-INFINITY, -1e30f, -255.5f, -1.0f, -0x1p-149f, -0.0f, 0.0f, 0x1p-149f, 0x1p-126f,
                             0.25f, 0.5f, 0.99999994f, 1.0f, 1.0000001f, 1.5f, 2.0f, 16.0f, 16.5f, 127.0f,
                             127.5f, 127.99999f, 128.0f, 128.00002f, 200.25f, 254.99998f, 255.0f, 255.00002f,
                             255.5f, 256.0f, 1e30f, INFINITY};
    const unsigned n_special = (unsigned)(sizeof special / sizeof special[0]);
    uint32_t bits_u8[(N_SHIFT + 31) / 32], bits_f[(N_SHIFT + 31) / 32];
    bnn_encoder_t enc;
    unsigned i, checks = 0u;
    uint32_t state = 12345u;
    for (i = 0; i < N_T; ++i) {
        if (i < n_special) {
            thr[i] = special[i];
        } else { /* random float bit patterns that are not NaN */
            uint32_t u;
            do {
                state = state * 1664525u + 1013904223u;
                u = state;
            } while ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu) != 0u);
            memcpy(&thr[i], &u, sizeof u);
        }
        idx[i] = 0u; /* every feature reads column 0, one threshold each */
        off[i] = (uint16_t)i;
    }
    off[N_T] = N_T;
    memset(&enc, 0, sizeof enc);
    enc.n_features = 1u;
    enc.n_kept = N_T;
    enc.n_bits = N_T;
    enc.feature_index = idx;
    enc.offsets = off;
    enc.thresholds = thr;
    for (i = 0; i < 256u; ++i) {
        const uint8_t x8 = (uint8_t)i;
        const float xf = (float)i;
        unsigned k;
        bnn_encode_u8(&enc, &x8, bits_u8);
        bnn_encode(&enc, &xf, bits_f);
        for (k = 0; k < N_T; ++k, ++checks) {
            if (bit(bits_u8, k) != bit(bits_f, k)) {
                printf("MISMATCH float x=%u threshold %a: u8 %d float %d\n", i, (double)thr[k], bit(bits_u8, k),
                       bit(bits_f, k));
                return 1;
            }
        }
    }
    /* int16 tables: column c has shift c - 64 and reads one threshold */
    {
        uint8_t row[N_SHIFT];
        for (i = 0; i < N_SHIFT; ++i) {
            shifts[i] = (int8_t)((int)i - 64);
            idx[i] = (uint16_t)i;
            off[i] = (uint16_t)i;
        }
        off[N_SHIFT] = N_SHIFT;
        enc.n_features = N_SHIFT;
        enc.n_kept = N_SHIFT;
        enc.n_bits = N_SHIFT;
        enc.thresholds = NULL;
        enc.thresholds_q = thr_q;
        enc.feature_shift = shifts;
        for (state = 0; state < 40u; ++state) {
            const int16_t tq_set[] = {-32768, -1, 0, 1, 2, 100, 127, 128, 255, 256, 4096, 32640, 32766, 32767};
            unsigned c;
            for (c = 0; c < N_SHIFT; ++c) {
                thr_q[c] = tq_set[(c + state) % (sizeof tq_set / sizeof tq_set[0])];
            }
            for (i = 0; i < 256u; ++i) {
                for (c = 0; c < N_SHIFT; ++c) {
                    row[c] = (uint8_t)i;
                }
                bnn_encode_u8(&enc, row, bits_u8);
                for (c = 0; c < N_SHIFT; ++c, ++checks) {
                    const int s = (int)shifts[c];
                    int64_t q = s >= 0 ? ((int64_t)i << s) : (-s >= 63 ? 0 : ((int64_t)i >> -s));
                    if (q > 32767) {
                        q = 32767;
                    }
                    if (bit(bits_u8, c) != (q >= thr_q[c])) {
                        printf("MISMATCH int16 x=%u shift %d threshold %d: u8 %d\n", i, s, thr_q[c], bit(bits_u8, c));
                        return 1;
                    }
                }
            }
        }
    }
    printf("OK %u\n", checks);
    return 0;
}
