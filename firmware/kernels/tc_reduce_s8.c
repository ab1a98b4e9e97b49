/*
 * Int8 MEAN and SUM over any set of axes.
 *
 * Each output is the int32 sum of the raw input values it covers. The kept axes enumerate the
 * outputs in order and the reduced axes the elements of one sum, both as extents and element
 * strides into the input. The kernel requantizes the sum minus count * input_zero_point to the
 * output, and for MEAN the multiplier already contains 1/count. TFLM and LiteRT both round twice
 * here, so the kernel does too in either mode.
 */
#include "tc_kernels.h"

/* Sum the raw values that reduce into the output whose first input element is `base`. */
static int32_t reduced_sum(const tc_reduce_params *p, const int8_t *base)
{
    const int32_t *d = p->reduced_dims;
    const int32_t *s = p->reduced_strides;
    /* The sum wraps like the reference's, which adds in int32 without saturating. */
    uint32_t sum = 0;
    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                        const int8_t *row = base + (size_t)i0 * s[0] + (size_t)i1 * s[1] + (size_t)i2 * s[2] +
                                            (size_t)i3 * s[3] + (size_t)i4 * s[4];
                        for (int32_t i5 = 0; i5 < d[5]; ++i5) {
                            sum += (uint32_t)(int32_t)row[(size_t)i5 * s[5]];
                        }
                    }
                }
            }
        }
    }
    return (int32_t)sum;
}

static int8_t reduce_output(const tc_reduce_params *p, int32_t sum)
{
    /* The reference subtracts in 64 bits and keeps the low 32 bits, as unsigned arithmetic does. */
    const int32_t centered = (int32_t)((uint32_t)sum - (uint32_t)p->count * (uint32_t)p->input_zero_point);
    const int32_t value = tc_requantize_double(centered, p->multiplier, p->shift) + p->output_zero_point;
    return (int8_t)tc_clamp_i32(value, INT8_MIN, INT8_MAX);
}

tc_status tc_reduce_sum_s8(const tc_reduce_params *p, const int8_t *input, int8_t *output)
{
    if (p->count <= 0) {
        return TC_ERROR_ARGUMENT;
    }
    const int32_t *d = p->kept_dims;
    const int32_t *s = p->kept_strides;
    for (int32_t i0 = 0; i0 < d[0]; ++i0) {
        for (int32_t i1 = 0; i1 < d[1]; ++i1) {
            for (int32_t i2 = 0; i2 < d[2]; ++i2) {
                for (int32_t i3 = 0; i3 < d[3]; ++i3) {
                    for (int32_t i4 = 0; i4 < d[4]; ++i4) {
                        const int8_t *row = input + (size_t)i0 * s[0] + (size_t)i1 * s[1] + (size_t)i2 * s[2] +
                                            (size_t)i3 * s[3] + (size_t)i4 * s[4];
                        for (int32_t i5 = 0; i5 < d[5]; ++i5) {
                            *output++ = reduce_output(p, reduced_sum(p, row + (size_t)i5 * s[5]));
                        }
                    }
                }
            }
        }
    }
    return TC_OK;
}
