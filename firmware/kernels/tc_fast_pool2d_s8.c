/*
 * Int8 average and max pooling, bit-exact with tc_avg_pool2d_s8 and tc_max_pool2d_s8.
 *
 * Per output pixel the kernels work out the window's valid rows and columns once, then walk the
 * input with pointers, four channels at a time. On DSP targets a single 32-bit load fetches the
 * four channels. Average pooling adds them into two registers of halfword pairs with SXTAB16,
 * which is exact for windows of at most 256 values (larger windows take the int32 loop). Max
 * pooling keeps four byte lanes with SSUB8 and SEL.
 */
#include "tc_kernels_fast.h"

/* Valid window range [first, last) along one axis at input position `start`. */
TC_INLINE void tc_pool_range(int32_t start, int32_t filter, int32_t size, int32_t *first, int32_t *last)
{
    *first = start < 0 ? -start : 0;
    *last = filter < size - start ? filter : size - start;
}

TC_INLINE int8_t tc_avg_out(const tc_pool_params *p, int32_t sum, int32_t count)
{
    /* Round half away from zero, as the reference does. */
    const int32_t v = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
    return (int8_t)tc_clamp_i32(v, p->act_min, p->act_max);
}

tc_status tc_fast_avg_pool2d_s8(const tc_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t channels = p->channels;
    const int32_t row = p->in_w * channels;
    int8_t *out = output;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *batch = input + (size_t)b * p->in_h * row;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            int32_t fy0, fy1;
            tc_pool_range(iy0, p->filter_h, p->in_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                int32_t fx0, fx1;
                tc_pool_range(ix0, p->filter_w, p->in_w, &fx0, &fx1);
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                if (fy1 <= fy0 || fx1 <= fx0) {
                    return TC_ERROR_ARGUMENT;
                }
                const int8_t *window = batch + (size_t)(iy0 + fy0) * row + (size_t)(ix0 + fx0) * channels;
                const int32_t width = fx1 - fx0;
                const int32_t skip = row - width * channels;
                int32_t c = 0;
#if TC_FAST_DSP
                if (count <= 256) {
                    for (; c + 4 <= channels; c += 4) {
                        uint32_t s02 = 0, s13 = 0;
                        const int8_t *ip = window + c;
                        for (int32_t fy = fy0; fy < fy1; ++fy) {
                            for (int32_t fx = 0; fx < width; ++fx) {
                                const uint32_t x = tc_load32(ip);
                                ip += channels;
                                s02 = __sxtab16(s02, x);
                                s13 = tc_sxtab16_ror8(s13, x);
                            }
                            ip += skip;
                        }
                        out[c] = tc_avg_out(p, (int16_t)(s02 & 0xffffu), count);
                        out[c + 1] = tc_avg_out(p, (int16_t)(s13 & 0xffffu), count);
                        out[c + 2] = tc_avg_out(p, (int32_t)s02 >> 16, count);
                        out[c + 3] = tc_avg_out(p, (int32_t)s13 >> 16, count);
                    }
                }
#endif
                for (; c < channels; c += 4) {
                    const int lanes = channels - c >= 4 ? 4 : channels - c;
                    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                    const int8_t *ip = window + c;
                    for (int32_t fy = fy0; fy < fy1; ++fy) {
                        for (int32_t fx = 0; fx < width; ++fx) {
                            s0 += ip[0];
                            if (lanes == 4) {
                                s1 += ip[1];
                                s2 += ip[2];
                                s3 += ip[3];
                            } else {
                                s1 += lanes > 1 ? ip[1] : 0;
                                s2 += lanes > 2 ? ip[2] : 0;
                            }
                            ip += channels;
                        }
                        ip += skip;
                    }
                    out[c] = tc_avg_out(p, s0, count);
                    if (lanes > 1) {
                        out[c + 1] = tc_avg_out(p, s1, count);
                    }
                    if (lanes > 2) {
                        out[c + 2] = tc_avg_out(p, s2, count);
                    }
                    if (lanes > 3) {
                        out[c + 3] = tc_avg_out(p, s3, count);
                    }
                }
                out += channels;
            }
        }
    }
    return TC_OK;
}

tc_status tc_fast_max_pool2d_s8(const tc_pool_params *p, const int8_t *input, int8_t *output)
{
    const int32_t channels = p->channels;
    const int32_t row = p->in_w * channels;
    int8_t *out = output;
#if TC_FAST_DSP
    const uint32_t lo4 = (uint32_t)(uint8_t)p->act_min * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
#endif
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *batch = input + (size_t)b * p->in_h * row;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            int32_t fy0, fy1;
            tc_pool_range(iy0, p->filter_h, p->in_h, &fy0, &fy1);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                int32_t fx0, fx1;
                tc_pool_range(ix0, p->filter_w, p->in_w, &fx0, &fx1);
                /* An empty window leaves the maximum at -128, as the reference does. */
                const int32_t height = fy1 > fy0 ? fy1 - fy0 : 0;
                const int32_t width = fx1 > fx0 ? fx1 - fx0 : 0;
                const int8_t *window = batch + (ptrdiff_t)(iy0 + fy0) * row + (ptrdiff_t)(ix0 + fx0) * channels;
                const int32_t skip = row - width * channels;
                int32_t c = 0;
#if TC_FAST_DSP
                for (; c + 4 <= channels; c += 4) {
                    uint32_t m = 0x80808080u;
                    const int8_t *ip = window + c;
                    for (int32_t fy = 0; fy < height; ++fy) {
                        for (int32_t fx = 0; fx < width; ++fx) {
                            const uint32_t x = tc_load32(ip);
                            ip += channels;
                            (void)__ssub8(x, m);
                            m = __sel(x, m);
                        }
                        ip += skip;
                    }
                    (void)__ssub8(m, lo4);
                    m = __sel(m, lo4);
                    (void)__ssub8(hi4, m);
                    m = __sel(m, hi4);
                    memcpy(out + c, &m, sizeof m);
                }
#endif
                for (; c < channels; ++c) {
                    int32_t m = INT8_MIN;
                    const int8_t *ip = window + c;
                    for (int32_t fy = 0; fy < height; ++fy) {
                        for (int32_t fx = 0; fx < width; ++fx) {
                            m = *ip > m ? *ip : m;
                            ip += channels;
                        }
                        ip += skip;
                    }
                    out[c] = (int8_t)tc_clamp_i32(m, p->act_min, p->act_max);
                }
                out += channels;
            }
        }
    }
    return TC_OK;
}
