/*
 * QUANTIZE from float32 to int8 and DEQUANTIZE from int8 to float32, as both reference
 * interpreters compute them. QUANTIZE saturates q = zero_point + round(x / scale), with a float
 * division and rounding half away from zero. DEQUANTIZE rounds x = scale * (q - zero_point) once
 * to float. No libm call is needed because the rounding splits the float into integer and
 * fraction parts.
 */
#include "tc_kernels.h"

/* Round half away from zero. The caller keeps |x| far below 2^31, so the int32 conversion is defined. */
static int32_t round_half_away(float x)
{
    const int32_t t = (int32_t)x;
    const float frac = x - (float)t;
    if (frac >= 0.5f) {
        return t + 1;
    }
    if (frac <= -0.5f) {
        return t - 1;
    }
    return t;
}

tc_status tc_quantize_f32_s8(const tc_affine_params *p, const float *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        float q = input[i] / p->scale;
        /* Anything beyond +-1000 steps saturates once the zero point is added, and the bound keeps
           the conversion to int32 defined. NaN becomes the most negative value. */
        if (!(q > -1000.0f)) {
            q = -1000.0f;
        } else if (q > 1000.0f) {
            q = 1000.0f;
        }
        output[i] = (int8_t)tc_clamp_i32(round_half_away(q) + p->zero_point, INT8_MIN, INT8_MAX);
    }
    return TC_OK;
}

tc_status tc_dequantize_s8_f32(const tc_affine_params *p, const int8_t *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        /* The reference multiplies in double and rounds to float. The exact product of a float
           and an integer below 2^9 in magnitude fits a double, so that is one rounding of the
           exact product, which is what a float multiplication gives too. */
        output[i] = p->scale * (float)((int32_t)input[i] - p->zero_point);
    }
    return TC_OK;
}
