/**
 * @file bnn_port_espidf.c
 * @brief ESP-IDF port: console on stdin/stdout (UART0 / USB), deferral link on a second UART.
 *
 * The link uses the UART driver on BNN_LINK_UART (default UART_NUM_1) at BNN_LINK_BAUD (115200)
 * on pins BNN_LINK_TX_PIN / BNN_LINK_RX_PIN: set them in platformio.ini's build_flags for your
 * wiring (e.g. `-D BNN_LINK_TX_PIN=17 -D BNN_LINK_RX_PIN=16` on an ESP32 DevKit); without them the
 * UART keeps its default pins, which on the classic ESP32 are the flash pins. Connect them to a
 * USB-serial adapter and run `bnnembed host DIR --serial /dev/ttyUSB0` on the PC.
 * app_main() drives the application.
 */
#include <stdio.h>

#include "driver/uart.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"

#include "bnn_io.h"
#include "bnn_port.h"

#ifndef BNN_LINK_UART
#define BNN_LINK_UART UART_NUM_1
#endif
#ifndef BNN_LINK_BAUD
#define BNN_LINK_BAUD 115200
#endif
#ifndef BNN_LINK_TX_PIN
#define BNN_LINK_TX_PIN UART_PIN_NO_CHANGE
#endif
#ifndef BNN_LINK_RX_PIN
#define BNN_LINK_RX_PIN UART_PIN_NO_CHANGE
#endif

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

uint32_t bnn_port_session(void) { return esp_random(); }

void bnn_io_init(void)
{
    const uart_config_t cfg = {
        .baud_rate = BNN_LINK_BAUD,
        .data_bits = UART_DATA_8_BITS,
        .parity = UART_PARITY_DISABLE,
        .stop_bits = UART_STOP_BITS_1,
        .flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
    };
    ESP_ERROR_CHECK(uart_driver_install(BNN_LINK_UART, 1024, 0, 0, NULL, 0));
    ESP_ERROR_CHECK(uart_param_config(BNN_LINK_UART, &cfg));
    ESP_ERROR_CHECK(uart_set_pin(BNN_LINK_UART, BNN_LINK_TX_PIN, BNN_LINK_RX_PIN, UART_PIN_NO_CHANGE,
                                 UART_PIN_NO_CHANGE));
}

void bnn_io_putc(uint8_t c) { (void)uart_write_bytes(BNN_LINK_UART, (const char *)&c, 1); }

int bnn_io_getc(uint32_t timeout_ms)
{
    uint8_t c;
    TickType_t ticks = pdMS_TO_TICKS(timeout_ms);
    if (ticks == 0 && timeout_ms > 0u) {
        ticks = 1; /* round a sub-tick wait up rather than polling once */
    }
    return uart_read_bytes(BNN_LINK_UART, &c, 1, ticks) == 1 ? (int)c : -1;
}

uint32_t bnn_io_millis(void) { return (uint32_t)(esp_timer_get_time() / 1000); }

void app_main(void)
{
    bnn_app_setup();
    for (;;) {
        (void)bnn_app_poll();
        vTaskDelay(1);
    }
}
