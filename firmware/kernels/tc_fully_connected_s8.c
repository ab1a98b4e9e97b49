/* Int8 fully connected layer, per-tensor or per-channel; bit-exact with TFLM's reference FULLY_CONNECTED. */
#include "tc_kernels.h"

tc_status tc_fully_connected_s8(const tc_fc_params *p, const int8_t *input, const int8_t *weights,
                                const int32_t *bias, int8_t *output)
{
    const tc_requant_params *q = &p->q;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in = input + (size_t)b * p->in_features;
        for (int32_t o = 0; o < p->out_features; ++o) {
            const int8_t *w = weights + (size_t)o * p->in_features;
            int32_t acc = 0;
            for (int32_t i = 0; i < p->in_features; ++i) {
                acc += ((int32_t)w[i] + q->weight_offset) * ((int32_t)in[i] + q->input_offset);
            }
            if (bias) {
                acc += bias[o];
            }
            const int32_t ch = q->per_channel ? o : 0;
            acc = tc_requantize(acc, q->multiplier[ch], q->shift[ch]) + q->output_offset;
            output[(size_t)b * p->out_features + o] = (int8_t)tc_clamp_i32(acc, q->act_min, q->act_max);
        }
    }
    return TC_OK;
}
