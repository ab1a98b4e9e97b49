/*
 * Int8 kernels of the base op set beyond convolution, pooling and element-wise arithmetic:
 * SOFTMAX, PAD/PADV2, MEAN/SUM, QUANTIZE/DEQUANTIZE and the standalone activations.
 *
 * The compiler flattens shapes, so a kernel gets element counts, six-dimensional extents
 * (leading dimensions set to 1) and element strides instead of the model's tensors. Each kernel
 * computes what TFLM's reference kernel computes, and what LiteRT's BUILTIN_REF kernel computes
 * in the litert mode. Where the two interpreters differ by more than rounding (RELU, RELU6), the
 * compiler chooses the parameters, or the kernel, that match the mode.
 */
#ifndef TC_KERNELS_EXTRA_H
#define TC_KERNELS_EXTRA_H

#include "tc_common.h"

#ifndef TC_MAX_DIMS
#define TC_MAX_DIMS 6
#endif

/*
 * SOFTMAX over the last axis. The output scale is 1/256 with zero point -128 (int8) or 1/65536
 * with zero point -32768 (int16). `input_multiplier` and `input_left_shift` turn the difference
 * to the row maximum into beta * input_scale * difference, a fixed-point number with 5 integer
 * bits. Differences below `diff_min` contribute nothing.
 */
typedef struct {
    int32_t outer_size;          /* number of rows */
    int32_t depth;               /* elements per row */
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} tc_softmax_params;

tc_status tc_softmax_s8(const tc_softmax_params *p, const int8_t *input, int8_t *output);
tc_status tc_softmax_s8_s16(const tc_softmax_params *p, const int8_t *input, int16_t *output);

/* Constant padding of a tensor of any element type, up to six dimensions. */
typedef struct {
    int32_t in_dims[TC_MAX_DIMS];
    int32_t out_dims[TC_MAX_DIMS];
    int32_t pad_before[TC_MAX_DIMS];
    int32_t element_size;        /* bytes per element: 1, 2, 4 or 8 */
    uint8_t pad_value[8];        /* the bytes of one padding element, in memory order */
} tc_pad_params;

tc_status tc_pad(const tc_pad_params *p, const void *input, void *output);

/*
 * MEAN or SUM over any set of axes. Each output is the int32 sum of the raw input values it
 * covers, minus count * input_zero_point, requantized with double rounding and offset by the
 * output zero point. Both reference interpreters round twice here. For MEAN the compiler folds
 * 1/count into the multiplier. The kept axes enumerate the outputs in order and the reduced axes
 * the elements of one sum, each as six extents and element strides (extent 1 when unused).
 */
typedef struct {
    int32_t kept_dims[TC_MAX_DIMS];
    int32_t kept_strides[TC_MAX_DIMS];
    int32_t reduced_dims[TC_MAX_DIMS];
    int32_t reduced_strides[TC_MAX_DIMS];
    int32_t count;               /* elements summed into each output */
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier;
    int32_t shift;
} tc_reduce_params;

tc_status tc_reduce_sum_s8(const tc_reduce_params *p, const int8_t *input, int8_t *output);

/* QUANTIZE from float32 and DEQUANTIZE to float32: real = scale * (q - zero_point). */
typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} tc_affine_params;

tc_status tc_quantize_f32_s8(const tc_affine_params *p, const float *input, int8_t *output);
tc_status tc_dequantize_s8_f32(const tc_affine_params *p, const int8_t *input, float *output);

/*
 * Element-wise int8 -> int8 maps: QUANTIZE between two int8 scales, RELU, RELU6, RELU_N1_TO_1
 * and LEAKY_RELU. Inputs at or above the input zero point are requantized with `multiplier`,
 * those below with `alpha_multiplier` (the same as `multiplier` except for LEAKY_RELU), with
 * double rounding as both reference interpreters do, then clamped to [act_min, act_max].
 */
typedef struct {
    int32_t size;
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier;
    int32_t shift;
    int32_t alpha_multiplier;
    int32_t alpha_shift;
    int32_t act_min;
    int32_t act_max;
} tc_elementwise_params;

tc_status tc_requantize_s8(const tc_elementwise_params *p, const int8_t *input, int8_t *output);

/* Clamp raw int8 values to [act_min, act_max] without rescaling (TFLM's RELU6). */
tc_status tc_clamp_s8(const tc_elementwise_params *p, const int8_t *input, int8_t *output);

#endif /* TC_KERNELS_EXTRA_H */
