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

/* The bounds have decided (or not): defer or report @p x, fill in the final answer. */
static void finish(bnn_app *app, const float *x, bnn_app_result *r)
{
    const uint16_t n = app->model->encoder->n_features;
    r->link_status = -1;
    if (r->bound == BNN_INVALID) {
        /* no bound and no DNN answer exists for it: never deferred, reported so the log holds it */
        r->final = (uint8_t)BNN_FINAL_INVALID;
        r->source = (uint8_t)BNN_SOURCE_NONE;
        if (app->report && x != NULL) {
            r->link_status = (int8_t)bnn_link_report(&app->link, x, n, (uint8_t)BNN_INVALID);
        }
        return;
    }
    if (r->bound == BNN_UNKNOWN) {
        uint8_t answer = 0u;
        r->final = (uint8_t)BNN_FINAL_UNDECIDED;
        r->source = (uint8_t)BNN_SOURCE_NONE;
        if (x == NULL) {
            r->link_status = (int8_t)BNN_LINK_TOO_BIG;
            return;
        }
        r->link_status = (int8_t)bnn_link_defer(&app->link, x, n, &answer);
        if (r->link_status == (int8_t)BNN_LINK_OK) {
            r->final = answer;
            r->source = (uint8_t)BNN_SOURCE_DNN;
        }
        return;
    }
    r->final = (uint8_t)r->bound;
    r->source = (uint8_t)BNN_SOURCE_BNN;
    if (app->report && x != NULL) {
        r->link_status = (int8_t)bnn_link_report(&app->link, x, n, (uint8_t)r->bound);
    }
}

bnn_app_result bnn_app_handle(bnn_app *app, const float *features)
{
    bnn_app_result r;
    r.bound = bnn_decide(app->model, features, &r.scores);
    finish(app, features, &r);
    return r;
}

bnn_app_result bnn_app_handle_q16(bnn_app *app, const int16_t *features)
{
    bnn_app_result r;
    const bnn_encoder_t *enc = app->model->encoder;
    float *x = app->defer_buf;
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
    finish(app, x, &r);
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
