/**
 * @file bnn_app.h
 * @brief The application logic of a deployed model in one call: decide, defer, final answer.
 *
 * bnn_app_handle() decides a feature vector with both bounds; when they leave it UNKNOWN it
 * defers the vector to the host DNN over the link (bnn_protocol.h: DEFER, bounded retries with a
 * timeout, DECISION), and when the device decided itself it optionally REPORTs that decision so
 * the host log is complete. A float vector with a NaN or an infinity is INVALID (bnn_decide()):
 * it is never deferred (no DNN answer exists for it either), and it is REPORTed with decision
 * BNN_INVALID so the host log holds it. The generated example src/main.c and the QEMU simulation driver
 * (firmware/test/bnn_defer_main.c, used by `bnnembed simulate`) both call it, so a simulated run
 * executes the same decide/defer/retry path a flashed board does. Byte I/O comes from a
 * bnn_io.h port. Portable C99, no malloc, model-agnostic (the model and every buffer are passed in).
 */
#ifndef BNN_APP_H
#define BNN_APP_H

#include <stddef.h>
#include <stdint.h>

#include "bnn.h"
#include "bnn_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where a final decision came from (bnn_source_t) and the final values BNN_FINAL_NO, _YES,
 * _UNDECIDED and _INVALID: bnn_codes.h, generated from bnnembed.device.app_codes. */

/** What bnn_app_handle() ended with for one input. */
typedef struct {
    bnn_decision_t bound; /**< the bounds' decision (BNN_YES, BNN_NO, BNN_UNKNOWN), or BNN_INVALID */
    bnn_scores_t scores;  /**< both bound scores (BNN_SCORE_NONE for BNN_INVALID) */
    uint8_t final;        /**< 0 NO, 1 YES, BNN_FINAL_UNDECIDED, BNN_FINAL_INVALID */
    uint8_t source;       /**< a bnn_source_t */
    int8_t link_status;   /**< bnn_link_status of the DEFER or REPORT sent, -1 if nothing was sent */
} bnn_app_result;

/** The application state: the model, the link and its caller-owned buffers. */
typedef struct {
    const bnn_model_t *model; /**< generated model (e.g. &bnn_model) */
    bnn_link link;            /**< device end of the deferral link */
    uint8_t report;           /**< 1: REPORT the device's own decisions to the host */
    float *defer_buf;         /**< int16 models: n_features floats for the dequantized DEFER (else NULL) */
} bnn_app;

/** Transmit buffer bytes for a model of @p n features (one whole DEFER or REPORT wire frame). */
#define BNN_APP_TX_SIZE(n) BNN_PROTO_FRAME_SIZE(n)
/** Receive buffer bytes (the longest reply frame). */
#define BNN_APP_RX_SIZE BNN_PROTO_RX_BUFFER_SIZE

/**
 * Initialise the application (call bnn_io_init() first).
 * @param session differs per boot (see bnn_link_init()); @param model_tag first 32 bits of the
 *        model hash (BNN_MODEL_TAG in the generated code); @param report 1 to REPORT own decisions;
 * @param tx BNN_APP_TX_SIZE(n_features) bytes; @param rx BNN_APP_RX_SIZE bytes.
 */
void bnn_app_init(bnn_app *app, const bnn_model_t *model, uint32_t session, uint32_t model_tag, uint8_t report,
                  uint8_t *tx, size_t tx_cap, uint8_t *rx, size_t rx_cap);

/**
 * Decide raw float features (float-encoding models); defer UNKNOWN to the host. A vector with a
 * NaN or an infinity ends BNN_FINAL_INVALID, source BNN_SOURCE_NONE, with no DEFER (a REPORT
 * with decision BNN_INVALID when reporting is on).
 * @return the final decision, its source and the link status.
 */
bnn_app_result bnn_app_handle(bnn_app *app, const float *features);

/**
 * Decide int16 features (int16-encoding models, column c = floor(x_c * 2^feature_shift[c])).
 * Every int16 is a number, so this never ends INVALID: a non-finite reading must be caught where
 * it is converted to int16 (on the host: bnnembed.codegen.quantize_int16 refuses it).
 * A deferral sends the dequantized values x_c = q_c * 2^-shift[c] (what the device knows of the
 * input) through app->defer_buf, which must hold n_features floats.
 */
bnn_app_result bnn_app_handle_q16(bnn_app *app, const int16_t *features);

/**
 * Decide features that are uint8 at the source (either model encoding, see bnn_decide_u8());
 * defer UNKNOWN with the uint8 frame (bnn_link_defer_u8(): the host receives the same values,
 * and the frame costs a few instructions per byte). Never ends BNN_FINAL_INVALID.
 */
bnn_app_result bnn_app_handle_u8(bnn_app *app, const uint8_t *features);

/** Name of a bnn_source_t: "bnn", "dnn" or "none". */
const char *bnn_source_name(uint8_t source);

#ifdef __cplusplus
}
#endif

#endif /* BNN_APP_H */
