/*
 * Int8 ADD, SUB and MUL with numpy-style broadcasting over up to six dimensions.
 * All three round requantization twice, as both TFLM and LiteRT's reference kernels do.
 * ADD and SUB rescale both inputs to a common scale with 20 bits of headroom before combining
 * them, as TFLM's reference kernels do; MUL requantizes the product of the offset inputs.
 */
#include "tc_kernels.h"

typedef enum { TC_BINARY_ADD, TC_BINARY_SUB, TC_BINARY_MUL } tc_binary_kind;

TC_INLINE int8_t tc_binary_element(const tc_binary_params *p, tc_binary_kind kind, int8_t a, int8_t b)
{
    const int32_t x1 = (int32_t)a + p->input1_offset;
    const int32_t x2 = (int32_t)b + p->input2_offset;
    int32_t out;
    if (kind == TC_BINARY_MUL) {
        out = tc_requantize_double(x1 * x2, p->output_multiplier, p->output_shift) + p->output_offset;
    } else {
        const int32_t s1 = tc_requantize_double((int32_t)((uint32_t)x1 << p->left_shift),
                                             p->input1_multiplier, p->input1_shift);
        const int32_t s2 = tc_requantize_double((int32_t)((uint32_t)x2 << p->left_shift),
                                             p->input2_multiplier, p->input2_shift);
        const int32_t raw = kind == TC_BINARY_ADD ? s1 + s2 : s1 - s2;
        out = tc_requantize_double(raw, p->output_multiplier, p->output_shift) + p->output_offset;
    }
    return (int8_t)tc_clamp_i32(out, p->act_min, p->act_max);
}

static tc_status tc_binary_s8(const tc_binary_params *p, tc_binary_kind kind, const int8_t *in1,
                              const int8_t *in2, int8_t *output)
{
    if (p->flat_size > 0) {
        for (int32_t i = 0; i < p->flat_size; ++i) {
            output[i] = tc_binary_element(p, kind, in1[i], in2[i]);
        }
        return TC_OK;
    }
    const int32_t *d = p->out_dims;
    const int32_t *s1 = p->in1_strides;
    const int32_t *s2 = p->in2_strides;
    size_t out_index = 0;
    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                        const int32_t base1 = i0 * s1[0] + i1 * s1[1] + i2 * s1[2] + i3 * s1[3] + i4 * s1[4];
                        const int32_t base2 = i0 * s2[0] + i1 * s2[1] + i2 * s2[2] + i3 * s2[3] + i4 * s2[4];
                        for (int32_t i5 = 0; i5 < d[5]; ++i5) {
                            output[out_index++] =
                                tc_binary_element(p, kind, in1[base1 + i5 * s1[5]], in2[base2 + i5 * s2[5]]);
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}

tc_status tc_add_s8(const tc_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    return tc_binary_s8(p, TC_BINARY_ADD, input1, input2, output);
}

tc_status tc_sub_s8(const tc_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    return tc_binary_s8(p, TC_BINARY_SUB, input1, input2, output);
}

tc_status tc_mul_s8(const tc_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    return tc_binary_s8(p, TC_BINARY_MUL, input1, input2, output);
}
