/*
 * Softmax cross-entropy of the int8 logits. The logits are dequantized with their scale and zero
 * point (which cancels in softmax), so the loss is that of the real-valued network. exp and log are computed here by range
 * reduction and short polynomials (relative error below 1e-6), so that firmware needs no libm.
 */
#include "tc_train.h"

/* exp(x) for x <= 0: x = k ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-7 Taylor polynomial. */
static float tc_train_exp_nonpositive(float x)
{
    if (x < -87.0f) {
        return 0.0f;
    }
    const float ln2 = 0.69314718056f;
    int32_t k = (int32_t)(x / ln2 - 0.5f);
    float r = x - (float)k * ln2;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6.0f + r * (1.0f / 24.0f + r * (1.0f / 120.0f
              + r * (1.0f / 720.0f + r * (1.0f / 5040.0f)))))));
    while (k < 0) {
        p *= 0.5f;
        ++k;
    }
    return p;
}

/* log(x) for x >= 1: x = m 2^e with m in [1, 2), log(m) = 2 atanh((m - 1) / (m + 1)). */
static float tc_train_log_ge1(float x)
{
    int32_t e = 0;
    while (x >= 2.0f) {
        x *= 0.5f;
        ++e;
    }
    const float t = (x - 1.0f) / (x + 1.0f);
    const float t2 = t * t;
    const float series = 2.0f * t * (1.0f + t2 * (1.0f / 3.0f + t2 * (1.0f / 5.0f + t2 * (1.0f / 7.0f
                         + t2 * (1.0f / 9.0f + t2 * (1.0f / 11.0f))))));
    return (float)e * 0.69314718056f + series;
}

float tc_train_softmax_cross_entropy(int32_t count, const int8_t *logits, float scale, int32_t label,
                                     float *grad)
{
    int32_t max = logits[0];
    for (int32_t i = 1; i < count; ++i) {
        max = logits[i] > max ? logits[i] : max;
    }
    float sum = 0.0f;
    for (int32_t i = 0; i < count; ++i) {
        grad[i] = tc_train_exp_nonpositive(scale * (float)(logits[i] - max));
        sum += grad[i];
    }
    /* sum >= 1 because the largest logit contributes exp(0). */
    const float inv = 1.0f / sum;
    for (int32_t i = 0; i < count; ++i) {
        grad[i] = scale * (grad[i] * inv - (i == label ? 1.0f : 0.0f));
    }
    return tc_train_log_ge1(sum) - scale * (float)(logits[label] - max);
}
