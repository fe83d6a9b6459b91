/**
 * @file bnn_port_arduino.cpp
 * @brief Arduino port: console on Serial (BNN_SERIAL_BAUD), deferral link on BNN_LINK_SERIAL.
 *
 * The link defaults to Serial1 at BNN_LINK_BAUD (115200): wire its TX/RX pins to a USB-serial
 * adapter and run `bnnembed host DIR --serial /dev/ttyUSB0` on the PC. A board whose second UART
 * has another name sets e.g. `-D BNN_LINK_SERIAL=Serial2` in platformio.ini's build_flags.
 * setup()/loop() drive the C application.
 */
#include <Arduino.h>

#include "bnn_io.h"
#include "bnn_port.h"

#ifndef BNN_SERIAL_BAUD
#define BNN_SERIAL_BAUD 115200
#endif
#ifndef BNN_LINK_SERIAL
#define BNN_LINK_SERIAL Serial1
#endif
#ifndef BNN_LINK_BAUD
#define BNN_LINK_BAUD 115200
#endif

extern "C" void bnn_port_init(void) { Serial.begin(BNN_SERIAL_BAUD); }

extern "C" int bnn_port_read_byte(void)
{
    const int c = Serial.read();
    return c < 0 ? BNN_PORT_NONE : c;
}

extern "C" void bnn_port_write(const char *text) { Serial.print(text); }

extern "C" uint32_t bnn_port_session(void)
{
    /* micros() at the first request depends on when the first input arrived; the floating
       analog pin adds noise where there is one */
    return (uint32_t)micros() ^ ((uint32_t)analogRead(0) << 20);
}

extern "C" void bnn_io_init(void) { BNN_LINK_SERIAL.begin(BNN_LINK_BAUD); }

extern "C" void bnn_io_putc(uint8_t c) { (void)BNN_LINK_SERIAL.write(c); }

extern "C" int bnn_io_getc(uint32_t timeout_ms)
{
    const uint32_t start = millis();
    do {
        const int c = BNN_LINK_SERIAL.read();
        if (c >= 0) {
            return c;
        }
    } while ((uint32_t)(millis() - start) < timeout_ms);
    return -1;
}

extern "C" uint32_t bnn_io_millis(void) { return (uint32_t)millis(); }

void setup() { bnn_app_setup(); }

void loop() { (void)bnn_app_poll(); }
