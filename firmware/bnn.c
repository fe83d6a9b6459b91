/**
 * @file bnn.c
 * @brief bnnembed runtime: thermometer encoding and XNOR-popcount bound evaluation.
 */
#include "bnn.h"

#include <stddef.h>

typedef char bnn_float_is_ieee_binary32[(sizeof(float) == 4u) ? 1 : -1];

/** The bits of a float32 (reading the other member of a union is defined in C99; no <string.h>,
 *  which freestanding builds lack). */
typedef union {
    float f;
    uint32_t u;
} bnn_f32_bits;

/** Number of 32-bit words holding @p n bits. */
#define BNN_WORDS(n) (((uint32_t)(n) + 31u) >> 5)

static void bnn_clear(uint32_t *bits, uint32_t n_words)
{
    uint32_t i;
    for (i = 0; i < n_words; ++i) {
        bits[i] = 0u;
    }
}

int bnn_features_finite(const bnn_encoder_t *enc, const float *features)
{
    uint32_t c;
    for (c = 0; c < enc->n_features; ++c) {
        bnn_f32_bits v;
        v.f = features[c];
        /* all exponent bits set: an infinity (mantissa 0) or a NaN (mantissa not 0) */
        if ((v.u & 0x7F800000u) == 0x7F800000u) {
            return 0;
        }
    }
    return 1;
}

void bnn_encode(const bnn_encoder_t *enc, const float *features, uint32_t *bits)
{
    uint32_t f;
    bnn_clear(bits, BNN_WORDS(enc->n_bits));
    for (f = 0; f < enc->n_kept; ++f) {
        const float x = features[enc->feature_index[f]];
        uint32_t k;
        /* thresholds of a feature increase: the first failed compare ends the thermometer */
        for (k = enc->offsets[f]; k < enc->offsets[f + 1u]; ++k) {
            if (!(x >= enc->thresholds[k])) {
                break;
            }
            bits[k >> 5] |= 1u << (k & 31u);
        }
    }
}

void bnn_encode_q16(const bnn_encoder_t *enc, const int16_t *features, uint32_t *bits)
{
    uint32_t f;
    bnn_clear(bits, BNN_WORDS(enc->n_bits));
    for (f = 0; f < enc->n_kept; ++f) {
        const int16_t x = features[enc->feature_index[f]];
        uint32_t k;
        for (k = enc->offsets[f]; k < enc->offsets[f + 1u]; ++k) {
            if (x < enc->thresholds_q[k]) {
                break;
            }
            bits[k >> 5] |= 1u << (k & 31u);
        }
    }
}

/** 1 where single-precision float compares are instructions (Cortex-M4F/M7/M33 with an FPU,
 *  RISC-V F, x86): bnn_encode_u8() then compares float(x) as bnn_encode() does; elsewhere it
 *  compares the IEEE bits as integers (no soft-float call). */
#ifndef BNN_HAVE_FPU_SINGLE
#if (defined(__ARM_FP) && (__ARM_FP & 4)) || (defined(__riscv_flen) && __riscv_flen >= 32) || \
    defined(__x86_64__) || defined(__SSE__)
#define BNN_HAVE_FPU_SINGLE 1
#else
#define BNN_HAVE_FPU_SINGLE 0
#endif
#endif

#if !BNN_HAVE_FPU_SINGLE
/** The float32 bits of a whole number 0..255, with integer operations only: three halving steps
 *  move the leading one to bit 7 and set the exponent (x = 1 gives 0x3F800000, x = 255 gives
 *  0x437F0000). */
static uint32_t bnn_u8_float_bits(uint32_t x)
{
    uint32_t e = 134u; /* 127 + 7, for x in 128..255 */
    if (x == 0u) {
        return 0u;
    }
    if (x < 0x10u) {
        x <<= 4;
        e -= 4u;
    }
    if (x < 0x40u) {
        x <<= 2;
        e -= 2u;
    }
    if (x < 0x80u) {
        x <<= 1;
        e -= 1u;
    }
    return (e << 23) | ((x & 0x7Fu) << 16);
}
#endif

/** floor(x * 2^shift) clamped to the int16 range, for x in 0..255 (what bnn_encode_q16() expects). */
static int32_t bnn_u8_quantized(uint32_t x, int32_t shift)
{
    if (shift < 0) {
        return shift <= -8 ? 0 : (int32_t)(x >> (uint32_t)(-shift));
    }
    if (shift >= 15) {
        return x != 0u ? 32767 : 0;
    }
    x <<= (uint32_t)shift;
    return x > 32767u ? 32767 : (int32_t)x;
}

void bnn_encode_u8(const bnn_encoder_t *enc, const uint8_t *features, uint32_t *bits)
{
    uint32_t f;
    bnn_clear(bits, BNN_WORDS(enc->n_bits));
    for (f = 0; f < enc->n_kept; ++f) {
        const uint16_t col = enc->feature_index[f];
        uint32_t k;
        if (enc->thresholds != NULL) {
#if BNN_HAVE_FPU_SINGLE
            /* float(x) is exact: the very compare bnn_encode() makes */
            const float xf = (float)features[col];
            for (k = enc->offsets[f]; k < enc->offsets[f + 1u]; ++k) {
                if (!(xf >= enc->thresholds[k])) {
                    break;
                }
                bits[k >> 5] |= 1u << (k & 31u);
            }
#else
            /* no FPU: x >= t on the bits. A negative t (sign bit set) is below every x; for
             * t >= +0.0 the bits of non-negative floats order as the values do, +infinity above
             * them all. Thresholds are never NaN (the generator writes finite cut points) */
            const uint32_t xb = bnn_u8_float_bits(features[col]);
            for (k = enc->offsets[f]; k < enc->offsets[f + 1u]; ++k) {
                bnn_f32_bits t;
                t.f = enc->thresholds[k];
                if ((t.u >> 31) == 0u && xb < t.u) {
                    break;
                }
                bits[k >> 5] |= 1u << (k & 31u);
            }
#endif
        } else {
            const int32_t q = bnn_u8_quantized(features[col], enc->feature_shift != NULL ? enc->feature_shift[col] : 0);
            for (k = enc->offsets[f]; k < enc->offsets[f + 1u]; ++k) {
                if (q < enc->thresholds_q[k]) {
                    break;
                }
                bits[k >> 5] |= 1u << (k & 31u);
            }
        }
    }
}

/** Shift neuron @p j's output bit into @p word (bits enter at the top and move down: after 32
 *  neurons bit j sits at position j); the sign bit of (max_mismatch - mismatch) is 0 iff the
 *  neuron fires. */
#define BNN_SHIFT_IN(word, layer, j, mismatch)                                                     \
    ((word) = ((word) >> 1) |                                                                      \
              (~(uint32_t)((int32_t)(layer)->max_mismatch[(j)] - (int32_t)(mismatch)) & 0x80000000u))

/**
 * One hidden layer: output bit j is 1 iff neuron j fires. Output words are built in a register
 * and stored once per 32 neurons (padding bits stay 0). Inlined once per row shape that the
 * kernel distinguishes (BNN_ROW_DISPATCH), so the per-neuron loop carries no shape tests.
 * Kernels that define BNN_HAVE_ROW_PAIR count two rows per pass (register blocking: each input
 * word is loaded once for both neurons).
 */
BNN_ALWAYS_INLINE void bnn_layer_loop(const bnn_layer_t *layer, const uint32_t *in, uint32_t *out,
                                      const bnn_row_t row)
{
    const uint32_t *w = layer->weights;
    const uint32_t n_out = layer->n_out;
    uint32_t word = 0u;
    uint32_t j = 0u;
#ifdef BNN_HAVE_ROW_PAIR
    for (; j + 2u <= n_out; j += 2u) {
        uint32_t second;
        const uint32_t first = bnn_xor_popcount_pair(in, &w, row, &second); /* advances w by 2 rows */
        BNN_SHIFT_IN(word, layer, j, first);
        BNN_SHIFT_IN(word, layer, j + 1u, second);
        if ((j & 31u) == 30u) {
            out[j >> 5] = word;
            word = 0u;
        }
    }
#endif
    for (; j < n_out; ++j) {
        const uint32_t mismatch = bnn_xor_popcount_next(in, &w, row); /* advances w */
        BNN_SHIFT_IN(word, layer, j, mismatch);
        if ((j & 31u) == 31u) {
            out[j >> 5] = word;
            word = 0u;
        }
    }
    if ((n_out & 31u) != 0u) {
        out[n_out >> 5] = word >> (32u - (n_out & 31u));
    }
}

#ifndef BNN_MASK_CHUNK
/** Words of masked input a kernel call counts (a stack buffer of 4 x this many bytes). */
#define BNN_MASK_CHUNK 16u
#endif

/**
 * Masked mismatch count popcount((a XOR w) AND m) over @p n_words: the weight row is 0 outside
 * its mask, so this is popcount((a AND m) XOR w), which the selected kernel (its out-of-line
 * entry point, same contract as the reference on every core) counts on a copy of a AND m, up to
 * BNN_MASK_CHUNK words at a time.
 */
static uint32_t bnn_xor_popcount_masked(const uint32_t *a, const uint32_t *w, const uint32_t *m,
                                        uint32_t n_words)
{
    uint32_t buf[BNN_MASK_CHUNK];
    uint32_t acc = 0u;
    while (n_words != 0u) {
        const uint32_t k = (n_words < BNN_MASK_CHUNK) ? n_words : BNN_MASK_CHUNK;
        uint32_t i;
        for (i = 0; i < k; ++i) {
            buf[i] = a[i] & m[i];
        }
        acc += bnn_xor_popcount(buf, w, k);
        a += k;
        w += k;
        m += k;
        n_words -= k;
    }
    return acc;
}

/** A masked hidden layer: as bnn_layer_loop(), each row's count restricted to its mask row. */
static void bnn_layer_loop_masked(const bnn_layer_t *layer, const uint32_t *in, uint32_t *out)
{
    const uint32_t n_words = layer->n_words;
    const uint32_t n_out = layer->n_out;
    const uint32_t *w = layer->weights;
    const uint32_t *m = bnn_layer_mask(layer);
    uint32_t word = 0u;
    uint32_t j;
    for (j = 0; j < n_out; ++j) {
        const uint32_t mismatch = bnn_xor_popcount_masked(in, w, m, n_words);
        w += n_words;
        m += n_words;
        BNN_SHIFT_IN(word, layer, j, mismatch);
        if ((j & 31u) == 31u) {
            out[j >> 5] = word;
            word = 0u;
        }
    }
    if ((n_out & 31u) != 0u) {
        out[n_out >> 5] = word >> (32u - (n_out & 31u));
    }
}

static void bnn_layer_forward(const bnn_layer_t *layer, const uint32_t *in, uint32_t *out)
{
    bnn_row_t row;
    if (layer->layout == BNN_LAYOUT_MASKED) {
        bnn_layer_loop_masked(layer, in, out);
        return;
    }
    row = bnn_row(layer->n_words); /* per-row loop plan, once per layer */
#define BNN_LAYER_LOOP(r) bnn_layer_loop(layer, in, out, r)
    BNN_ROW_DISPATCH(row, BNN_LAYER_LOOP);
#undef BNN_LAYER_LOOP
}

/** Run a bound's hidden layers on @p bits; returns the last hidden layer's output bits (in
 *  @p scratch_a or @p scratch_b), or @p bits for a bound without hidden layers. */
static const uint32_t *bnn_bound_hidden(const bnn_bound_t *bound, const uint32_t *bits,
                                        uint32_t *scratch_a, uint32_t *scratch_b)
{
    const uint32_t *in = bits;
    uint32_t *out = scratch_a;
    uint32_t l;
    for (l = 0; l + 1u < bound->n_layers; ++l) {
        const bnn_layer_t *layer = &bound->layers[l];
#ifdef BNN_HAVE_COLUMNS
        if (layer->layout == BNN_LAYOUT_COLUMNS) { /* by columns: bnn_popcount_columns.h */
            bnn_layer_columns(layer->n_in, layer->n_out, layer->weights, in, out, bound->items);
        } else
#endif
        {
            bnn_layer_forward(layer, in, out);
        }
        in = out;
        out = (out == scratch_a) ? scratch_b : scratch_a;
    }
    return in;
}

/** Mismatch count of a bound's single output neuron on its input @p in; @p n_read receives the
 *  bits it reads. */
static int32_t bnn_output_mismatch(const bnn_bound_t *bound, const uint32_t *in, int32_t *n_read)
{
    const bnn_layer_t *last = &bound->layers[bound->n_layers - 1u];
    if (last->layout == BNN_LAYOUT_MASKED) {
        const uint32_t *m = bnn_layer_mask(last);
        uint32_t i;
        *n_read = 0;
        for (i = 0; i < last->n_words; ++i) {
            *n_read += (int32_t)bnn_popcount32_swar(m[i]);
        }
        return (int32_t)bnn_xor_popcount_masked(in, last->weights, m, last->n_words);
    }
    *n_read = (int32_t)last->n_in;
    return (int32_t)bnn_xor_popcount_inline(in, last->weights, last->n_words);
}

/** Does a bound answer at a mismatch count (summed over the copies)? */
static int bnn_output_fires(const bnn_bound_t *bound, int32_t mismatch)
{
    return (mismatch <= (int32_t)bound->layers[bound->n_layers - 1u].max_mismatch[0]) ? 1 : 0;
}

int32_t bnn_bound_score(const bnn_bound_t *bound, const uint32_t *bits, uint32_t *scratch_a,
                        uint32_t *scratch_b, int *answers)
{
    int32_t n_read;
    const int32_t mismatch = bnn_output_mismatch(
        bound, bnn_bound_hidden(bound, bits, scratch_a, scratch_b), &n_read);
    if (answers != NULL) {
        *answers = bnn_output_fires(bound, mismatch);
    }
    return n_read - mismatch;
}

/** Add both bounds' output mismatch counts on encoded bits to @p mis (the hidden layers run once
 *  for one network read both ways); @p n_read receives the bits each output neuron reads. */
static void bnn_add_mismatches(const bnn_model_t *model, const uint32_t *bits, int32_t mis[2],
                               int32_t n_read[2])
{
    const uint32_t *hidden = bnn_bound_hidden(model->upper, bits, model->scratch_a, model->scratch_b);
    mis[0] += bnn_output_mismatch(model->upper, hidden, &n_read[0]);
    if (!model->lower->shares_hidden || model->lower->n_layers != model->upper->n_layers) {
        /* a pair (or a hand-edited flag that does not fit): the lower bound's own hidden layers */
        hidden = bnn_bound_hidden(model->lower, bits, model->scratch_a, model->scratch_b);
    }
    mis[1] += bnn_output_mismatch(model->lower, hidden, &n_read[1]);
}

/** The decision from both bounds' summed mismatch counts over @p n_copies copies. */
static bnn_decision_t bnn_answer(const bnn_model_t *model, const int32_t mis[2],
                                 const int32_t n_read[2], int32_t n_copies, bnn_scores_t *scores)
{
    const int says_yes = bnn_output_fires(model->upper, mis[0]);
    const int says_no = bnn_output_fires(model->lower, mis[1]);
    if (scores != NULL) {
        scores->upper = n_copies * n_read[0] - mis[0];
        scores->lower = n_copies * n_read[1] - mis[1];
    }
    if (says_yes && !says_no) {
        return BNN_YES;
    }
    if (says_no && !says_yes) {
        return BNN_NO;
    }
    return BNN_UNKNOWN;
}

bnn_decision_t bnn_decide_bits(const bnn_model_t *model, const uint32_t *bits,
                               bnn_scores_t *scores)
{
    int32_t mis[2] = {0, 0};
    int32_t n_read[2];
    if (model->copies != NULL) {
        if (scores != NULL) {
            scores->upper = BNN_SCORE_NONE;
            scores->lower = BNN_SCORE_NONE;
        }
        return BNN_UNKNOWN; /* the copies are moved images, not moved bits */
    }
    bnn_add_mismatches(model, bits, mis, n_read);
    return bnn_answer(model, mis, n_read, 1, scores);
}

/** The features a decision reads. */
typedef enum { BNN_INPUT_FLOAT, BNN_INPUT_Q16, BNN_INPUT_U8 } bnn_input_kind_t;

/** Copy a row-major image of @p h x @p w values of @p elem bytes from @p src to @p dst, moved by
 *  (dy, dx), 0 outside: byte by byte (one loop for the float, int16 and uint8 inputs; all-zero
 *  bytes are 0.0f, 0 and 0), pointers formed only into rows that exist. */
static void bnn_shift_image(const uint8_t *src, uint8_t *dst, int32_t h, int32_t w, int32_t dy, int32_t dx,
                            uint32_t elem)
{
    const int32_t r0 = dy > 0 ? dy : 0, r1 = h + (dy < 0 ? dy : 0);
    const uint32_t row = (uint32_t)w * elem;
    const uint32_t lead = (uint32_t)(dx > 0 ? dx : 0) * elem;        /* zeros before the kept values */
    const uint32_t keep = (uint32_t)(w - (dx > 0 ? dx : -dx)) * elem; /* the values still in sight */
    const uint32_t skip = (uint32_t)(dx < 0 ? -dx : 0) * elem;        /* source values moved out */
    int32_t r;
    for (r = 0; r < h; ++r, dst += row) {
        uint32_t c = 0u;
        if (r >= r0 && r < r1) {
            const uint8_t *in = src + (uint32_t)(r - dy) * row + skip;
            for (; c < lead; ++c) {
                dst[c] = 0u;
            }
            for (; c < lead + keep; ++c) {
                dst[c] = in[c - lead];
            }
        }
        for (; c < row; ++c) {
            dst[c] = 0u;
        }
    }
}

/** Encode one copy of the features (moved by copy @p i's shift, or as given without copies). */
static void bnn_encode_copy(const bnn_model_t *model, bnn_input_kind_t kind, const void *features,
                            uint32_t i)
{
    const bnn_copies_t *cp = model->copies;
    const void *x = features;
    if (cp != NULL && cp->n_copies > 0u && (cp->shifts[2u * i] != 0 || cp->shifts[2u * i + 1u] != 0)) {
        uint8_t *dst = cp->shifted; /* floats, int16 or bytes: the scratch is sized and aligned for floats */
        const uint32_t elem = (kind == BNN_INPUT_FLOAT) ? 4u : (kind == BNN_INPUT_Q16) ? 2u : 1u;
        bnn_shift_image((const uint8_t *)features, dst, cp->height, cp->width, cp->shifts[2u * i],
                        cp->shifts[2u * i + 1u], elem);
        x = dst;
    }
    if (kind == BNN_INPUT_FLOAT) {
        bnn_encode(model->encoder, (const float *)x, model->input_bits);
    } else if (kind == BNN_INPUT_Q16) {
        bnn_encode_q16(model->encoder, (const int16_t *)x, model->input_bits);
    } else {
        bnn_encode_u8(model->encoder, (const uint8_t *)x, model->input_bits);
    }
}

/** Encode and run the bounds on every copy (one without copies), summing the output counts. */
static bnn_decision_t bnn_decide_input(const bnn_model_t *model, bnn_input_kind_t kind,
                                       const void *features, bnn_scores_t *scores)
{
    int32_t mis[2] = {0, 0};
    int32_t n_read[2];
    /* no copies (or a hand-made table of none): the input as given, once */
    const uint32_t n_copies = (model->copies != NULL && model->copies->n_copies > 0u) ? model->copies->n_copies : 1u;
    uint32_t i;
    for (i = 0; i < n_copies; ++i) {
        bnn_encode_copy(model, kind, features, i);
        bnn_add_mismatches(model, model->input_bits, mis, n_read);
    }
    return bnn_answer(model, mis, n_read, (int32_t)n_copies, scores);
}

bnn_decision_t bnn_decide(const bnn_model_t *model, const float *features, bnn_scores_t *scores)
{
    if (model->encoder->thresholds == NULL) {
        return BNN_UNKNOWN;
    }
    if (!bnn_features_finite(model->encoder, features)) {
        if (scores != NULL) {
            scores->upper = BNN_SCORE_NONE;
            scores->lower = BNN_SCORE_NONE;
        }
        return BNN_INVALID;
    }
    return bnn_decide_input(model, BNN_INPUT_FLOAT, features, scores);
}

bnn_decision_t bnn_decide_q16(const bnn_model_t *model, const int16_t *features,
                              bnn_scores_t *scores)
{
    if (model->encoder->thresholds_q == NULL) {
        return BNN_UNKNOWN;
    }
    return bnn_decide_input(model, BNN_INPUT_Q16, features, scores);
}

bnn_decision_t bnn_decide_u8(const bnn_model_t *model, const uint8_t *features, bnn_scores_t *scores)
{
    if (model->encoder->thresholds == NULL && model->encoder->thresholds_q == NULL) {
        return BNN_UNKNOWN;
    }
    return bnn_decide_input(model, BNN_INPUT_U8, features, scores);
}

const char *bnn_decision_name(bnn_decision_t decision)
{
    switch (decision) {
#define BNN_DECISION_CASE(name, value, text) \
    case BNN_##name:                         \
        return text;
        BNN_DECISIONS(BNN_DECISION_CASE)
#undef BNN_DECISION_CASE
    default:
        return "?";
    }
}
