/*
 * Specialized int8 kernels of tinycompile, chosen by the compiler per layer from the shapes and
 * constants fixed at compile time (see tinycompile/codegen/ops/specialize.py).
 *
 * Every kernel here gives the same bytes as the portable kernel of the same op in tc_kernels.h,
 * and so as TFLM's reference kernel. They differ in how they get there:
 *   - convolutions run as matrix multiplies: each output pixel's receptive field is one row of
 *     K = filter_h * filter_w * in_c values, gathered two pixels at a time into a scratch buffer
 *     that the memory planner places in the arena (1x1 convolutions with stride 1 read their rows
 *     straight from the input where the instruction set allows);
 *   - the compiler stores weights in the layout each kernel reads (int16 rows for convolutions,
 *     padded to a multiple of four values) and folds the input offset into the bias:
 *     sum(w * (x + off)) + b = sum(w * x) + (b + off * sum(w));
 *   - requantization uses one rounding multiply-accumulate per output (tc_fast_requant) wherever
 *     the compiler proved that the accumulator cannot overflow the 31-bit form it needs.
 * The preprocessor selects each kernel's body: Arm Helium (MVE, __ARM_FEATURE_MVE) for the
 * matrix multiplies of convolutions and fully connected layers, the Cortex-M DSP extension
 * (__ARM_FEATURE_DSP: Cortex-M4, M7, M33, and M55 for the other kernels), and plain C for every
 * other target (Cortex-M0+, M3 and the host).
 */
#ifndef TC_KERNELS_FAST_H
#define TC_KERNELS_FAST_H

#include <string.h>

#include "tc_kernels.h"

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define TC_FAST_MVE 1
#include <arm_mve.h>
#else
#define TC_FAST_MVE 0
#endif

/*
 * NOTE: on DSP targets the inner loops of convolution, depthwise and fully connected layers are
 * inline assembly that uses all fourteen general registers, r7 included. A build that keeps a
 * frame pointer (-fno-omit-frame-pointer with optimization) fails with "r7 cannot be used in
 * 'asm' here"; define TC_FAST_NO_ASM there to run the C bodies instead. Builds without
 * optimization use the C bodies anyway.
 */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define TC_FAST_DSP 1
#include <arm_acle.h>
#else
#define TC_FAST_DSP 0
#endif

/*
 * Requantization modes of the output stage (tc_fast_out.mode):
 *   TC_RQ_EXACT:  tc_requantize, the rounding that TC_SINGLE_ROUNDING selects (any accumulator);
 *   TC_RQ_DOUBLE: tc_requantize_double, TFLM's double rounding in both modes (any accumulator);
 *   TC_RQ_FAST:   double rounding in one multiply-accumulate; the compiler chooses it only when
 *                 |accumulator| < 2^30 for every possible input and no channel shifts left.
 */
#define TC_RQ_EXACT 0
#define TC_RQ_DOUBLE 1
#define TC_RQ_FAST 2

/*
 * Output stage: one record of four int32 per output channel, `rq[4 * c + 0..3]`:
 *   bias (with the input offset folded in where the kernel's description states it), multiplier, then
 *   TC_RQ_FAST:  2^(e - 1) + (output zero point << e), the rounding addend, and e, the right
 *                shift: (t + zp * 2^e) >> e = (t >> e) + zp, so the shift adds the zero point;
 *   otherwise:   the TFLite shift and 0.
 */
typedef struct {
    int32_t mode;
    int32_t output_offset;
    int32_t act_min, act_max;
    const int32_t *rq;
} tc_fast_out;

/* Four bytes from any address (one LDR where the target allows unaligned loads). */
TC_INLINE uint32_t tc_load32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if TC_FAST_DSP && defined(__GNUC__)
/* Sign-extend bytes 1 and 3 of x into two halfwords: SXTB16 with ROR #8, one instruction. */
TC_INLINE uint32_t tc_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* Add bytes 1 and 3 of x, sign-extended, to the halfwords of a: SXTAB16 with ROR #8. */
TC_INLINE uint32_t tc_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
#elif TC_FAST_DSP
TC_INLINE uint32_t tc_sxtb16_ror8(uint32_t x) { return __sxtb16((x >> 8) | (x << 24)); }
TC_INLINE uint32_t tc_sxtab16_ror8(uint32_t a, uint32_t x) { return __sxtab16(a, (x >> 8) | (x << 24)); }
#endif

/* Round-to-nearest high multiply-accumulate: (a * b + (c << 32) + 2^31) >> 32, as SMMLAR. */
TC_INLINE int32_t tc_fast_smmlar(int32_t a, int32_t b, int32_t c)
{
#if TC_FAST_DSP && defined(__GNUC__)
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
#else
    return (int32_t)(((int64_t)a * b + (int64_t)((uint64_t)(int64_t)c << 32) + (1LL << 31)) >> 32);
#endif
}

/*
 * TFLM's double rounding, RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc, m), e), for
 * e >= 1 and |2 * acc| < 2^31 (the compiler checks both before it selects TC_RQ_FAST): the
 * doubling high multiply is then round(2 * acc * m / 2^32) without saturation, and the divide
 * rounds half away from zero, which is floor((h + 2^(e-1) - [h < 0]) / 2^e). Nested floors of
 * powers of two merge, so both steps are one SMMLAR with addend 2^(e-1) - [acc < 0] followed by
 * an arithmetic shift. The sign of acc replaces the sign of h. The two differ only when h = 0 and
 * acc < 0, and then the result is 0 either way because e >= 1. `half` may also carry zp * 2^e
 * to add an output zero point zp (the compiler checks that the sum cannot overflow).
 */
TC_INLINE int32_t tc_fast_requant(int32_t acc, int32_t multiplier, int32_t half, int32_t shift)
{
    return tc_fast_smmlar(acc * 2, multiplier, half + (acc >> 31)) >> shift;
}

/*
 * The scalars of the output stage, copied out of the params so that the compiler can keep them
 * in registers: stores of int8 outputs may alias any memory, so fields read through a pointer
 * would be reloaded after every store.
 */
typedef struct {
    int32_t mode, zero_point, lo, hi;
} tc_fast_clamp;

TC_INLINE tc_fast_clamp tc_fast_clamp_of(const tc_fast_out *o)
{
    const tc_fast_clamp c = {o->mode, o->output_offset, o->act_min, o->act_max};
    return c;
}

/* One channel's record, loaded before any output is stored. */
typedef struct {
    int32_t bias, multiplier, half, shift;
} tc_fast_rq;

TC_INLINE tc_fast_rq tc_fast_rq_of(const int32_t *r)
{
    const tc_fast_rq q = {r[0], r[1], r[2], r[3]};
    return q;
}

/*
 * Requantize `acc` with channel record `q` and clamp it to int8. `fast` and `full` are constants
 * at every call site, so each kernel body is compiled once per combination. `fast` is
 * mode == TC_RQ_FAST, and `full` is true when the clamp range is all of int8 (one SSAT on DSP
 * targets).
 */
TC_INLINE int8_t tc_fast_store(tc_fast_clamp c, tc_fast_rq q, int32_t acc, const int fast, const int full)
{
    if (!fast) {
        /* Exact records hold the TFLite shift in `half`. */
        const int32_t v = c.mode == TC_RQ_DOUBLE ? tc_requantize_double(acc, q.multiplier, q.half)
                                                 : tc_requantize(acc, q.multiplier, q.half);
        return (int8_t)tc_clamp_i32(v + c.zero_point, c.lo, c.hi);
    }
    const int32_t v = tc_fast_requant(acc, q.multiplier, q.half, q.shift);
#if TC_FAST_DSP
    if (full) {
        return (int8_t)__ssat(v, 8);
    }
#else
    (void)full;
#endif
    return (int8_t)tc_clamp_i32(v, c.lo, c.hi);
}

/* Return the kernel body to run: 0 exact, 1 fast with a partial clamp range, 2 fast with all of int8. */
TC_INLINE int tc_fast_variant(const tc_fast_out *o)
{
    if (o->mode != TC_RQ_FAST) {
        return 0;
    }
    return o->act_min == -128 && o->act_max == 127 ? 2 : 1;
}

/*
 * Convolution as a matrix multiply (groups of 1; also depthwise layers with one input channel,
 * which are convolutions with out_c = depth multiplier).
 * `weights`: out_c rounded up to even rows of k4 values (k4 = k rounded up to a multiple of 4),
 * zero-padded, packed little-endian into words. With `wide` the values are int16 and they and the
 * bias in `out.rq` (which has the input offset folded in) are doubled, so the kernel accumulates
 * 2 * acc, the value that tc_fast_requant multiplies. Otherwise they are int8 (half the flash,
 * more instructions).
 * `scratch` must have 4 * k4 bytes, or 6 * k4 when in_c is not a multiple of 4 (see the kernel).
 */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t k, k4;
    int32_t wide;                /* 1: doubled int16 weights; 0: int8 weights */
    int32_t pad_value;           /* the input zero point: contributes nothing once offset */
    const int32_t *weights;
    tc_fast_out out;
} tc_fast_conv_params;

tc_status tc_fast_conv_s8(const tc_fast_conv_params *p, const int8_t *input, int8_t *output, void *scratch);

/*
 * Depthwise convolution with depth multiplier 1. `weights` are int16 in groups of four channels,
 * [in_c / 4 rounded up][filter tap][4], zero-padded. Each group stores its channels in the order
 * (0, 2, 1, 3) in which SXTB16 unpacks four input bytes. Weights and the bias in `out.rq` (which
 * has the input offset folded in) are doubled, as for tc_fast_conv_params. `scratch` holds ring_rows * ring_w * in_c bytes: ring_rows =
 * (filter_h - 1) * dilation_h + 1 rows of the padded input, ring_w = (out_w - 1) * stride_w +
 * (filter_w - 1) * dilation_w + 1 columns wide. The output may overwrite the input.
 */
#define TC_FAST_DW_MAX_FILTER_H 16

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t input_offset;
    int32_t ring_rows, ring_w;
    const int32_t *weights;      /* int16 pairs packed into words */
    tc_fast_out out;
} tc_fast_depthwise_params;

tc_status tc_fast_depthwise_conv2d_s8(const tc_fast_depthwise_params *p, const int8_t *input, int8_t *output,
                                      void *scratch);

/* Fully connected layer: out_features rows of k4 int8 weights, zero-padded, bias folded. */
typedef struct {
    int32_t batches;
    int32_t in_features;
    int32_t out_features;
    int32_t k4;
    const int32_t *weights;
    tc_fast_out out;
} tc_fast_fc_params;

tc_status tc_fast_fully_connected_s8(const tc_fast_fc_params *p, const int8_t *input, int8_t *output);

/* Average and max pooling: the tc_pool_params of the portable kernels. */
tc_status tc_fast_avg_pool2d_s8(const tc_pool_params *p, const int8_t *input, int8_t *output);
tc_status tc_fast_max_pool2d_s8(const tc_pool_params *p, const int8_t *input, int8_t *output);

/*
 * ADD and SUB: each int8 input value maps to its rescaled addend through a 256-entry table
 * indexed by the value's byte (uint8_t)x, computed by the compiler exactly as the reference
 * rescales it (for SUB the second table is negated). The sum goes through `out`'s single
 * channel record. MUL multiplies the offset inputs and requantizes the product.
 * Shapes: `outer` x `inner` elements. Input i advances by in<i>_inner (0 or 1) per element and
 * by in<i>_outer per row, so same-shape inputs, scalars and broadcast rows need no index math.
 */
typedef struct {
    int32_t outer, inner;
    int32_t in1_outer, in1_inner;
    int32_t in2_outer, in2_inner;
    const int32_t *table1;       /* ADD/SUB */
    const int32_t *table2;
    int32_t input1_offset, input2_offset;   /* MUL */
    tc_fast_out out;
} tc_fast_binary_params;

tc_status tc_fast_add_s8(const tc_fast_binary_params *p, const int8_t *input1, const int8_t *input2,
                         int8_t *output);
tc_status tc_fast_mul_s8(const tc_fast_binary_params *p, const int8_t *input1, const int8_t *input2,
                         int8_t *output);

#endif /* TC_KERNELS_FAST_H */
