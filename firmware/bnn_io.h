/**
 * @file bnn_io.h
 * @brief The three functions a board provides so the deferral link can talk to the host.
 *
 * Implementations: bnn_uart_cmsdk.c (the CMSDK APB UART and SysTick of the QEMU mps2 machines);
 * on a real board, a few lines over the vendor's UART driver (see docs/protocol.md).
 */
#ifndef BNN_IO_H
#define BNN_IO_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Prepare the UART and the millisecond clock (call once at start-up). */
void bnn_io_init(void);

/** Send one byte (blocking until the UART accepts it). */
void bnn_io_putc(uint8_t c);

/** Receive one byte, waiting at most @p timeout_ms. @return the byte (0..255), or -1 on timeout. */
int bnn_io_getc(uint32_t timeout_ms);

/** A millisecond clock (wraps at 2^32; only differences are used). */
uint32_t bnn_io_millis(void);

#ifdef __cplusplus
}
#endif

#endif /* BNN_IO_H */
