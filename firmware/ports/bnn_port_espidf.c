/**
 * @file bnn_port_espidf.c
 * @brief ESP-IDF port: the console UART through stdin/stdout; app_main() drives the application.
 */
#include <stdio.h>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "bnn_port.h"

void bnn_port_init(void) { setvbuf(stdin, NULL, _IONBF, 0); }

int bnn_port_read_byte(void)
{
    const int c = fgetc(stdin);
    return c == EOF ? BNN_PORT_NONE : c;
}

void bnn_port_write(const char *text)
{
    fputs(text, stdout);
    fflush(stdout);
}

void app_main(void)
{
    bnn_app_setup();
    for (;;) {
        (void)bnn_app_poll();
        vTaskDelay(1);
    }
}
