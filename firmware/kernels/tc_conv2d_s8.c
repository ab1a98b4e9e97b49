/*
 * Int8 2-D convolution, grouped when filter_in_c < in_c; bit-exact with the reference CONV_2D of
 * TFLM and of LiteRT, which both round requantization twice.
 */
#include "tc_kernels.h"

tc_status tc_conv2d_s8(const tc_conv_params *p, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, int8_t *output)
{
    const tc_requant_params *q = &p->q;
    const int32_t groups = p->in_c / p->filter_in_c;
    const int32_t filters_per_group = p->out_c / groups;

    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    const int32_t group = oc / filters_per_group;
                    const int8_t *w = filter + (size_t)oc * p->filter_h * p->filter_w * p->filter_in_c;
                    int32_t acc = 0;
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
                            const int8_t *in = input + (((size_t)b * p->in_h + iy) * p->in_w + ix) * p->in_c
                                               + (size_t)group * p->filter_in_c;
                            const int8_t *wk = w + ((size_t)fy * p->filter_w + fx) * p->filter_in_c;
                            for (int32_t ic = 0; ic < p->filter_in_c; ++ic) {
                                acc += (int32_t)wk[ic] * ((int32_t)in[ic] + q->input_offset);
                            }
                        }
                    }
                    if (bias) {
                        acc += bias[oc];
                    }
                    const int32_t ch = q->per_channel ? oc : 0;
                    acc = tc_requantize_double(acc, q->multiplier[ch], q->shift[ch]) + q->output_offset;
                    output[(((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c + oc] =
                        (int8_t)tc_clamp_i32(acc, q->act_min, q->act_max);
                }
            }
        }
    }
    return TC_OK;
}
