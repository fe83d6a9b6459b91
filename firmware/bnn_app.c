/**
 * @file bnn_app.c
 * @brief decide -> defer -> final, shared by the generated example and the QEMU simulation.
 */
#include "bnn_app.h"

#include <string.h>

typedef char bnn_final_invalid_is_bnn_invalid[(BNN_FINAL_INVALID == (unsigned)BNN_INVALID) ? 1 : -1];

void bnn_app_init(bnn_app *app, const bnn_model_t *model, uint32_t session, uint32_t model_tag, uint8_t report,
                  uint8_t *tx, size_t tx_cap, uint8_t *rx, size_t rx_cap)
{
    memset(app, 0, sizeof *app);
    app->model = model;
    app->report = report;
    bnn_link_init(&app->link, session, model_tag, tx, tx_cap, rx, rx_cap);
}

/* The input as the caller holds it: float32 or uint8 (at most one pointer is set; neither when
 * an int16 model has no defer_buf). */
typedef struct {
    const float *f;
    const uint8_t *u8;
} app_input;

static int8_t send_report(bnn_app *app, app_input x, uint8_t decision)
{
    const uint16_t n = app->model->encoder->n_features;
    if (x.u8 != NULL) {
        return (int8_t)bnn_link_report_u8(&app->link, x.u8, n, decision);
    }
    return (int8_t)bnn_link_report(&app->link, x.f, n, decision);
}

/* The bounds have decided (or not): defer or report @p x, fill in the final answer. */
static void finish(bnn_app *app, app_input x, bnn_app_result *r)
{
    const uint16_t n = app->model->encoder->n_features;
    const int have_x = x.f != NULL || x.u8 != NULL;
    r->link_status = -1;
    if (r->bound == BNN_INVALID) {
        /* no bound and no DNN answer exists for it: never deferred, reported so the log holds it */
        r->final = (uint8_t)BNN_FINAL_INVALID;
        r->source = (uint8_t)BNN_SOURCE_NONE;
        if (app->report && have_x) {
            r->link_status = send_report(app, x, (uint8_t)BNN_INVALID);
        }
        return;
    }
    if (r->bound == BNN_UNKNOWN) {
        uint8_t answer = 0u;
        r->final = (uint8_t)BNN_FINAL_UNDECIDED;
        r->source = (uint8_t)BNN_SOURCE_NONE;
        if (!have_x) {
            r->link_status = (int8_t)BNN_LINK_TOO_BIG;
            return;
        }
        r->link_status = x.u8 != NULL ? (int8_t)bnn_link_defer_u8(&app->link, x.u8, n, &answer)
                                      : (int8_t)bnn_link_defer(&app->link, x.f, n, &answer);
        if (r->link_status == (int8_t)BNN_LINK_OK) {
            r->final = answer;
            r->source = (uint8_t)BNN_SOURCE_DNN;
        }
        return;
    }
    r->final = (uint8_t)r->bound;
    r->source = (uint8_t)BNN_SOURCE_BNN;
    if (app->report && have_x) {
        r->link_status = send_report(app, x, (uint8_t)r->bound);
    }
}

bnn_app_result bnn_app_handle(bnn_app *app, const float *features)
{
    bnn_app_result r;
    app_input x = {NULL, NULL};
    x.f = features;
    r.bound = bnn_decide(app->model, features, &r.scores);
    finish(app, x, &r);
    return r;
}

bnn_app_result bnn_app_handle_u8(bnn_app *app, const uint8_t *features)
{
    bnn_app_result r;
    app_input x = {NULL, NULL};
    x.u8 = features;
    r.bound = bnn_decide_u8(app->model, features, &r.scores);
    finish(app, x, &r);
    return r;
}

bnn_app_result bnn_app_handle_q16(bnn_app *app, const int16_t *features)
{
    bnn_app_result r;
    const bnn_encoder_t *enc = app->model->encoder;
    float *x = app->defer_buf;
    app_input in = {NULL, NULL};
    r.bound = bnn_decide_q16(app->model, features, &r.scores);
    if (x != NULL && (r.bound == BNN_UNKNOWN || app->report)) {
        uint16_t c;
        for (c = 0; c < enc->n_features; ++c) {
            int s = enc->feature_shift != NULL ? (int)enc->feature_shift[c] : 0;
            float v = (float)features[c];
            /* multiply by 2^-s exactly, one power of two at a time (no libm) */
            for (; s > 0; --s) {
                v *= 0.5f;
            }
            for (; s < 0; ++s) {
                v *= 2.0f;
            }
            x[c] = v;
        }
    }
    in.f = x;
    finish(app, in, &r);
    return r;
}

const char *bnn_source_name(uint8_t source)
{
    switch (source) {
    case BNN_SOURCE_BNN:
        return "bnn";
    case BNN_SOURCE_DNN:
        return "dnn";
    default:
        return "none";
    }
}
