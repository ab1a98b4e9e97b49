/*
 * Int8 depthwise convolution (depth multiplier 1) that overwrites its input with its output, one
 * channel at a time, with a scratch copy of one input channel plane. The arithmetic, including
 * the order in which the accumulator sums the taps, is that of tc_depthwise_conv2d_s8, so the
 * two kernels give the same bytes.
 */
#include "tc_kernels_inplace.h"

tc_status tc_depthwise_conv2d_s8_inplace(const tc_conv_params *p, int8_t *data, const int8_t *filter,
                                         const int32_t *bias, int8_t *scratch)
{
    const tc_requant_params *q = &p->q;
    const int32_t channels = p->in_c;
    const size_t in_plane = (size_t)p->in_h * (size_t)p->in_w;
    const size_t out_plane = (size_t)p->out_h * (size_t)p->out_w;

    if (p->depth_multiplier != 1 || p->out_c != channels || out_plane > in_plane) {
        return TC_ERROR_ARGUMENT;
    }

    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_batch = data + (size_t)b * in_plane * (size_t)channels;
        int8_t *out_batch = data + (size_t)b * out_plane * (size_t)channels;
        for (int32_t c = 0; c < channels; ++c) {
            /* Save channel c before its outputs overwrite it. */
            for (size_t i = 0; i < in_plane; ++i) {
                scratch[i] = in_batch[i * (size_t)channels + (size_t)c];
            }
            const int32_t ch = q->per_channel ? c : 0;
            for (int32_t oy = 0; oy < p->out_h; ++oy) {
                const int32_t in_y0 = oy * p->stride_h - p->pad_top;
                for (int32_t ox = 0; ox < p->out_w; ++ox) {
                    const int32_t in_x0 = ox * p->stride_w - p->pad_left;
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
                            const int32_t in_val = scratch[(size_t)iy * p->in_w + ix];
                            const int32_t w_val = filter[((size_t)fy * p->filter_w + fx) * channels + c];
                            acc += w_val * (in_val + q->input_offset);
                        }
                    }
                    if (bias) {
                        acc += bias[c];
                    }
                    acc = tc_requantize_double(acc, q->multiplier[ch], q->shift[ch]) + q->output_offset;
                    out_batch[((size_t)oy * p->out_w + ox) * channels + c] =
                        (int8_t)tc_clamp_i32(acc, q->act_min, q->act_max);
                }
            }
        }
    }
    return TC_OK;
}
