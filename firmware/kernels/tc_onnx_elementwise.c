/*
 * Element-wise and axis kernels of ONNX models: Softmax (computed in float), Concat with
 * per-input rescaling, requantization with a clamp (Relu, Clip, uint8 <-> int8), QuantizeLinear
 * and DequantizeLinear at float graph boundaries.
 */
#include <math.h>
#include <string.h>

#include "tc_onnx_kernels.h"

tc_status tc_onnx_softmax_s8(const tc_onnx_softmax_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t o = 0; o < p->outer; ++o) {
        for (int32_t i = 0; i < p->inner; ++i) {
            const int8_t *in = input + (size_t)o * p->axis_size * p->inner + i;
            int8_t *out = output + (size_t)o * p->axis_size * p->inner + i;
            int32_t max = INT8_MIN;
            for (int32_t a = 0; a < p->axis_size; ++a) {
                max = in[(size_t)a * p->inner] > max ? in[(size_t)a * p->inner] : max;
            }
            const float max_value = (float)(max - p->input_zero_point) * p->input_scale;
            float sum = 0.0f;
            for (int32_t a = 0; a < p->axis_size; ++a) {
                const float x = (float)(in[(size_t)a * p->inner] - p->input_zero_point) * p->input_scale;
                sum += expf(x - max_value);
            }
            /* The exponentials are computed again instead of kept, so the kernel needs no scratch. */
            for (int32_t a = 0; a < p->axis_size; ++a) {
                const float x = (float)(in[(size_t)a * p->inner] - p->input_zero_point) * p->input_scale;
                const float y = expf(x - max_value) / sum;
                out[(size_t)a * p->inner] =
                    (int8_t)tc_onnx_quantize_float(y / p->output_scale, p->output_zero_point, p->act_min, p->act_max);
            }
        }
    }
    return TC_OK;
}

tc_status tc_onnx_concat_s8(const tc_onnx_concat_params *p, int8_t *output, const int8_t *in0, const int8_t *in1,
                            const int8_t *in2, const int8_t *in3, const int8_t *in4, const int8_t *in5,
                            const int8_t *in6, const int8_t *in7)
{
    const int8_t *inputs[TC_ONNX_CONCAT_MAX_INPUTS] = { in0, in1, in2, in3, in4, in5, in6, in7 };
    if (p->num_inputs < 1 || p->num_inputs > TC_ONNX_CONCAT_MAX_INPUTS) {
        return TC_ERROR_ARGUMENT;
    }
    size_t out_index = 0;
    for (int32_t o = 0; o < p->outer; ++o) {
        for (int32_t n = 0; n < p->num_inputs; ++n) {
            const int8_t *in = inputs[n] + (size_t)o * p->inner[n];
            if (p->identity[n]) {
                memcpy(output + out_index, in, (size_t)p->inner[n]);
            } else {
                for (int32_t i = 0; i < p->inner[n]; ++i) {
                    output[out_index + i] = (int8_t)tc_onnx_quantize_float(
                        (float)(in[i] - p->input_zero_point[n]) * p->rescale[n], p->output_zero_point, INT8_MIN, INT8_MAX);
                }
            }
            out_index += (size_t)p->inner[n];
        }
    }
    return TC_OK;
}

tc_status tc_onnx_requantize(const tc_onnx_requantize_params *p, const void *input, void *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = p->input_unsigned ? (int32_t)((const uint8_t *)input)[i] : (int32_t)((const int8_t *)input)[i];
        int32_t y;
        if (p->identity) {
            y = tc_clamp_i32(x - p->input_zero_point + p->output_zero_point, p->act_min, p->act_max);
        } else {
            y = tc_onnx_quantize_float((float)(x - p->input_zero_point) * p->rescale, p->output_zero_point,
                                       p->act_min, p->act_max);
        }
        if (p->output_unsigned) {
            ((uint8_t *)output)[i] = (uint8_t)y;
        } else {
            ((int8_t *)output)[i] = (int8_t)y;
        }
    }
    return TC_OK;
}

tc_status tc_onnx_quantize(const tc_onnx_quant_params *p, const float *input, void *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        /* Division, not a multiply by the reciprocal: ONNX defines x / scale, and they differ in the last bit. */
        const int32_t y = tc_onnx_quantize_float(input[i] / p->scale, p->zero_point, p->act_min, p->act_max);
        if (p->is_unsigned) {
            ((uint8_t *)output)[i] = (uint8_t)y;
        } else {
            ((int8_t *)output)[i] = (int8_t)y;
        }
    }
    return TC_OK;
}

tc_status tc_onnx_dequantize(const tc_onnx_quant_params *p, const void *input, float *output)
{
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t x = p->is_unsigned ? (int32_t)((const uint8_t *)input)[i] : (int32_t)((const int8_t *)input)[i];
        output[i] = (float)(x - p->zero_point) * p->scale;
    }
    return TC_OK;
}
