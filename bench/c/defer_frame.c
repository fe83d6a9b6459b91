/**
 * @file defer_frame.c
 * @brief The device side of one deferral, for the cascade benchmark: build the DEFER frame the
 *        link sends (bnn_proto_build_request_frame(): header, features at their narrowest width,
 *        CRC-32 and COBS in one pass; UART time excluded).
 */
#include "bnn_protocol.h"
#include "dense_model.h"

static uint8_t frame[BNN_PROTO_FRAME_SIZE(DENSE_N_IN)];
static uint32_t seq;

int dense_predict(const float *x)
{
    size_t m = bnn_proto_build_request_frame(frame, sizeof frame, BNN_MSG_DEFER, 1u, ++seq, 0x12345678u, 0u,
                                             x, (uint16_t)DENSE_N_IN, NULL);
    return (int)(m > 0u);
}

/* bnn_protocol.c's transaction loop also links against the serial port; the benchmark never
 * calls it, so these stubs only satisfy the linker. */
#include "bnn_io.h"
void bnn_io_putc(uint8_t c) { (void)c; }
int bnn_io_getc(uint32_t timeout_ms)
{
    (void)timeout_ms;
    return -1;
}
uint32_t bnn_io_millis(void) { return 0u; }
