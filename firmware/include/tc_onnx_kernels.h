/*
 * Kernels for models imported from ONNX, and TRANSPOSE.
 *
 * Activations are int8 NHWC, as in tc_kernels.h; uint8 ONNX tensors are stored as int8 with the
 * zero point lowered by 128. Requantization follows ONNX Runtime's CPU kernels instead of
 * TFLite's: the int32 accumulator is converted to float, multiplied by a float32 scale, clamped
 * and rounded half to even (the rounding of QuantizeLinear). These kernels use float arithmetic,
 * so on a core without an FPU they run on the compiler's soft-float library.
 */
#ifndef TC_ONNX_KERNELS_H
#define TC_ONNX_KERNELS_H

#include "tc_common.h"

/* Round to the nearest integer, halves to even, for |x| < 2^22 (callers clamp to the int8/uint8 range first). */
TC_INLINE int32_t tc_round_half_even(float x)
{
    int32_t i = (int32_t)x;          /* truncates toward zero */
    float frac = x - (float)i;       /* exact for |x| < 2^23 */
    if (frac > 0.5f || (frac == 0.5f && (i & 1))) {
        return i + 1;
    }
    if (frac < -0.5f || (frac == -0.5f && (i & 1))) {
        return i - 1;
    }
    return i;
}

/* ONNX Runtime's requantization: clamp(round_half_even(value), lo - zp, hi - zp) + zp, computed in float. */
TC_INLINE int32_t tc_onnx_quantize_float(float value, int32_t zero_point, int32_t act_min, int32_t act_max)
{
    const float lo = (float)(act_min - zero_point);
    const float hi = (float)(act_max - zero_point);
    value = value < lo ? lo : (value > hi ? hi : value);
    return tc_round_half_even(value) + zero_point;
}

/* Output stage of a convolution or matrix product. */
typedef struct {
    int32_t int32_output;        /* 1: store the int32 accumulator (ConvInteger, MatMulInteger) */
    int32_t per_channel;         /* 1: scale has one entry per output channel or column */
    const float *scale;          /* input_scale * weight_scale / output_scale, rounded to float32 */
    int32_t output_zero_point;
    int32_t act_min, act_max;
} tc_onnx_requant;

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t groups;              /* the filter is OHWI with in_c / groups input channels */
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;   /* padding after the data follows from out_h and out_w */
    int32_t input_zero_point;
    int32_t weight_zero_point_per_channel;
    const int32_t *weight_zero_point;
    tc_onnx_requant q;
} tc_onnx_conv_params;

/* Output is int8_t, or int32_t when q.int32_output is set. */
tc_status tc_onnx_conv_s8(const tc_onnx_conv_params *p, const int8_t *input, const int8_t *filter,
                          const int32_t *bias, void *output);

typedef struct {
    int32_t batches;             /* number of M x N output matrices */
    int32_t m, k, n;
    const int32_t *a_offsets;    /* per output matrix: element offset of its A operand */
    const int32_t *b_offsets;    /* per output matrix: element offset of its B operand (K x N, row-major) */
    int32_t a_zero_point;
    int32_t b_zero_point_per_column;
    const int32_t *b_zero_point;
    tc_onnx_requant q;           /* per_channel: one scale per column */
} tc_onnx_matmul_params;

tc_status tc_onnx_matmul_s8(const tc_onnx_matmul_params *p, const int8_t *a, const int8_t *b,
                            const int32_t *bias, void *output);

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t count_include_pad;   /* average: divide by the whole window instead of its valid part */
    int32_t integer_sum;         /* average: QLinearGlobalAveragePool's int32 sum instead of a float sum */
    float input_scale;
    int32_t input_zero_point;
    float output_scale;
    int32_t output_zero_point;
    float rescale;               /* max: input_scale / output_scale; 1 when the quantization is shared */
    int32_t act_min, act_max;
} tc_onnx_pool_params;

tc_status tc_onnx_max_pool_s8(const tc_onnx_pool_params *p, const int8_t *input, int8_t *output);
tc_status tc_onnx_avg_pool_s8(const tc_onnx_pool_params *p, const int8_t *input, int8_t *output);

typedef struct {
    int32_t outer, axis_size, inner;
    float input_scale;
    int32_t input_zero_point;
    float output_scale;
    int32_t output_zero_point;
    int32_t act_min, act_max;
} tc_onnx_softmax_params;

/* Dequantizes, computes softmax in float along the axis, and quantizes. */
tc_status tc_onnx_softmax_s8(const tc_onnx_softmax_params *p, const int8_t *input, int8_t *output);

#define TC_ONNX_CONCAT_MAX_INPUTS 8

typedef struct {
    int32_t outer;               /* product of the dimensions before the axis */
    int32_t num_inputs;
    int32_t inner[TC_ONNX_CONCAT_MAX_INPUTS];        /* elements per outer index of each input */
    int32_t identity[TC_ONNX_CONCAT_MAX_INPUTS];     /* 1: same quantization as the output, copy */
    float rescale[TC_ONNX_CONCAT_MAX_INPUTS];        /* input_scale / output_scale */
    int32_t input_zero_point[TC_ONNX_CONCAT_MAX_INPUTS];
    int32_t output_zero_point;
} tc_onnx_concat_params;

/* Unused trailing inputs are NULL. */
tc_status tc_onnx_concat_s8(const tc_onnx_concat_params *p, int8_t *output, const int8_t *in0, const int8_t *in1,
                            const int8_t *in2, const int8_t *in3, const int8_t *in4, const int8_t *in5,
                            const int8_t *in6, const int8_t *in7);

typedef struct {
    int32_t size;
    int32_t input_unsigned, output_unsigned;   /* 1: the buffer holds uint8_t instead of int8_t */
    int32_t identity;            /* 1: same scale, only the zero point changes: exact integer arithmetic */
    float rescale;               /* input_scale / output_scale */
    int32_t input_zero_point, output_zero_point;
    int32_t act_min, act_max;    /* in the output's own domain */
} tc_onnx_requantize_params;

tc_status tc_onnx_requantize(const tc_onnx_requantize_params *p, const void *input, void *output);

typedef struct {
    int32_t size;
    int32_t is_unsigned;         /* the integer side holds uint8_t instead of int8_t */
    float scale;
    int32_t zero_point;
    int32_t act_min, act_max;    /* quantize: bounds in the integer domain */
} tc_onnx_quant_params;

/* QuantizeLinear: round_half_even(x / scale) + zero_point, saturated. */
tc_status tc_onnx_quantize(const tc_onnx_quant_params *p, const float *input, void *output);
/* DequantizeLinear: (x - zero_point) * scale. */
tc_status tc_onnx_dequantize(const tc_onnx_quant_params *p, const void *input, float *output);

#define TC_TRANSPOSE_MAX_DIMS 6

typedef struct {
    int32_t element_size;                        /* bytes per element: 1 or 4 */
    int32_t out_dims[TC_TRANSPOSE_MAX_DIMS];     /* output shape, padded in front with 1s */
    int32_t in_strides[TC_TRANSPOSE_MAX_DIMS];   /* input element stride of each output dimension */
} tc_transpose_params;

tc_status tc_transpose(const tc_transpose_params *p, const void *input, void *output);

#endif /* TC_ONNX_KERNELS_H */
