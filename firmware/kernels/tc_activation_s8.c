/*
 * Element-wise int8 maps with one requantization each: QUANTIZE between two int8 scales, RELU,
 * RELU6, RELU_N1_TO_1 and LEAKY_RELU. Values at or above the input zero point are rescaled by
 * `multiplier`, values below it by `alpha_multiplier`; the result is offset by the output zero
 * point and clamped to the activation range. Both reference interpreters round twice in these
 * requantizations, so the kernel does in either mode.
 *
 * tc_clamp_s8 is TFLM's RELU6: it clamps the raw input values between the quantized 0 and 6 and
 * ignores the output quantization.
 */
#include "tc_kernels.h"

tc_status tc_requantize_s8(const tc_elementwise_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = (int32_t)input[i] - p->input_zero_point;
        const int32_t y = x >= 0 ? tc_requantize_double(x, p->multiplier, p->shift)
                                 : tc_requantize_double(x, p->alpha_multiplier, p->alpha_shift);
        output[i] = (int8_t)tc_clamp_i32(y + p->output_zero_point, p->act_min, p->act_max);
    }
    return TC_OK;
}

tc_status tc_clamp_s8(const tc_elementwise_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = (int8_t)tc_clamp_i32(input[i], p->act_min, p->act_max);
    }
    return TC_OK;
}
