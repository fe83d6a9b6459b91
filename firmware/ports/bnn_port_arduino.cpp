/**
 * @file bnn_port_arduino.cpp
 * @brief Arduino port: Serial at BNN_SERIAL_BAUD; setup()/loop() drive the C application.
 */
#include <Arduino.h>

#include "bnn_port.h"

#ifndef BNN_SERIAL_BAUD
#define BNN_SERIAL_BAUD 115200
#endif

extern "C" void bnn_port_init(void) { Serial.begin(BNN_SERIAL_BAUD); }

extern "C" int bnn_port_read_byte(void)
{
    const int c = Serial.read();
    return c < 0 ? BNN_PORT_NONE : c;
}

extern "C" void bnn_port_write(const char *text) { Serial.print(text); }

void setup() { bnn_app_setup(); }

void loop() { (void)bnn_app_poll(); }
