/*
 * Int8 depthwise convolution with any depth multiplier, bit-exact with TFLM's reference
 * DEPTHWISE_CONV_2D. LiteRT's reference kernel also requantizes with double rounding (unlike its
 * FULLY_CONNECTED, which rounds once), so this kernel rounds twice in both modes.
 */
#include "tc_kernels.h"

tc_status tc_depthwise_conv2d_s8(const tc_conv_params *p, const int8_t *input, const int8_t *filter,
                                 const int32_t *bias, int8_t *output)
{
    const tc_requant_params *q = &p->q;
    const int32_t m_count = p->depth_multiplier;

    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                int8_t *out = output + (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
                for (int32_t ic = 0; ic < p->in_c; ++ic) {
                    for (int32_t m = 0; m < m_count; ++m) {
                        const int32_t oc = ic * m_count + m;
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
                                const int32_t in_val =
                                    input[(((size_t)b * p->in_h + iy) * p->in_w + ix) * p->in_c + ic];
                                const int32_t w_val = filter[((size_t)fy * p->filter_w + fx) * p->out_c + oc];
                                acc += w_val * (in_val + q->input_offset);
                            }
                        }
                        if (bias) {
                            acc += bias[oc];
                        }
                        const int32_t ch = q->per_channel ? oc : 0;
                        acc = tc_requantize_double(acc, q->multiplier[ch], q->shift[ch]) + q->output_offset;
                        out[oc] = (int8_t)tc_clamp_i32(acc, q->act_min, q->act_max);
                    }
                }
            }
        }
    }
    return TC_OK;
}
