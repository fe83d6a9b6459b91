/**
 * @file bnn_port_stdio.c
 * @brief Host port for tests: the console is stdin/stdout and ends at end of input.
 *
 * This port has no link: bnn_io_putc() discards bytes and bnn_io_getc() reports a timeout at
 * once, so a deferral ends without an answer (printed as "unknown") after its retries, without
 * waiting. (QEMU runs connect the link for real: firmware/test/bnn_port_semihost.c.)
 */
#include <stdio.h>
#include <time.h>

#include "bnn_io.h"
#include "bnn_port.h"

void bnn_port_init(void) {}

int bnn_port_read_byte(void)
{
    const int c = getchar();
    return c == EOF ? BNN_PORT_EOF : c;
}

void bnn_port_write(const char *text) { fputs(text, stdout); }

uint32_t bnn_port_session(void) { return (uint32_t)time(NULL) ^ (uint32_t)clock(); }

void bnn_io_init(void) {}

void bnn_io_putc(uint8_t c) { (void)c; }

int bnn_io_getc(uint32_t timeout_ms)
{
    (void)timeout_ms;
    return -1;
}

uint32_t bnn_io_millis(void) { return (uint32_t)((unsigned long)clock() / (CLOCKS_PER_SEC / 1000ul)); }

int main(void)
{
    bnn_app_setup();
    while (bnn_app_poll() == 0) {
    }
    return 0;
}
