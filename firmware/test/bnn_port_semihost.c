/**
 * @file bnn_port_semihost.c
 * @brief QEMU port of the generated example application (src/main.c), unchanged.
 *
 * Console: feature lines read from the file `bnn_console.txt` through semihosting (the stand-in
 * for what a user types into the serial monitor), result lines to semihosting stdout, then the
 * sentinel `BNN-APP-DONE`. Link: bnn_io.h from bnn_uart_cmsdk.c (CMSDK UART0, attached by QEMU
 * to a TCP socket where `bnnembed host` listens). Session: BNN_SESSION (compile time).
 */
#include <stdio.h>

#include "bnn_port.h"

#ifndef BNN_SESSION
#define BNN_SESSION 1u
#endif

static FILE *console_in;

void bnn_port_init(void) { console_in = fopen("bnn_console.txt", "rb"); }

int bnn_port_read_byte(void)
{
    int c;
    if (console_in == NULL) {
        return BNN_PORT_EOF;
    }
    c = fgetc(console_in);
    return c == EOF ? BNN_PORT_EOF : c;
}

void bnn_port_write(const char *text) { fputs(text, stdout); }

uint32_t bnn_port_session(void) { return (uint32_t)BNN_SESSION; }

int main(void)
{
    bnn_app_setup();
    while (bnn_app_poll() == 0) {
    }
    printf("BNN-APP-DONE\n");
    return 0;
}
