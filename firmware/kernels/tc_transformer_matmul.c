/*
 * Int8 BATCH_MATMUL and SQUARED_DIFFERENCE.
 * BATCH_MATMUL accumulates (lhs - lhs_zp) * (rhs - rhs_zp) in int32 and requantizes once per
 * output element; adj_x and adj_y only change the strides the compiler passes.
 * SQUARED_DIFFERENCE rescales both inputs to a common scale with 7 bits of headroom, squares the
 * difference and requantizes, as the reference kernels do.
 * Both round twice (a rounding doubling high multiply, then a rounding shift) whatever
 * TC_SINGLE_ROUNDING says: LiteRT's reference BATCH_MATMUL and SQUARED_DIFFERENCE round twice
 * too (checked against ai-edge-litert with OpResolverType.BUILTIN_REF).
 */
#include "tc_kernels_transformer.h"

TC_INLINE int32_t tc_tx_requantize_double(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return tc_rounding_divide_by_pot(tc_sat_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}

tc_status tc_batch_matmul_s8(const tc_batch_matmul_params *p, const int8_t *lhs, const int8_t *rhs,
                             int8_t *output)
{
    int8_t *out = output;
    for (int32_t b0 = 0; b0 < p->batch_dims[0]; ++b0) {
        for (int32_t b1 = 0; b1 < p->batch_dims[1]; ++b1) {
            for (int32_t b2 = 0; b2 < p->batch_dims[2]; ++b2) {
                const int8_t *l = lhs + b0 * p->lhs_batch_strides[0] + b1 * p->lhs_batch_strides[1] +
                                  b2 * p->lhs_batch_strides[2];
                const int8_t *r = rhs + b0 * p->rhs_batch_strides[0] + b1 * p->rhs_batch_strides[1] +
                                  b2 * p->rhs_batch_strides[2];
                for (int32_t i = 0; i < p->rows; ++i) {
                    const int8_t *lrow = l + (size_t)i * p->lhs_row_stride;
                    for (int32_t j = 0; j < p->cols; ++j) {
                        const int8_t *rcol = r + (size_t)j * p->rhs_col_stride;
                        int32_t acc = 0;
                        for (int32_t k = 0; k < p->depth; ++k) {
                            acc += ((int32_t)lrow[(size_t)k * p->lhs_depth_stride] + p->lhs_offset) *
                                   ((int32_t)rcol[(size_t)k * p->rhs_depth_stride] + p->rhs_offset);
                        }
                        acc = tc_tx_requantize_double(acc, p->multiplier, p->shift) + p->output_offset;
                        *out++ = (int8_t)tc_clamp_i32(acc, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
    return TC_OK;
}

TC_INLINE int8_t tc_squared_difference_element(const tc_squared_difference_params *p, int8_t a, int8_t b)
{
    const int32_t x1 = (int32_t)((uint32_t)((int32_t)a + p->input1_offset) << p->left_shift);
    const int32_t x2 = (int32_t)((uint32_t)((int32_t)b + p->input2_offset) << p->left_shift);
    const int32_t s1 = tc_tx_requantize_double(x1, p->input1_multiplier, p->input1_shift);
    const int32_t s2 = tc_tx_requantize_double(x2, p->input2_multiplier, p->input2_shift);
    const int32_t diff = s1 - s2;
    const int32_t out = tc_tx_requantize_double(diff * diff, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)tc_clamp_i32(out, p->act_min, p->act_max);
}

tc_status tc_squared_difference_s8(const tc_squared_difference_params *p, const int8_t *input1,
                                   const int8_t *input2, int8_t *output)
{
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
                            output[out_index++] = tc_squared_difference_element(
                                p, input1[base1 + i5 * s1[5]], input2[base2 + i5 * s2[5]]);
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}
