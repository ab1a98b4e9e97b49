/*
 * Int8 SOFTMAX over the last axis in 32-bit fixed point, bit-exact with the reference kernels.
 *
 * For each row the kernel finds the maximum and scales every difference x - max, times beta and
 * the input scale, to a Q5.26 number. It takes exp() of each in fixed point and adds the exps up
 * as a Q12.19 number. The reciprocal of that sum, a Q0.31 number and a power of two, multiplies
 * each exp into the output.
 *
 * exp() is gemmlowp's: a fourth-order Taylor polynomial around -1/8 on [-1/4, 0), extended to
 * all negative inputs by multiplying in the constants exp(-2^k) for the bits of the input above
 * 1/4. 1/(1 + x) on [0, 1) is three Newton-Raphson steps from the start value 48/17 - 32/17 x.
 * Every rounding step is the reference's, so the results agree to the bit.
 */
#include "tc_kernels.h"

#define TC_SOFTMAX_ACCUM_INTEGER_BITS 12

static int32_t fx_mul(int32_t a, int32_t b)
{
    return tc_sat_rounding_doubling_high_mul(a, b);
}

/* Multiply by 2^exponent (exponent >= 1), saturating. */
static int32_t fx_shift_left_sat(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static int count_leading_zeros(uint32_t x)
{
#if defined(__GNUC__)
    return x == 0 ? 32 : __builtin_clz(x);
#else
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

/* Compute exp(a) for a in [-1/4, 0), with input and result in Q0.31. */
static int32_t exp_on_quarter_interval(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28); /* a + 1/8 */
    const int32_t x2 = fx_mul(x, x);
    const int32_t x3 = fx_mul(x2, x);
    const int32_t x4 = fx_mul(x2, x2);
    const int32_t x4_over_4 = tc_rounding_divide_by_pot(x4, 2);
    /* x^4/24 + x^3/6 + x^2/2 */
    const int32_t poly = tc_rounding_divide_by_pot(fx_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + fx_mul(exp_minus_one_eighth, x + poly);
}

/* Compute exp(a) for a <= 0 given as Q5.26, as a Q0.31 result. */
static int32_t exp_on_negative_q5_26(int32_t a)
{
    /* exp(-2^k) in Q0.31 for k = -2 .. 4, applied for each set bit of -a above 1/4. */
    static const int32_t exp_of_minus_pow2[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242,
    };
    const int32_t quarter = 1 << 24;
    const int32_t a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter;
    int32_t result = exp_on_quarter_interval(fx_shift_left_sat(a_mod_quarter_minus_quarter, 5));
    const uint32_t remainder = (uint32_t)a_mod_quarter_minus_quarter - (uint32_t)a;
    for (int k = 0; k < 7; ++k) {
        if (remainder & (1u << (24 + k))) {
            result = fx_mul(result, exp_of_minus_pow2[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* Compute 1 / (1 + a) for a in [0, 1), with input and result in Q0.31. */
static int32_t one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    /* Q2.29 constants 48/17 and -32/17, and 1.0 */
    const int32_t c48_over_17 = 1515870810;
    const int32_t c_neg_32_over_17 = -1010580540;
    const int32_t one_q2 = 1 << 29;
    int32_t x = c48_over_17 + fx_mul(half_denominator, c_neg_32_over_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus_hd_x = one_q2 - fx_mul(half_denominator, x);
        x = x + fx_shift_left_sat(fx_mul(x, one_minus_hd_x), 2);
    }
    return fx_shift_left_sat(x, 1);
}

/* Compute the reciprocal of a positive Q12.19 number as a Q0.31 mantissa and a power of two. */
static int32_t reciprocal_q12(int32_t x, int *num_bits_over_unit)
{
    const int headroom_plus_one = count_leading_zeros((uint32_t)x);
    *num_bits_over_unit = TC_SOFTMAX_ACCUM_INTEGER_BITS - headroom_plus_one;
    const int32_t shifted_minus_one = (int32_t)(((uint32_t)x << headroom_plus_one) - 0x80000000u);
    return one_over_one_plus_x(shifted_minus_one);
}

/*
 * Compute exp(beta * input_scale * diff) for diff in [diff_min, 0], as Q0.31. The left shift
 * cannot overflow because diff_min bounds |diff| * 2^input_left_shift by 31 * 2^26. After an
 * exact left shift, the rounding doubling high multiply (TFLM) and the 64-bit product rounded
 * half up (single-rounding builds) round the same way, so one form serves both modes.
 */
static int32_t scaled_exp(const tc_softmax_params *p, int32_t diff)
{
    const int32_t shifted = (int32_t)((uint32_t)diff << p->input_left_shift);
    return exp_on_negative_q5_26(fx_mul(shifted, p->input_multiplier));
}

/* The row maximum and the reciprocal of the row's sum of exps. */
typedef struct {
    int32_t max;
    int32_t scale;               /* Q0.31 reciprocal of the sum */
    int num_bits_over_unit;      /* the sum is scale^-1 * 2^num_bits_over_unit */
} tc_softmax_row;

static tc_softmax_row softmax_row_stats(const tc_softmax_params *p, const int8_t *row)
{
    tc_softmax_row r;
    r.max = INT8_MIN;
    for (int32_t c = 0; c < p->depth; ++c) {
        r.max = row[c] > r.max ? row[c] : r.max;
    }
    /* The Q12.19 sum wraps like the reference's, which adds without saturating. */
    uint32_t sum = 0;
    for (int32_t c = 0; c < p->depth; ++c) {
        const int32_t diff = row[c] - r.max;
        if (diff >= p->diff_min) {
            sum += (uint32_t)tc_rounding_divide_by_pot(scaled_exp(p, diff), TC_SOFTMAX_ACCUM_INTEGER_BITS);
        }
    }
    r.scale = reciprocal_q12((int32_t)sum, &r.num_bits_over_unit);
    return r;
}

/* Compute one output of a row, `output_bits` wide and offset by the most negative value of that width. */
static int32_t softmax_output(const tc_softmax_params *p, const tc_softmax_row *r, int32_t x, int output_bits)
{
    const int32_t out_min = -(1 << (output_bits - 1));
    const int32_t out_max = (1 << (output_bits - 1)) - 1;
    const int32_t diff = x - r->max;
    if (diff < p->diff_min) {
        return out_min;
    }
    const int exponent = r->num_bits_over_unit + 31 - output_bits;
    const int32_t value = tc_rounding_divide_by_pot(fx_mul(r->scale, scaled_exp(p, diff)), exponent);
    return tc_clamp_i32(value + out_min, out_min, out_max);
}

tc_status tc_softmax_s8(const tc_softmax_params *p, const int8_t *input, int8_t *output)
{
    if (p->depth <= 0) {
        return TC_ERROR_ARGUMENT;
    }
    for (int32_t i = 0; i < p->outer_size; ++i) {
        const int8_t *row = input + (size_t)i * p->depth;
        int8_t *out = output + (size_t)i * p->depth;
        const tc_softmax_row r = softmax_row_stats(p, row);
        for (int32_t c = 0; c < p->depth; ++c) {
            out[c] = (int8_t)softmax_output(p, &r, row[c], 8);
        }
    }
    return TC_OK;
}

tc_status tc_softmax_s8_s16(const tc_softmax_params *p, const int8_t *input, int16_t *output)
{
    if (p->depth <= 0) {
        return TC_ERROR_ARGUMENT;
    }
    for (int32_t i = 0; i < p->outer_size; ++i) {
        const int8_t *row = input + (size_t)i * p->depth;
        int16_t *out = output + (size_t)i * p->depth;
        const tc_softmax_row r = softmax_row_stats(p, row);
        for (int32_t c = 0; c < p->depth; ++c) {
            out[c] = (int16_t)softmax_output(p, &r, row[c], 16);
        }
    }
    return TC_OK;
}
