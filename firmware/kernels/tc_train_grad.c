/*
 * Backward kernels of the training step: gradient masks of clamped int8 outputs, input gradients
 * of conv, depthwise and fully connected layers (transposed convolutions, written as scatters over
 * the forward loops), weight gradients of the selected slices, bias gradients, and the backward
 * passes of ADD and pooling. Gradients are float32 in integer units of each tensor; see tc_train.h.
 */
#include "tc_train.h"

static void tc_train_zero(float *x, size_t count)
{
    for (size_t i = 0; i < count; ++i) {
        x[i] = 0.0f;
    }
}

void tc_train_pack_mask(int32_t count, int32_t act_min, int32_t act_max, const int8_t *y, uint8_t *bits)
{
    for (int32_t i = 0; i < count; i += 8) {
        uint8_t byte = 0;
        for (int32_t b = 0; b < 8 && i + b < count; ++b) {
            const int32_t v = y[i + b];
            byte |= (uint8_t)((v > act_min && v < act_max) ? 1u << b : 0u);
        }
        bits[i / 8] = byte;
    }
}

TC_INLINE int tc_train_bit(const uint8_t *bits, int32_t i)
{
    return (bits[i >> 3] >> (i & 7)) & 1;
}

void tc_train_mask_scale(const tc_train_mask_params *p, const uint8_t *bits, float *grad)
{
    for (int32_t i = 0; i < p->count; ++i) {
        if (!tc_train_bit(bits, i)) {
            grad[i] = 0.0f;
        } else if (p->scale) {
            grad[i] *= p->scale[i % p->channels];
        }
    }
}

void tc_train_bias_grad(int32_t positions, int32_t channels, const float *grad, float *grad_bias)
{
    tc_train_zero(grad_bias, (size_t)channels);
    for (int32_t p = 0; p < positions; ++p) {
        const float *g = grad + (size_t)p * channels;
        for (int32_t c = 0; c < channels; ++c) {
            grad_bias[c] += g[c];
        }
    }
}

tc_status tc_train_conv_input_grad(const tc_conv_params *p, const float *grad_out, const int8_t *filter,
                                   float *grad_in, int32_t accumulate)
{
    const int32_t groups = p->in_c / p->filter_in_c;
    const int32_t filters_per_group = p->out_c / groups;
    const int32_t weight_offset = p->q.weight_offset;
    if (!accumulate) {
        tc_train_zero(grad_in, (size_t)p->batches * p->in_h * p->in_w * p->in_c);
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                const float *g = grad_out + (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
                for (int32_t oc = 0; oc < p->out_c; ++oc) {
                    const float go = g[oc];
                    if (go == 0.0f) {
                        continue;
                    }
                    const int32_t group = oc / filters_per_group;
                    const int8_t *w = filter + (size_t)oc * p->filter_h * p->filter_w * p->filter_in_c;
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
                            float *gi = grad_in + (((size_t)b * p->in_h + iy) * p->in_w + ix) * p->in_c
                                        + (size_t)group * p->filter_in_c;
                            const int8_t *wk = w + ((size_t)fy * p->filter_w + fx) * p->filter_in_c;
                            for (int32_t ic = 0; ic < p->filter_in_c; ++ic) {
                                gi[ic] += go * (float)((int32_t)wk[ic] + weight_offset);
                            }
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_train_depthwise_input_grad(const tc_conv_params *p, const float *grad_out, const int8_t *filter,
                                        float *grad_in, int32_t accumulate)
{
    const int32_t m_count = p->depth_multiplier;
    const int32_t weight_offset = p->q.weight_offset;
    if (!accumulate) {
        tc_train_zero(grad_in, (size_t)p->batches * p->in_h * p->in_w * p->in_c);
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                const float *g = grad_out + (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
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
                        float *gi = grad_in + (((size_t)b * p->in_h + iy) * p->in_w + ix) * p->in_c;
                        const int8_t *wk = filter + ((size_t)fy * p->filter_w + fx) * p->out_c;
                        for (int32_t oc = 0; oc < p->out_c; ++oc) {
                            gi[oc / m_count] += g[oc] * (float)((int32_t)wk[oc] + weight_offset);
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_train_fc_input_grad(const tc_fc_params *p, const float *grad_out, const int8_t *weights,
                                 float *grad_in, int32_t accumulate)
{
    const int32_t weight_offset = p->q.weight_offset;
    if (!accumulate) {
        tc_train_zero(grad_in, (size_t)p->batches * p->in_features);
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        float *gi = grad_in + (size_t)b * p->in_features;
        const float *g = grad_out + (size_t)b * p->out_features;
        for (int32_t o = 0; o < p->out_features; ++o) {
            const float go = g[o];
            if (go == 0.0f) {
                continue;
            }
            const int8_t *w = weights + (size_t)o * p->in_features;
            for (int32_t i = 0; i < p->in_features; ++i) {
                gi[i] += go * (float)((int32_t)w[i] + weight_offset);
            }
        }
    }
    return TC_OK;
}

tc_status tc_train_conv_weight_grad(const tc_conv_params *p, const tc_train_slice *s, const int8_t *x,
                                    int32_t x_is_slice, const float *grad_out, float *grad_w)
{
    if (p->filter_in_c != p->in_c || s->cols != p->in_c) {
        return TC_ERROR_ARGUMENT;  /* grouped convolutions have no weight gradient kernel */
    }
    const int32_t x_channels = x_is_slice ? s->count : p->in_c;
    const int32_t input_offset = p->q.input_offset;
    tc_train_zero(grad_w, (size_t)s->rows * s->count);
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                const float *g = grad_out + (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
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
                        const int8_t *xin = x + (((size_t)b * p->in_h + iy) * p->in_w + ix) * x_channels;
                        for (int32_t oc = 0; oc < p->out_c; ++oc) {
                            const float go = g[oc];
                            if (go == 0.0f) {
                                continue;
                            }
                            float *gw = grad_w + (((size_t)oc * p->filter_h + fy) * p->filter_w + fx) * s->count;
                            for (int32_t j = 0; j < s->count; ++j) {
                                const int32_t c = x_is_slice ? j : s->index[j];
                                gw[j] += go * (float)((int32_t)xin[c] + input_offset);
                            }
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_train_depthwise_weight_grad(const tc_conv_params *p, const tc_train_slice *s, const int8_t *x,
                                         int32_t x_is_slice, const float *grad_out, float *grad_w)
{
    const int32_t x_channels = x_is_slice ? s->count : p->in_c;
    const int32_t input_offset = p->q.input_offset;
    const int32_t m_count = p->depth_multiplier;
    tc_train_zero(grad_w, (size_t)s->rows * s->count);
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                const float *g = grad_out + (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->out_c;
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
                        const int8_t *xin = x + (((size_t)b * p->in_h + iy) * p->in_w + ix) * x_channels;
                        float *gw = grad_w + ((size_t)fy * p->filter_w + fx) * s->count;
                        for (int32_t j = 0; j < s->count; ++j) {
                            const int32_t oc = s->index[j];
                            const int32_t c = x_is_slice ? j : oc / m_count;
                            gw[j] += g[oc] * (float)((int32_t)xin[c] + input_offset);
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_train_fc_weight_grad(const tc_fc_params *p, const tc_train_slice *s, const int8_t *x,
                                  int32_t x_is_slice, const float *grad_out, float *grad_w)
{
    const int32_t x_features = x_is_slice ? s->count : p->in_features;
    const int32_t input_offset = p->q.input_offset;
    tc_train_zero(grad_w, (size_t)s->rows * s->count);
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *xin = x + (size_t)b * x_features;
        const float *g = grad_out + (size_t)b * p->out_features;
        for (int32_t o = 0; o < p->out_features; ++o) {
            const float go = g[o];
            if (go == 0.0f) {
                continue;
            }
            float *gw = grad_w + (size_t)o * s->count;
            for (int32_t j = 0; j < s->count; ++j) {
                const int32_t c = x_is_slice ? j : s->index[j];
                gw[j] += go * (float)((int32_t)xin[c] + input_offset);
            }
        }
    }
    return TC_OK;
}

void tc_train_add_backward(const tc_train_add_params *p, const uint8_t *bits, const float *grad_out,
                           float *grad1, float *grad2)
{
    for (int32_t i = 0; i < p->count; ++i) {
        const float g = tc_train_bit(bits, i) ? grad_out[i] : 0.0f;
        if (grad1) {
            grad1[i] = (p->accumulate1 ? grad1[i] : 0.0f) + g * p->scale1;
        }
        if (grad2) {
            grad2[i] = (p->accumulate2 ? grad2[i] : 0.0f) + g * p->scale2;
        }
    }
}

tc_status tc_train_avg_pool_backward(const tc_pool_params *p, const float *grad_out, float *grad_in,
                                     int32_t accumulate)
{
    if (!accumulate) {
        tc_train_zero(grad_in, (size_t)p->batches * p->in_h * p->in_w * p->channels);
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            const int32_t fy_start = tc_max_i32(0, -in_y0);
            const int32_t fy_end = tc_min_i32(p->filter_h, p->in_h - in_y0);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                const int32_t fx_start = tc_max_i32(0, -in_x0);
                const int32_t fx_end = tc_min_i32(p->filter_w, p->in_w - in_x0);
                const int32_t count = (fy_end - fy_start) * (fx_end - fx_start);
                if (count <= 0) {
                    return TC_ERROR_ARGUMENT;
                }
                const float inv = 1.0f / (float)count;
                const float *g = grad_out + (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->channels;
                for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                    for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                        float *gi = grad_in + (((size_t)b * p->in_h + in_y0 + fy) * p->in_w + in_x0 + fx) * p->channels;
                        for (int32_t c = 0; c < p->channels; ++c) {
                            gi[c] += g[c] * inv;
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_train_max_pool_backward(const tc_pool_params *p, const int8_t *x, const float *grad_out,
                                     float *grad_in, int32_t accumulate)
{
    if (!accumulate) {
        tc_train_zero(grad_in, (size_t)p->batches * p->in_h * p->in_w * p->channels);
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            const int32_t fy_start = tc_max_i32(0, -in_y0);
            const int32_t fy_end = tc_min_i32(p->filter_h, p->in_h - in_y0);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                const int32_t fx_start = tc_max_i32(0, -in_x0);
                const int32_t fx_end = tc_min_i32(p->filter_w, p->in_w - in_x0);
                if (fy_end <= fy_start || fx_end <= fx_start) {
                    return TC_ERROR_ARGUMENT;
                }
                const float *g = grad_out + (((size_t)b * p->out_h + oy) * p->out_w + ox) * p->channels;
                for (int32_t c = 0; c < p->channels; ++c) {
                    /* The gradient goes to the first maximum in scan order, as the forward keeps it. */
                    size_t best = 0;
                    int32_t best_value = INT32_MIN;
                    for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                        for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                            const size_t i = (((size_t)b * p->in_h + in_y0 + fy) * p->in_w + in_x0 + fx) * p->channels + c;
                            if (x[i] > best_value) {
                                best_value = x[i];
                                best = i;
                            }
                        }
                    }
                    grad_in[best] += g[c];
                }
            }
        }
    }
    return TC_OK;
}
