/**
 * @file bnn_uart_cmsdk.c
 * @brief bnn_io.h over the Arm CMSDK APB UART and the Cortex-M SysTick (QEMU mps2 machines).
 *
 * UART0 of mps2-an385/an386/an500 sits at 0x40004000 (override with -DBNN_UART_BASE=...):
 * DATA +0x00, STATE +0x04 (bit 0 TX full, bit 1 RX full), CTRL +0x08 (bit 0 TX enable,
 * bit 1 RX enable), BAUDDIV +0x10. Under QEMU the UART is attached to a TCP socket
 * (-chardev socket,... -serial chardev:...), which is how `bnnembed simulate` reaches the host.
 * The clocks accumulate SysTick down-counts (processor clock, BNN_IO_CPU_HZ); they must be read at
 * least once per 2^24 cycles (0.67 s at 25 MHz), which the polling loop of bnn_io_getc() does.
 */
#include <stdint.h>

#include "bnn_io.h"

#ifndef BNN_UART_BASE
#define BNN_UART_BASE 0x40004000u
#endif
#ifndef BNN_IO_CPU_HZ
#define BNN_IO_CPU_HZ 25000000u
#endif
#ifndef BNN_IO_BAUD
#define BNN_IO_BAUD 115200u
#endif

#define BNN_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define UART_DATA BNN_REG(BNN_UART_BASE + 0x00u)
#define UART_STATE BNN_REG(BNN_UART_BASE + 0x04u)
#define UART_CTRL BNN_REG(BNN_UART_BASE + 0x08u)
#define UART_BAUDDIV BNN_REG(BNN_UART_BASE + 0x10u)
#define UART_TX_FULL 0x1u
#define UART_RX_FULL 0x2u

#define SYST_CSR BNN_REG(0xE000E010u)
#define SYST_RVR BNN_REG(0xE000E014u)
#define SYST_CVR BNN_REG(0xE000E018u)

static uint32_t bnn_last_tick;
static uint32_t bnn_tick_acc; /* cycles not yet turned into microseconds */
static uint64_t bnn_us; /* microseconds since bnn_io_init() */

void bnn_io_init(void)
{
    UART_BAUDDIV = BNN_IO_CPU_HZ / BNN_IO_BAUD;
    UART_CTRL = 0x3u; /* TX and RX enabled, no interrupts */
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 0x5u; /* enabled, processor clock, no interrupt */
    bnn_last_tick = SYST_CVR & 0x00FFFFFFu;
    bnn_tick_acc = 0u;
    bnn_us = 0u;
}

/** A microsecond clock from SysTick (wraps at 2^32; only differences are used). */
uint32_t bnn_cmsdk_micros(void)
{
    uint32_t now = SYST_CVR & 0x00FFFFFFu;
    uint32_t elapsed = (bnn_last_tick - now) & 0x00FFFFFFu; /* down-counter */
    bnn_last_tick = now;
    bnn_tick_acc += elapsed;
    bnn_us += bnn_tick_acc / (BNN_IO_CPU_HZ / 1000000u);
    bnn_tick_acc %= BNN_IO_CPU_HZ / 1000000u;
    return (uint32_t)bnn_us;
}

uint32_t bnn_io_millis(void)
{
    (void)bnn_cmsdk_micros();
    return (uint32_t)(bnn_us / 1000u);
}

void bnn_io_putc(uint8_t c)
{
    while (UART_STATE & UART_TX_FULL) {
    }
    UART_DATA = c;
}

int bnn_io_getc(uint32_t timeout_ms)
{
    uint32_t start = bnn_io_millis();
    for (;;) {
        if (UART_STATE & UART_RX_FULL) {
            return (int)(UART_DATA & 0xFFu);
        }
        if (bnn_io_millis() - start >= timeout_ms) {
            return -1;
        }
    }
}
