/**
 * @file bnn_port.h
 * @brief Ports of the example application: the only framework-specific part.
 *
 * A port provides two channels:
 * - the *console* (bnn_port_*): text, where the example reads feature lines and prints one result
 *   line per vector (the stand-in for a sensor and a display);
 * - the *link* (bnn_io.h: bnn_io_init/putc/getc/millis): bytes to the host service, which carry the
 *   deferral protocol (docs/protocol.md). On a board it is a second UART (docs/firmware.md).
 *
 * One implementation per framework (bnn_port_arduino.cpp, bnn_port_espidf.c, and
 * bnn_port_stdio.c for host tests, whose link is absent). Each also provides the program entry
 * point, which calls bnn_app_setup() once and then bnn_app_poll() forever.
 */
#ifndef BNN_PORT_H
#define BNN_PORT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** bnn_port_read_byte(): no byte available right now. */
#define BNN_PORT_NONE (-1)
/** bnn_port_read_byte(): the input stream has ended (host tests only). */
#define BNN_PORT_EOF (-2)

/** @brief Open the console (baud rate BNN_SERIAL_BAUD, default 115200). */
void bnn_port_init(void);

/** @brief Next received console byte (0..255), BNN_PORT_NONE or BNN_PORT_EOF; never blocks. */
int bnn_port_read_byte(void);

/** @brief Write a NUL-terminated string to the console. */
void bnn_port_write(const char *text);

/**
 * @brief A value that differs between boots (hardware random number, timer noise), used as the
 * link's session so the host tells a retry from a new request after a reset.
 */
uint32_t bnn_port_session(void);

/** @brief Application hooks implemented by main.c. */
void bnn_app_setup(void);
/** @brief Process the bytes received so far; returns -1 once the input has ended, else 0. */
int bnn_app_poll(void);

#ifdef __cplusplus
}
#endif

#endif /* BNN_PORT_H */
