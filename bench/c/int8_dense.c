/**
 * @file int8_dense.c
 * @brief int8 dense reference: per layer int8 x int8 -> int32 MAC, bias, ReLU, requantization.
 *
 * The scheme of TensorFlow Lite Micro's reference int8 kernels, hand-written without SIMD:
 * activations are symmetric int8 with one scale per layer, weights symmetric int8 with one scale
 * per output channel; the int32 accumulator is rescaled to the next layer's int8 scale by a
 * per-channel fixed-point multiplier (int32 multiplier, right shift, round half up).
 * The last layer's int32 accumulator is the logit's sign: yes iff > 0.
 */
#include "dense_model.h"

static int8_t q_buf_a[DENSE_MAX_WIDTH];
static int8_t q_buf_b[DENSE_MAX_WIDTH];

static int8_t clamp_q(int32_t v)
{
    return (int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
}

int dense_predict(const float *x)
{
    uint32_t l, i, j;
    int8_t *in = q_buf_a;
    int8_t *out = q_buf_b;
    int32_t acc = 0;
    /* input quantization: q = round(x * DENSE_IN_SCALE_INV), clamped */
    for (i = 0; i < DENSE_N_IN; ++i) {
        const float v = x[i] * DENSE_IN_SCALE_INV;
        in[i] = clamp_q((int32_t)(v >= 0.0f ? v + 0.5f : v - 0.5f));
    }
    for (l = 0; l < DENSE_N_LAYERS; ++l) {
        const dense_layer_t *L = &dense_layers[l];
        const int8_t *w = L->weights;
        const int last = (l + 1u == DENSE_N_LAYERS);
        for (j = 0; j < L->n_out; ++j) {
            acc = L->bias[j];
            for (i = 0; i < L->n_in; ++i) {
                acc += (int32_t)in[i] * (int32_t)w[i];
            }
            w += L->n_in;
            if (!last) {
                const int64_t r = (int64_t)(acc > 0 ? acc : 0) * L->multiplier[j];
                const int s = L->shift[j];
                out[j] = clamp_q((int32_t)((r + ((int64_t)1 << (s - 1))) >> s));
            }
        }
        if (!last) {
            int8_t *t = in;
            in = out;
            out = t;
        }
    }
    return acc > 0 ? 1 : 0;
}
