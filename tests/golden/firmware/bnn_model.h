/*
 * bnn_model.h
 * bnnembed <version> — generated — do not edit
 * model hash: 0123456789abcdef
 * input: 3 features (2 kept) -> 3 thermometer bits, float encoding
 * upper bound (answers yes): 3 -> 2 -> 1, tau = 2
 * lower bound (answers no): 3 -> 2 -> 1, tau = 1 (one network: the upper bound's hidden layers, its own output neuron)
 */
#ifndef BNN_MODEL_H
#define BNN_MODEL_H

#include "bnn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BNN_MODEL_HASH "0123456789abcdef"
#define BNN_GENERATOR_VERSION "<version>"

/* input encoding */
#define BNN_N_FEATURES 3   /**< raw features per input vector */
#define BNN_N_KEPT 2           /**< features that own thermometer bits */
#define BNN_N_BITS 3           /**< thermometer bits */
#define BNN_INPUT_WORDS 1         /**< 32-bit words of the encoded input */
#define BNN_HIDDEN_WORDS 1       /**< 32-bit words of one hidden scratch buffer */
#define BNN_ENCODING_FLOAT 1                    /**< call bnn_decide() with float features */

/* bounds */
#define BNN_UPPER_N_LAYERS 2
#define BNN_UPPER_TAU 2           /**< answers yes iff score >= tau */
#define BNN_UPPER_SCORE_MAX 2
#define BNN_LOWER_N_LAYERS 2
#define BNN_LOWER_TAU 1           /**< answers no iff score >= tau */
#define BNN_LOWER_SCORE_MAX 2
#define BNN_N_COPIES 1                 /**< shifted copies each decision runs the bounds on */
#define BNN_BINARY_MACS 10       /**< binary MACs of one decision (both bounds, shared hidden layers once, every copy) */
#define BNN_HIDDEN_MACS 6       /**< of which in the hidden layers */

/* memory of the generated tables and buffers (runtime code not included) */
#define BNN_MODEL_FLASH_BYTES 206
#define BNN_MODEL_RAM_BYTES 16

/** The generated model: pass to bnn_decide() / bnn_decide_q16(). */
extern const bnn_model_t bnn_model;

#ifdef __cplusplus
}
#endif

#endif /* BNN_MODEL_H */
