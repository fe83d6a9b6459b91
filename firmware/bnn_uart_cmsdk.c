/**
 * @file bnn_uart_cmsdk.c
 * @brief bnn_port.h over the Arm CMSDK APB UART and the Cortex-M SysTick (QEMU mps2 machines).
 *
 * UART0 of mps2-an385/an386/an500 sits at 0x40004000 (override with -DBNN_UART_BASE=...):
 * DATA +0x00, STATE +0x04 (bit 0 TX full, bit 1 RX full), CTRL +0x08 (bit 0 TX enable,
 * bit 1 RX enable), BAUDDIV +0x10. Under QEMU the UART is attached to a TCP socket
 * (-chardev socket,... -serial chardev:...), which is how `bnnembed simulate` reaches the host.
 * The millisecond clock counts SysTick (processor clock, BNN_PORT_CPU_HZ) down-counts; it must be
 * read at least once per 2^24 cycles, which the polling loops of bnn_port_getc() do.
 */
#include <stdint.h>

#include "bnn_port.h"

#ifndef BNN_UART_BASE
#define BNN_UART_BASE 0x40004000u
#endif
#ifndef BNN_PORT_CPU_HZ
#define BNN_PORT_CPU_HZ 25000000u
#endif
#ifndef BNN_PORT_BAUD
#define BNN_PORT_BAUD 115200u
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
static uint32_t bnn_tick_acc; /* cycles not yet turned into milliseconds */
static uint32_t bnn_ms;

void bnn_port_init(void)
{
    UART_BAUDDIV = BNN_PORT_CPU_HZ / BNN_PORT_BAUD;
    UART_CTRL = 0x3u; /* TX and RX enabled, no interrupts */
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 0x5u; /* enabled, processor clock, no interrupt */
    bnn_last_tick = SYST_CVR & 0x00FFFFFFu;
    bnn_tick_acc = 0u;
    bnn_ms = 0u;
}

uint32_t bnn_port_millis(void)
{
    uint32_t now = SYST_CVR & 0x00FFFFFFu;
    uint32_t elapsed = (bnn_last_tick - now) & 0x00FFFFFFu; /* down-counter */
    bnn_last_tick = now;
    bnn_tick_acc += elapsed;
    bnn_ms += bnn_tick_acc / (BNN_PORT_CPU_HZ / 1000u);
    bnn_tick_acc %= BNN_PORT_CPU_HZ / 1000u;
    return bnn_ms;
}

void bnn_port_putc(uint8_t c)
{
    while (UART_STATE & UART_TX_FULL) {
    }
    UART_DATA = c;
}

int bnn_port_getc(uint32_t timeout_ms)
{
    uint32_t start = bnn_port_millis();
    for (;;) {
        if (UART_STATE & UART_RX_FULL) {
            return (int)(UART_DATA & 0xFFu);
        }
        if (bnn_port_millis() - start >= timeout_ms) {
            return -1;
        }
    }
}
