/**
 * @file bnn_port.h
 * @brief Serial port of the example application: the only framework-specific part.
 *
 * One implementation per framework (bnn_port_arduino.cpp, bnn_port_espidf.c, and
 * bnn_port_stdio.c for host tests). Each also provides the program entry point, which calls
 * bnn_app_setup() once and then bnn_app_poll() forever.
 */
#ifndef BNN_PORT_H
#define BNN_PORT_H

#ifdef __cplusplus
extern "C" {
#endif

/** bnn_port_read_byte(): no byte available right now. */
#define BNN_PORT_NONE (-1)
/** bnn_port_read_byte(): the input stream has ended (host tests only). */
#define BNN_PORT_EOF (-2)

/** @brief Open the serial port (baud rate BNN_SERIAL_BAUD, default 115200). */
void bnn_port_init(void);

/** @brief Next received byte (0..255), BNN_PORT_NONE or BNN_PORT_EOF; never blocks. */
int bnn_port_read_byte(void);

/** @brief Write a NUL-terminated string. */
void bnn_port_write(const char *text);

/** @brief Application hooks implemented by main.c. */
void bnn_app_setup(void);
/** @brief Process the bytes received so far; returns -1 once the input has ended, else 0. */
int bnn_app_poll(void);

#ifdef __cplusplus
}
#endif

#endif /* BNN_PORT_H */
