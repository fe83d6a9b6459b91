/*
 * src/main.c (example application for ST Nucleo-F401RE)
 * bnnembed <version> — generated — do not edit
 * model hash: 0123456789abcdef
 * input: 3 features (2 kept) -> 3 thermometer bits, float encoding
 * upper bound (answers yes): 3 -> 2 -> 1, tau = 2
 * lower bound (answers no): 3 -> 2 -> 1, tau = 1
 */
/*
 * Reads feature vectors from the serial port, one per line: BNN_N_FEATURES numbers separated by
 * commas or spaces, in the training column order (float).
 * For each line it prints "<decision> <upper score> <lower score>", decision = yes / no / unknown.
 * Send floats with 9 significant digits to reproduce the host's float32 values exactly.
 *
 * Structure: bnn_app_poll() collects bytes into numbers (parse_byte), a complete line goes to
 * handle_vector(), which decides and either prints the answer or calls defer_unknown().
 */
#include <stdio.h>
#include <stdlib.h>

#include "bnn.h"
#include "bnn_model.h"
#include "bnn_port.h"

#ifdef BNN_ENCODING_FLOAT
typedef float app_feature_t;
#else
typedef int16_t app_feature_t;
#endif

#define APP_TOKEN_MAX 47

static app_feature_t app_features[BNN_N_FEATURES];
static unsigned app_count;     /* features received on the current line */
static int app_error;          /* current line is malformed */
static char app_token[APP_TOKEN_MAX + 1];
static unsigned app_token_len;

/** Print the decision and both scores. */
static void print_decision(bnn_decision_t decision, const bnn_scores_t *scores)
{
    char text[64];
    (void)snprintf(text, sizeof text, "%s %ld %ld\n", bnn_decision_name(decision),
                   (long)scores->upper, (long)scores->lower);
    bnn_port_write(text);
}

/**
 * The device could not decide: the input goes to the host, where the DNN decides.
 * Placeholder until the deferral protocol (bnn_protocol.h) is wired in here.
 */
static void defer_unknown(const app_feature_t *features, const bnn_scores_t *scores)
{
    (void)features;
    print_decision(BNN_UNKNOWN, scores);
}

/** A complete feature vector: decide, answer or defer. */
static void handle_vector(const app_feature_t *features)
{
    bnn_scores_t scores;
#ifdef BNN_ENCODING_FLOAT
    const bnn_decision_t decision = bnn_decide(&bnn_model, features, &scores);
#else
    const bnn_decision_t decision = bnn_decide_q16(&bnn_model, features, &scores);
#endif
    if (decision == BNN_UNKNOWN) {
        defer_unknown(features, &scores);
    } else {
        print_decision(decision, &scores);
    }
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
