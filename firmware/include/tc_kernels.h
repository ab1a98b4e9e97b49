/*
 * Portable int8 kernels of tinycompile.
 *
 * Layout is NHWC for activations. Conv filters are OHWI, depthwise filters are 1HW(C*M), fully
 * connected weights are [out, in]. Every kernel computes exactly what TFLite Micro's reference
 * kernel of the same op computes (and what LiteRT's BUILTIN_REF kernel computes when the build
 * sets TC_SINGLE_ROUNDING), element for element. Parameters are plain structs filled in by the
 * compiler as const data; kernels never allocate.
 */
#ifndef TC_KERNELS_H
#define TC_KERNELS_H

#include "tc_common.h"

/* Requantization and clamping shared by conv, depthwise and fully connected layers. */
typedef struct {
    int32_t input_offset;        /* minus the input zero point */
    int32_t weight_offset;       /* minus the weight zero point (0 for symmetric weights) */
    int32_t output_offset;       /* the output zero point */
    int32_t act_min;             /* fused activation bounds in the output domain */
    int32_t act_max;
    int32_t per_channel;         /* 1: multiplier/shift have one entry per output channel */
    const int32_t *multiplier;
    const int32_t *shift;
} tc_requant_params;

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t filter_in_c;         /* in_c / groups */
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;
    int32_t depth_multiplier;    /* depthwise only */
    tc_requant_params q;
} tc_conv_params;

tc_status tc_conv2d_s8(const tc_conv_params *p, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, int8_t *output);

tc_status tc_depthwise_conv2d_s8(const tc_conv_params *p, const int8_t *input, const int8_t *filter,
                                 const int32_t *bias, int8_t *output);

typedef struct {
    int32_t batches;
    int32_t in_features;
    int32_t out_features;
    tc_requant_params q;
} tc_fc_params;

tc_status tc_fully_connected_s8(const tc_fc_params *p, const int8_t *input, const int8_t *weights,
                                const int32_t *bias, int8_t *output);

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t act_min, act_max;
} tc_pool_params;

tc_status tc_avg_pool2d_s8(const tc_pool_params *p, const int8_t *input, int8_t *output);
tc_status tc_max_pool2d_s8(const tc_pool_params *p, const int8_t *input, int8_t *output);

#define TC_MAX_DIMS 6

/* Broadcast element-wise binary op. Strides are in elements, 0 along broadcast dimensions. */
typedef struct {
    int32_t out_dims[TC_MAX_DIMS];
    int32_t in1_strides[TC_MAX_DIMS];
    int32_t in2_strides[TC_MAX_DIMS];
    int32_t flat_size;           /* > 0: no broadcasting, a flat loop over this many elements */
    int32_t input1_offset, input2_offset, output_offset;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t left_shift;
    int32_t act_min, act_max;
} tc_binary_params;

tc_status tc_add_s8(const tc_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
tc_status tc_sub_s8(const tc_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);
tc_status tc_mul_s8(const tc_binary_params *p, const int8_t *input1, const int8_t *input2, int8_t *output);

#include "tc_kernels_extra.h"

#include "tc_onnx_kernels.h"

#include "tc_kernels_transformer.h"

#include "tc_kernels_inplace.h"

#include "tc_kernels_fast.h"

#endif /* TC_KERNELS_H */
