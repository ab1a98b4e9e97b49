/*
 * Int8 ADD, SUB and MUL, bit-exact with tc_add_s8, tc_sub_s8 and tc_mul_s8.
 *
 * ADD and SUB rescale each input to a common scale before they add (see tc_binary_s8.c). That
 * rescaled value depends only on the int8 input, so the compiler computed it for all 256 values
 * and the kernel looks it up. Only the final requantization of the sum runs per element. The
 * shapes are flattened to rows: each input advances by 0 or 1 per element and by a fixed step per
 * row, which covers equal shapes, scalars and broadcast rows without per-element index math.
 * Every output element is written after both of its inputs are read, so the output may
 * overwrite an input that is not broadcast.
 */
#include "tc_kernels_fast.h"

TC_INLINE void tc_add_body(const tc_fast_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *output,
                           const int fast, const int full)
{
    const tc_fast_clamp c = tc_fast_clamp_of(&p->out);
    const tc_fast_rq q = tc_fast_rq_of(p->out.rq);
    const int32_t *t1 = p->table1;
    const int32_t *t2 = p->table2;
    const int32_t outer = p->outer, inner = p->inner;
    const int32_t row1 = p->in1_outer, row2 = p->in2_outer, step1 = p->in1_inner, step2 = p->in2_inner;
    int8_t *out = output;
    for (int32_t row = 0; row < outer; ++row) {
        const int8_t *a = in1 + (size_t)row * row1;
        const int8_t *b = in2 + (size_t)row * row2;
        for (int32_t i = 0; i < inner; ++i) {
            const int32_t sum = t1[(uint8_t)*a] + t2[(uint8_t)*b];
            a += step1;
            b += step2;
            *out++ = tc_fast_store(c, q, sum, fast, full);
        }
    }
}

TC_INLINE void tc_mul_body(const tc_fast_binary_params *p, const int8_t *in1, const int8_t *in2, int8_t *output,
                           const int fast, const int full)
{
    const tc_fast_clamp c = tc_fast_clamp_of(&p->out);
    const tc_fast_rq q = tc_fast_rq_of(p->out.rq);
    const int32_t off1 = p->input1_offset, off2 = p->input2_offset;
    const int32_t outer = p->outer, inner = p->inner;
    const int32_t row1 = p->in1_outer, row2 = p->in2_outer, step1 = p->in1_inner, step2 = p->in2_inner;
    int8_t *out = output;
    for (int32_t row = 0; row < outer; ++row) {
        const int8_t *a = in1 + (size_t)row * row1;
        const int8_t *b = in2 + (size_t)row * row2;
        for (int32_t i = 0; i < inner; ++i) {
            const int32_t product = ((int32_t)*a + off1) * ((int32_t)*b + off2);
            a += step1;
            b += step2;
            *out++ = tc_fast_store(c, q, product, fast, full);
        }
    }
}

tc_status tc_fast_add_s8(const tc_fast_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    switch (tc_fast_variant(&p->out)) {
    case 2:
        tc_add_body(p, input1, input2, output, 1, 1);
        break;
    case 1:
        tc_add_body(p, input1, input2, output, 1, 0);
        break;
    default:
        tc_add_body(p, input1, input2, output, 0, 0);
        break;
    }
    return TC_OK;
}

tc_status tc_fast_mul_s8(const tc_fast_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output)
{
    switch (tc_fast_variant(&p->out)) {
    case 2:
        tc_mul_body(p, input1, input2, output, 1, 1);
        break;
    case 1:
        tc_mul_body(p, input1, input2, output, 1, 0);
        break;
    default:
        tc_mul_body(p, input1, input2, output, 0, 0);
        break;
    }
    return TC_OK;
}
