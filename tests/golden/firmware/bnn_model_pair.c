/*
 * bnn_model.c
 * bnnembed <version> — generated — do not edit
 * model hash: 0123456789abcdef
 * input: 3 features (2 kept) -> 3 thermometer bits, float encoding
 * upper bound (answers yes): 3 -> 2 -> 1, tau = 2
 * lower bound (answers no): 3 -> 2 -> 1, tau = 1
 */
#include "bnn_model.h"

#include <stddef.h>

/* ------------------------------------------------------------------------------------------
 * Input encoding: 2 of 3 features -> 3 thermometer bits.
 * Bit k of a feature is 1 iff x >= its k-th threshold (float compare).
 * ------------------------------------------------------------------------------------------ */

/* raw column of each kept feature */
static const uint16_t bnn_feature_index[BNN_N_KEPT] = {
    0, 2,
};

/* thermometer bits of kept feature f: offsets[f] .. offsets[f + 1] - 1 */
static const uint16_t bnn_offsets[BNN_N_KEPT + 1] = {
    0, 2, 3,
};

/* float32 thresholds, exact hexadecimal literals */
static const float bnn_thresholds[BNN_N_BITS] = {
    /* [0] column 0 "alpha": 0.5, 1.25 */
    0x1p-1f, 0x1.4p+0f,
    /* [1] column 2 "gamma * / beta": -3 */
    -0x1.8p+1f,
};

static const bnn_encoder_t bnn_encoder = {
    .n_features = BNN_N_FEATURES,
    .n_kept = BNN_N_KEPT,
    .n_bits = BNN_N_BITS,
    .feature_index = bnn_feature_index,
    .offsets = bnn_offsets,
    .thresholds = bnn_thresholds,
    .thresholds_q = NULL,
    .feature_shift = NULL,
};

#if BNN_POPCOUNT_STRATEGY != BNN_POPCOUNT_COLUMNS
#error "this model stores its hidden layers by columns: build it with -DBNN_POPCOUNT_STRATEGY=BNN_POPCOUNT_COLUMNS (or generate it for the board's kernel)"
#endif

/* scratch of the layers stored by columns: the bit offsets of the input's minority side */
static uint32_t bnn_column_items[1];

/* ------------------------------------------------------------------------------------------
 * upper bound (answers yes): 3 -> 2 -> 1, tau = 2, 8 binary MACs
 * ------------------------------------------------------------------------------------------ */

/* upper layer 0 by columns: 3 -> 2; per group of 32 neurons, 3 column words
 * (bit l of word i = the weight bit, 1 = -1, of neuron 32 g + l for input bit i), then the threshold planes
 * of the ones side and of the zeros side (2 words each; bnnembed/render/columns.py);
 * neuron j fires iff popcount(a XOR w_j) <= n_in - T_j (T in 1..2) */
static const uint32_t bnn_upper_l0_weights[7] = {
    /* neurons 0..1: columns */
    0x00000001u, 0x00000002u, 0x00000002u,
    /* neurons 0..1: planes, ones side */
    0xfffffffcu, 0x00000003u,
    /* neurons 0..1: planes, zeros side */
    0xfffffffcu, 0xfffffffdu,
};

/* upper layer 1: 2 -> 1 (output: the score); 1 words per row, bit 1 = -1 */
static const uint32_t bnn_upper_l1_weights[1 * 1] = {
    /* neuron 0 */
    0x00000002u,
};

/* upper layer 1: neuron fires iff popcount(a XOR w) <= n_in - T (T in 2..2) */
static const int16_t bnn_upper_l1_max_mismatch[1] = {
    0,
};

static const bnn_layer_t bnn_upper_layers[2] = {
    {.n_in = 3, .n_out = 2, .n_words = 1, .layout = BNN_LAYOUT_COLUMNS, .weights = bnn_upper_l0_weights,
     .max_mismatch = NULL},
    {.n_in = 2, .n_out = 1, .n_words = 1, .weights = bnn_upper_l1_weights,
     .max_mismatch = bnn_upper_l1_max_mismatch},
};

static const bnn_bound_t bnn_upper = {.n_layers = 2, .layers = bnn_upper_layers, .items = bnn_column_items};

/* ------------------------------------------------------------------------------------------
 * lower bound (answers no): 3 -> 2 -> 1, tau = 1, 8 binary MACs
 * ------------------------------------------------------------------------------------------ */

/* lower layer 0 by columns: 3 -> 2; per group of 32 neurons, 3 column words
 * (bit l of word i = the weight bit, 1 = -1, of neuron 32 g + l for input bit i), then the threshold planes
 * of the ones side and of the zeros side (2 words each; bnnembed/render/columns.py);
 * neuron j fires iff popcount(a XOR w_j) <= n_in - T_j (T in 1..2) */
static const uint32_t bnn_lower_l0_weights[7] = {
    /* neurons 0..1: columns */
    0x00000002u, 0x00000003u, 0x00000000u,
    /* neurons 0..1: planes, ones side */
    0xffffffffu, 0x00000001u,
    /* neurons 0..1: planes, zeros side */
    0xffffffffu, 0xfffffffcu,
};

/* lower layer 1: 2 -> 1 (output: the score); 1 words per row, bit 1 = -1 */
static const uint32_t bnn_lower_l1_weights[1 * 1] = {
    /* neuron 0 */
    0x00000001u,
};

/* lower layer 1: neuron fires iff popcount(a XOR w) <= n_in - T (T in 1..1) */
static const int16_t bnn_lower_l1_max_mismatch[1] = {
    1,
};

static const bnn_layer_t bnn_lower_layers[2] = {
    {.n_in = 3, .n_out = 2, .n_words = 1, .layout = BNN_LAYOUT_COLUMNS, .weights = bnn_lower_l0_weights,
     .max_mismatch = NULL},
    {.n_in = 2, .n_out = 1, .n_words = 1, .weights = bnn_lower_l1_weights,
     .max_mismatch = bnn_lower_l1_max_mismatch},
};

static const bnn_bound_t bnn_lower = {.n_layers = 2, .layers = bnn_lower_layers, .items = bnn_column_items};

/* ------------------------------------------------------------------------------------------
 * Static scratch memory, sized for this model (16 bytes)
 * ------------------------------------------------------------------------------------------ */
static uint32_t bnn_input_bits[BNN_INPUT_WORDS];
static uint32_t bnn_scratch_a[BNN_HIDDEN_WORDS];
static uint32_t bnn_scratch_b[BNN_HIDDEN_WORDS];

const bnn_model_t bnn_model = {
    .encoder = &bnn_encoder,
    .upper = &bnn_upper,
    .lower = &bnn_lower,
    .input_bits = bnn_input_bits,
    .scratch_a = bnn_scratch_a,
    .scratch_b = bnn_scratch_b,
};
