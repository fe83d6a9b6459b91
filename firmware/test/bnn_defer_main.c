/**
 * @file bnn_defer_main.c
 * @brief Simulated deployment: decide every row, defer UNKNOWNs to the host over the UART.
 *
 * Built by `bnnembed simulate` around the generated model, the runtime, the deferral link
 * (bnn_protocol.c), the application logic every generated project uses (bnn_app.c:
 * bnn_app_handle() decides, defers and retries) and a bnn_io.h port (bnn_uart_cmsdk.c under QEMU, whose UART0 is a TCP
 * socket to the host service). The rows stand in for a sensor: `bnn_rows.bin` read through
 * semihosting (two little-endian uint32 — rows, 4 — then float32 rows of BNN_N_FEATURES; with
 * -DBNN_TEST_INPUT_UINT8, rows, 1, then uint8 rows, decided and deferred by bnn_app_handle_u8()).
 * Results go to semihosting stdout, one line per row:
 *
 *     R <row> <bound decision> <link status> <final> <round trip us>
 *
 * bound decision: 0 NO, 1 YES, 2 UNKNOWN, 3 INVALID (bnn_decide); link status: a bnn_link_status
 * of the DEFER (UNKNOWN rows) or REPORT (decided and INVALID rows, when BNN_SIM_REPORT is 1), -1 if
 * nothing was sent; final: 0 NO, 1 YES, 2 undecided, 3 invalid; round trip: microseconds of the
 * link call (0 if none).
 * Then `L <requests> <retries> <no_reply> <refused> <stale> <rx frames ok> <rx dropped>` and the
 * sentinel `BNN-SIM-DONE rows=<n>`.
 *
 * Compile-time settings: BNN_MODEL_TAG (first 32 bits of the model hash), BNN_SESSION (differs
 * per boot), BNN_SIM_REPORT (report the device's own decisions, default 1).
 */
#include <stdint.h>
#include <stdio.h>

#include "bnn.h"
#include "bnn_app.h"
#include "bnn_io.h"
#include "bnn_model.h"
#include "bnn_protocol.h"

#ifndef BNN_MODEL_TAG
#error "define BNN_MODEL_TAG (first 8 hex digits of the model hash)"
#endif
#ifndef BNN_SESSION
#define BNN_SESSION 1u
#endif
#ifndef BNN_SIM_REPORT
#define BNN_SIM_REPORT 1
#endif

#ifndef BNN_ENCODING_FLOAT
#error "the simulated deployment sends float32 features; generate the model with the float encoding"
#endif

uint32_t bnn_cmsdk_micros(void);

#ifdef BNN_TEST_INPUT_UINT8
static uint8_t sim_row[BNN_N_FEATURES];
static uint8_t sim_tx[BNN_PROTO_FRAME_SIZE_U8(BNN_N_FEATURES)];
#define sim_handle bnn_app_handle_u8
#else
static float sim_row[BNN_N_FEATURES];
static uint8_t sim_tx[BNN_PROTO_FRAME_SIZE(BNN_N_FEATURES)];
#define sim_handle bnn_app_handle
#endif
static uint8_t sim_rx[BNN_PROTO_RX_BUFFER_SIZE];
static bnn_app sim_app;
#define sim_link (sim_app.link)

int main(void)
{
    uint32_t header[2];
    uint32_t row;
    unsigned i, dropped = 0u;
    FILE *in = fopen("bnn_rows.bin", "rb");
    if (in == NULL) {
        printf("BNN-SIM-ERROR cannot open bnn_rows.bin\n");
        return 3;
    }
    if (fread(header, sizeof header, 1, in) != 1 || header[1] != sizeof sim_row[0]) {
        printf("BNN-SIM-ERROR bad header\n");
        return 4;
    }
    bnn_io_init();
    bnn_app_init(&sim_app, &bnn_model, (uint32_t)BNN_SESSION, (uint32_t)BNN_MODEL_TAG, (uint8_t)BNN_SIM_REPORT,
                 sim_tx, sizeof sim_tx, sim_rx, sizeof sim_rx);
    for (row = 0; row < header[0]; ++row) {
        bnn_app_result r;
        uint32_t t0, t1;
        if (fread(sim_row, sizeof sim_row, 1, in) != 1) {
            printf("BNN-SIM-ERROR short read at row %lu\n", (unsigned long)row);
            return 5;
        }
        t0 = bnn_cmsdk_micros();
        r = sim_handle(&sim_app, sim_row);
        t1 = r.link_status >= 0 ? bnn_cmsdk_micros() : t0;
        printf("R %lu %d %d %u %lu\n", (unsigned long)row, (int)r.bound, (int)r.link_status, (unsigned)r.final,
               (unsigned long)(t1 - t0));
    }
    fclose(in);
    for (i = 1; i < (unsigned)BNN_PROTO_N_STATUS; ++i) {
        dropped += (unsigned)sim_link.rx.dropped[i];
    }
    printf("L %lu %lu %lu %lu %lu %lu %u\n", (unsigned long)sim_link.requests, (unsigned long)sim_link.retries,
           (unsigned long)sim_link.no_reply, (unsigned long)sim_link.refused, (unsigned long)sim_link.stale,
           (unsigned long)sim_link.rx.frames_ok, dropped);
    printf("BNN-SIM-DONE rows=%lu\n", (unsigned long)header[0]);
    return 0;
}
