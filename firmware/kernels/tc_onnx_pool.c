/*
 * Int8 max and average pooling of ONNX models, NHWC, with explicit padding and dilation.
 * Max pooling takes the maximum of the raw values (requantization is monotonic) and rescales it
 * when the output's quantization differs. Average pooling follows ONNX Runtime: QLinearAveragePool
 * sums dequantized floats and divides by the window size; QLinearGlobalAveragePool (integer_sum)
 * sums integers and scales once by input_scale / (output_scale * count).
 */
#include "tc_onnx_kernels.h"

tc_status tc_onnx_max_pool_s8(const tc_onnx_pool_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                for (int32_t c = 0; c < p->channels; ++c) {
                    int32_t max = INT32_MIN;
                    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
                        const int32_t iy = in_y0 + fy * p->dilation_h;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
                            const int32_t ix = in_x0 + fx * p->dilation_w;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            const int32_t v = input[(((size_t)b * p->in_h + iy) * p->in_w + ix) * p->channels + c];
                            max = v > max ? v : max;
                        }
                    }
                    if (max == INT32_MIN) {
                        return TC_ERROR_ARGUMENT;  /* a window lies entirely in the padding */
                    }
                    int32_t out;
                    if (p->rescale == 1.0f) {
                        out = tc_clamp_i32(max - p->input_zero_point + p->output_zero_point, p->act_min, p->act_max);
                    } else {
                        out = tc_onnx_quantize_float((float)(max - p->input_zero_point) * p->rescale,
                                                     p->output_zero_point, p->act_min, p->act_max);
                    }
                    output[(((size_t)b * p->out_h + oy) * p->out_w + ox) * p->channels + c] = (int8_t)out;
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_onnx_avg_pool_s8(const tc_onnx_pool_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                for (int32_t c = 0; c < p->channels; ++c) {
                    int32_t int_sum = 0;
                    float float_sum = 0.0f;
                    int32_t count = 0;
                    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
                        const int32_t iy = in_y0 + fy * p->dilation_h;
                        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
                            const int32_t ix = in_x0 + fx * p->dilation_w;
                            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                                /* A padded position counts only with count_include_pad and only inside
                                   the padded input, as ONNX defines it. */
                                const int in_padded = iy >= -p->pad_top && ix >= -p->pad_left
                                                      && iy < p->in_h + p->pad_top && ix < p->in_w + p->pad_left;
                                count += p->count_include_pad && in_padded ? 1 : 0;
                                continue;
                            }
                            const int32_t v = (int32_t)input[(((size_t)b * p->in_h + iy) * p->in_w + ix) * p->channels + c]
                                              - p->input_zero_point;
                            int_sum += v;
                            float_sum += (float)v * p->input_scale;
                            ++count;
                        }
                    }
                    if (count == 0) {
                        return TC_ERROR_ARGUMENT;
                    }
                    float value;
                    if (p->integer_sum) {
                        value = (float)int_sum * (p->input_scale / (p->output_scale * (float)count));
                    } else {
                        value = float_sum / (float)count / p->output_scale;
                    }
                    output[(((size_t)b * p->out_h + oy) * p->out_w + ox) * p->channels + c] =
                        (int8_t)tc_onnx_quantize_float(value, p->output_zero_point, p->act_min, p->act_max);
                }
            }
        }
    }
    return TC_OK;
}
