/**
 * @file bnn_console.c
 * @brief The example application of every generated PlatformIO project (its src/main.c).
 *
 * Console (the port's text channel, see bnn_port.h): reads feature vectors, one per line:
 * BNN_N_FEATURES numbers separated by commas, spaces, tabs or semicolons, in the training column
 * order (float models: decimal floats; int16 models: integers, column c scaled by
 * 2^bnn_feature_shift[c], see bnn_model.h). Send floats with 9 significant digits to reproduce
 * the host's float32 values exactly. For each line it prints "<decision> <upper score> <lower
 * score>", and " dnn" after it when the decision came from the host:
 *   yes|no <u> <l>       the device's bounds decided (reported to the host when BNN_APP_REPORT is 1)
 *   yes|no <u> <l> dnn   the bounds said unknown; the host DNN decided over the link
 *   unknown <u> <l>      the bounds said unknown and the host gave no answer after every retry
 *   invalid -1 -1        (float models) a feature was NaN or infinite: nobody answers it
 *                        (reported, never deferred)
 * A line with the wrong number of values prints "error expected N features, got M".
 *
 * Link (bnn_io.h, a second UART on a board): the deferral protocol of docs/protocol.md, served on
 * the PC by `bnnembed host DIR --serial PORT`. The decide -> defer -> final logic is
 * bnn_app_handle() (bnn_app.c), the same code `bnnembed simulate` runs under QEMU.
 *
 * Hand-written and copied unchanged into every project: the model comes from bnn_model.h (its
 * feature count, encoding and hash). Compile-time settings: BNN_APP_REPORT (default 1),
 * BNN_LINK_TIMEOUT_MS (500), BNN_LINK_MAX_ATTEMPTS (5).
 */
#include <stdio.h>
#include <stdlib.h>

#include "bnn.h"
#include "bnn_app.h"
#include "bnn_io.h"
#include "bnn_model.h"
#include "bnn_port.h"

#ifndef BNN_APP_REPORT
#define BNN_APP_REPORT 1
#endif

#ifdef BNN_ENCODING_FLOAT
typedef float app_feature_t;
#else
typedef int16_t app_feature_t;
static float app_defer_buf[BNN_N_FEATURES]; /* dequantized features of a deferral */
#endif

#define APP_TOKEN_MAX 47

static app_feature_t app_features[BNN_N_FEATURES];
static unsigned app_count;     /* features received on the current line */
static int app_error;          /* current line is malformed */
static char app_token[APP_TOKEN_MAX + 1];
static unsigned app_token_len;
static uint8_t app_tx[BNN_APP_TX_SIZE(BNN_N_FEATURES)];
static uint8_t app_rx[BNN_APP_RX_SIZE];
static bnn_app app;
static int app_linked;         /* the link is initialised (at the first vector) */

/** First 32 bits of the model hash (its first 8 hex digits): the host refuses requests for
 *  another model. */
static uint32_t model_tag(void)
{
    const char *h = BNN_MODEL_HASH;
    uint32_t tag = 0u;
    unsigned i;
    for (i = 0u; i < 8u; ++i) {
        const char c = h[i];
        const uint32_t d = (c >= '0' && c <= '9') ? (uint32_t)(c - '0') : (uint32_t)(c - 'a' + 10);
        tag = (tag << 4) | d;
    }
    return tag;
}

/** A complete feature vector: decide, defer if needed, print the final answer. */
static void handle_vector(const app_feature_t *features)
{
    char text[72];
    bnn_app_result r;
    if (!app_linked) {
        /* the session is taken when the first input arrives, which varies from boot to boot */
        bnn_app_init(&app, &bnn_model, bnn_port_session(), model_tag(), (uint8_t)BNN_APP_REPORT, app_tx,
                     sizeof app_tx, app_rx, sizeof app_rx);
#ifndef BNN_ENCODING_FLOAT
        app.defer_buf = app_defer_buf;
#endif
        app_linked = 1;
    }
#ifdef BNN_ENCODING_FLOAT
    r = bnn_app_handle(&app, features);
#else
    r = bnn_app_handle_q16(&app, features);
#endif
    (void)snprintf(text, sizeof text, "%s %ld %ld%s\n", bnn_decision_name((bnn_decision_t)r.final),
                   (long)r.scores.upper, (long)r.scores.lower, r.source == BNN_SOURCE_DNN ? " dnn" : "");
    bnn_port_write(text);
}

/** Convert the pending token into the next feature. */
static void end_token(void)
{
    char *end;
    if (app_token_len == 0u) {
        return;
    }
    app_token[app_token_len] = '\0';
    app_token_len = 0u;
    if (app_count >= BNN_N_FEATURES) {
        app_error = 1;
        return;
    }
#ifdef BNN_ENCODING_FLOAT
    app_features[app_count] = strtof(app_token, &end);
#else
    {
        long v = strtol(app_token, &end, 10);
        if (v > 32767L) {
            v = 32767L;
        } else if (v < -32768L) {
            v = -32768L;
        }
        app_features[app_count] = (int16_t)v;
    }
#endif
    if (*end != '\0') {
        app_error = 1;
    }
    ++app_count;
}

/** Feed one received byte to the line parser. */
static void parse_byte(char c)
{
    if (c == '\n' || c == '\r') {
        end_token();
        if (app_count == BNN_N_FEATURES && !app_error) {
            handle_vector(app_features);
        } else if (app_count > 0u || app_error) {
            char text[80];
            (void)snprintf(text, sizeof text, "error expected %d features, got %u%s\n",
                           BNN_N_FEATURES, app_count, app_error ? " (or a malformed number)" : "");
            bnn_port_write(text);
        }
        app_count = 0u;
        app_error = 0;
    } else if (c == ',' || c == ' ' || c == '\t' || c == ';') {
        end_token();
    } else if (app_token_len < APP_TOKEN_MAX) {
        app_token[app_token_len++] = c;
    } else {
        app_error = 1;
    }
}

void bnn_app_setup(void)
{
    bnn_port_init();
    bnn_io_init();
    bnn_port_write("bnnembed ready: model " BNN_MODEL_HASH "\n");
}

int bnn_app_poll(void)
{
    for (;;) {
        const int c = bnn_port_read_byte();
        if (c == BNN_PORT_NONE) {
            return 0;
        }
        if (c == BNN_PORT_EOF) {
            parse_byte('\n');
            return -1;
        }
        parse_byte((char)c);
    }
}
