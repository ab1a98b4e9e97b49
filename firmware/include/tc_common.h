/*
 * Shared types and fixed-point arithmetic of the tinycompile int8 kernels.
 *
 * Requantization turns an int32 accumulator into the output scale with a Q31 multiplier and a
 * power-of-two shift (real ~= multiplier * 2^(shift - 31)), computed by the compiler. Two
 * rounding schemes exist in TFLite builds and they differ by one step on some values:
 *   - double rounding (TFLM's default): a rounding doubling high multiply, then a rounding
 *     right shift;
 *   - single rounding (TFLITE_SINGLE_ROUNDING): one 64-bit product rounded once.
 * The generated tc_config.h selects one with TC_SINGLE_ROUNDING for tc_requantize. LiteRT's
 * reference kernels (ai-edge-litert 2.3.0, BUILTIN_REF) do not all agree: FULLY_CONNECTED
 * rounds once, while CONV_2D, DEPTHWISE_CONV_2D, ADD, MEAN, QUANTIZE and the activations round
 * twice. Kernels that round twice in both interpreters call tc_requantize_double.
 */
#ifndef TC_COMMON_H
#define TC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "tc_config.h"

#ifndef TC_SINGLE_ROUNDING
#define TC_SINGLE_ROUNDING 0
#endif

#if defined(__GNUC__)
#define TC_ALIGNED(n) __attribute__((aligned(n)))
#define TC_INLINE static inline __attribute__((always_inline))
#else
#define TC_ALIGNED(n)
#define TC_INLINE static inline
#endif

typedef enum {
    TC_OK = 0,
    TC_ERROR_ARGUMENT = 1
} tc_status;

TC_INLINE int32_t tc_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
TC_INLINE int32_t tc_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
TC_INLINE int32_t tc_clamp_i32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

/* Saturating rounding doubling high multiply: round(a * b / 2^31), saturating INT32_MIN * INT32_MIN. */
TC_INLINE int32_t tc_sat_rounding_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1LL << 30) : (1 - (1LL << 30));
    /* Division, not a shift: the reference truncates toward zero here. */
    return (int32_t)((ab + nudge) / (1LL << 31));
}

/* Divide by 2^exponent, rounding to nearest with ties away from zero. */
TC_INLINE int32_t tc_rounding_divide_by_pot(int32_t x, int exponent)
{
    int32_t mask = (int32_t)((1LL << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* Double rounding: a rounding doubling high multiply, then a rounding right shift (TFLM). */
TC_INLINE int32_t tc_requantize_double(int32_t x, int32_t multiplier, int32_t shift)
{
    int32_t left_shift = shift > 0 ? shift : 0;
    int32_t right_shift = shift > 0 ? 0 : -shift;
    int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    return tc_rounding_divide_by_pot(tc_sat_rounding_doubling_high_mul(shifted, multiplier), right_shift);
}

/* Single rounding: one 64-bit product, rounded once (half up). Needs shift <= 30. */
TC_INLINE int32_t tc_requantize_single(int32_t x, int32_t multiplier, int32_t shift)
{
    int32_t total_shift = 31 - shift;
    int64_t round = (int64_t)1 << (total_shift - 1);
    int64_t result = (int64_t)x * (int64_t)multiplier + round;
    return (int32_t)(result >> total_shift);
}

/* Multiply by a quantized multiplier (Q31 mantissa, exponent `shift`), rounding as TC_SINGLE_ROUNDING selects. */
TC_INLINE int32_t tc_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
#if TC_SINGLE_ROUNDING
    return tc_requantize_single(x, multiplier, shift);
#else
    return tc_requantize_double(x, multiplier, shift);
#endif
}

/* Requantize with a multiplier below one (shift <= 0), as element-wise kernels do. */
TC_INLINE int32_t tc_requantize_lt1(int32_t x, int32_t multiplier, int32_t shift)
{
#if TC_SINGLE_ROUNDING
    return tc_requantize(x, multiplier, shift);
#else
    return tc_rounding_divide_by_pot(tc_sat_rounding_doubling_high_mul(x, multiplier), -shift);
#endif
}

#endif /* TC_COMMON_H */
