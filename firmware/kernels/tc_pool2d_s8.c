/* Int8 average and max pooling; bit-exact with TFLM's reference AVERAGE_POOL_2D and MAX_POOL_2D. */
#include "tc_kernels.h"

tc_status tc_avg_pool2d_s8(const tc_pool_params *p, const int8_t *input, int8_t *output)
{
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
                for (int32_t c = 0; c < p->channels; ++c) {
                    int32_t acc = 0;
                    for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                        for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                            acc += input[(((size_t)b * p->in_h + in_y0 + fy) * p->in_w + in_x0 + fx) * p->channels + c];
                        }
                    }
                    /* Round half away from zero, as the reference does. */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    output[(((size_t)b * p->out_h + oy) * p->out_w + ox) * p->channels + c] =
                        (int8_t)tc_clamp_i32(acc, p->act_min, p->act_max);
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_max_pool2d_s8(const tc_pool_params *p, const int8_t *input, int8_t *output)
{
    for (int32_t b = 0; b < p->batches; ++b) {
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t in_y0 = oy * p->stride_h - p->pad_top;
            const int32_t fy_start = tc_max_i32(0, -in_y0);
            const int32_t fy_end = tc_min_i32(p->filter_h, p->in_h - in_y0);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_left;
                const int32_t fx_start = tc_max_i32(0, -in_x0);
                const int32_t fx_end = tc_min_i32(p->filter_w, p->in_w - in_x0);
                for (int32_t c = 0; c < p->channels; ++c) {
                    int32_t max = INT8_MIN;
                    for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                        for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                            int32_t v = input[(((size_t)b * p->in_h + in_y0 + fy) * p->in_w + in_x0 + fx) * p->channels + c];
                            max = v > max ? v : max;
                        }
                    }
                    output[(((size_t)b * p->out_h + oy) * p->out_w + ox) * p->channels + c] =
                        (int8_t)tc_clamp_i32(max, p->act_min, p->act_max);
                }
            }
        }
    }
    return TC_OK;
}
