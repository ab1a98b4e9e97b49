/*
 * Parameter kernels of the training step: float32 master copies of the updated weight slices
 * and biases, their re-quantization into the int8 and int32 tensors that the forward and
 * backward kernels read, the SGD step with quantization-aware scaling, and channel gathering
 * for the activations that a partial weight update saves.
 */
#include "tc_train.h"

/* Round half away from zero, as TFLite rounds; no libm needed. */
TC_INLINE int32_t tc_train_round(float x)
{
    if (x >= 2147483520.0f) {
        return INT32_MAX;
    }
    if (x <= -2147483520.0f) {
        return INT32_MIN;
    }
    return x >= 0.0f ? (int32_t)(x + 0.5f) : -(int32_t)(-x + 0.5f);
}

void tc_train_master_from_weights(const tc_train_slice *s, const int8_t *weights, float *master)
{
    for (int32_t r = 0; r < s->rows; ++r) {
        const int8_t *row = weights + (size_t)r * s->cols;
        for (int32_t j = 0; j < s->count; ++j) {
            master[(size_t)r * s->count + j] = (float)row[s->index[j]];
        }
    }
}

void tc_train_materialize_weights(const tc_train_slice *s, const int8_t *frozen, const float *master,
                                  int8_t *weights)
{
    const size_t total = (size_t)s->rows * s->cols;
    if (s->count != s->cols) {
        for (size_t i = 0; i < total; ++i) {
            weights[i] = frozen[i];
        }
    }
    for (int32_t r = 0; r < s->rows; ++r) {
        int8_t *row = weights + (size_t)r * s->cols;
        for (int32_t j = 0; j < s->count; ++j) {
            row[s->index[j]] = (int8_t)tc_clamp_i32(tc_train_round(master[(size_t)r * s->count + j]), -127, 127);
        }
    }
}

void tc_train_master_from_bias(int32_t count, const int32_t *bias, float *master)
{
    for (int32_t c = 0; c < count; ++c) {
        master[c] = (float)bias[c];
    }
}

void tc_train_materialize_bias(int32_t count, const float *master, int32_t *bias)
{
    for (int32_t c = 0; c < count; ++c) {
        bias[c] = tc_train_round(master[c]);
    }
}

void tc_train_sgd_weights(const tc_train_slice *s, const float *grad, float *master, float lr)
{
    for (int32_t r = 0; r < s->rows; ++r) {
        for (int32_t j = 0; j < s->count; ++j) {
            const int32_t channel = s->rows_per_channel > 0 ? r / s->rows_per_channel : s->index[j];
            const size_t i = (size_t)r * s->count + j;
            master[i] -= lr * grad[i] * s->qas[channel];
        }
    }
}

void tc_train_sgd_bias(int32_t count, const float *grad, const float *qas, float *master, float lr)
{
    for (int32_t c = 0; c < count; ++c) {
        master[c] -= lr * grad[c] * qas[c];
    }
}

void tc_train_gather_channels(int32_t positions, int32_t channels, int32_t count, const int32_t *index,
                              int32_t divisor, const int8_t *x, int8_t *dst)
{
    for (int32_t p = 0; p < positions; ++p) {
        const int8_t *src = x + (size_t)p * channels;
        int8_t *out = dst + (size_t)p * count;
        for (int32_t j = 0; j < count; ++j) {
            out[j] = src[index[j] / divisor];
        }
    }
}

void tc_train_copy_input(int8_t *dst, const int8_t *src, int32_t count)
{
    if (dst != src) {
        for (int32_t i = 0; i < count; ++i) {
            dst[i] = src[i];
        }
    }
}

int32_t tc_train_argmax_s8(int32_t count, const int8_t *x)
{
    int32_t best = 0;
    for (int32_t i = 1; i < count; ++i) {
        if (x[i] > x[best]) {
            best = i;
        }
    }
    return best;
}
