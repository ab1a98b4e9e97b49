/*
 * Int8 convolution and matrix product of ONNX models (QLinearConv, ConvInteger, QLinearMatMul,
 * MatMulInteger, QGemm and their QDQ forms). Both subtract the input and weight zero points, add
 * the int32 bias, and either store the int32 accumulator or requantize it the way ONNX Runtime's
 * CPU provider does: float(acc) * scale, clamped, rounded half to even, plus the zero point.
 */
#include "tc_onnx_kernels.h"

static void tc_onnx_store(const tc_onnx_requant *q, int32_t channel, int32_t acc, void *output, size_t index)
{
    if (q->int32_output) {
        ((int32_t *)output)[index] = acc;
        return;
    }
    const float scale = q->scale[q->per_channel ? channel : 0];
    ((int8_t *)output)[index] =
        (int8_t)tc_onnx_quantize_float((float)acc * scale, q->output_zero_point, q->act_min, q->act_max);
}

tc_status tc_onnx_conv_s8(const tc_onnx_conv_params *p, const int8_t *input, const int8_t *filter,
                          const int32_t *bias, void *output)
{
    if (p->groups <= 0 || p->in_c % p->groups != 0 || p->out_c % p->groups != 0) {
        return TC_ERROR_ARGUMENT;
    }
    const int32_t group_in_c = p->in_c / p->groups;
    const int32_t group_out_c = p->out_c / p->groups;
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    const int32_t group = oc / group_out_c;
                    const int32_t w_zero = p->weight_zero_point[p->weight_zero_point_per_channel ? oc : 0];
                    const int8_t *w = filter + (size_t)oc * p->filter_h * p->filter_w * group_in_c;
                    int32_t acc = 0;
                    for (int32_t fy = 0; fy < p->filter_h; ++fy) {
                        const int32_t iy = in_y0 + fy * p->dilation_h;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;  /* padding holds the input zero point, which contributes 0 */
                        }
                        for (int32_t fx = 0; fx < p->filter_w; ++fx) {
                            const int32_t ix = in_x0 + fx * p->dilation_w;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            const int8_t *in = input + (((size_t)b * p->in_h + iy) * p->in_w + ix) * p->in_c
                                               + (size_t)group * group_in_c;
                            const int8_t *wk = w + ((size_t)fy * p->filter_w + fx) * group_in_c;
                            for (int32_t ic = 0; ic < group_in_c; ++ic) {
                                acc += ((int32_t)wk[ic] - w_zero) * ((int32_t)in[ic] - p->input_zero_point);
                            }
                        }
                    }
                    if (bias) {
                        acc += bias[oc];
                    }
                    tc_onnx_store(&p->q, oc, acc, output,
                                  (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc);
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_onnx_matmul_s8(const tc_onnx_matmul_params *p, const int8_t *a, const int8_t *b,
                            const int32_t *bias, void *output)
{
    for (int32_t batch = 0; batch < p->batches; ++batch) {
        const int8_t *a_mat = a + p->a_offsets[batch];
        const int8_t *b_mat = b + p->b_offsets[batch];
        for (int32_t i = 0; i < p->m; ++i) {
            for (int32_t j = 0; j < p->n; ++j) {
                const int32_t b_zero = p->b_zero_point[p->b_zero_point_per_column ? j : 0];
                int32_t acc = 0;
                for (int32_t k = 0; k < p->k; ++k) {
                    acc += ((int32_t)a_mat[(size_t)i * p->k + k] - p->a_zero_point)
                           * ((int32_t)b_mat[(size_t)k * p->n + j] - b_zero);
                }
                if (bias) {
                    acc += bias[j];
                }
                tc_onnx_store(&p->q, j, acc, output, ((size_t)batch * p->m + i) * p->n + j);
            }
        }
    }
    return TC_OK;
}
