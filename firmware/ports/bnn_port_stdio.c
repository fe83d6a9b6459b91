/**
 * @file bnn_port_stdio.c
 * @brief Host port for tests: stdin/stdout, ends at end of input.
 */
#include <stdio.h>

#include "bnn_port.h"

void bnn_port_init(void) {}

int bnn_port_read_byte(void)
{
    const int c = getchar();
    return c == EOF ? BNN_PORT_EOF : c;
}

void bnn_port_write(const char *text) { fputs(text, stdout); }

int main(void)
{
    bnn_app_setup();
    while (bnn_app_poll() == 0) {
    }
    return 0;
}
