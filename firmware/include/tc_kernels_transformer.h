/*
 * Kernels of the transformer op family: table lookups for int8 element-wise functions, GATHER
 * and EMBEDDING_LOOKUP, BATCH_MATMUL, SQUARED_DIFFERENCE, and the data movement ops TRANSPOSE,
 * SLICE / STRIDED_SLICE and CONCATENATION. Shapes, strides and tables are computed by the
 * compiler; kernels only loop. Every kernel computes what the reference kernel of the same op
 * in TFLM (double rounding) or LiteRT (TC_SINGLE_ROUNDING) computes.
 */
#ifndef TC_KERNELS_TRANSFORMER_H
#define TC_KERNELS_TRANSFORMER_H

#include "tc_common.h"

#define TC_TX_MAX_DIMS 6

/* An int8 -> int8 function given by its value at each of the 256 inputs. */
typedef struct {
    int32_t size;                /* elements */
    const int8_t *table;         /* table[x + 128] is the output for input x */
    int32_t error_below;         /* inputs below this value fail the layer (-129: none) */
} tc_lut_params;

tc_status tc_lut_s8(const tc_lut_params *p, const int8_t *input, int8_t *output);

/*
 * GATHER along one axis: output[outer][i][inner] = params[outer][index[i]][inner], with
 * `batches` leading dimensions that the params and indices share (batch_dims).
 * An index outside [0, axis_size) fails the layer, as in both references; with `wrap_negative`
 * an index in [-axis_size, 0) first has axis_size added (the pattern Keras emits).
 */
typedef struct {
    int32_t batches;
    int32_t outer;               /* product of params dims between batch_dims and axis */
    int32_t axis_size;
    int32_t indices_per_batch;
    int32_t inner_bytes;         /* bytes of one slice after the axis */
    int32_t index_bytes;         /* 4 (int32 indices) or 8 (int64 indices) */
    int32_t wrap_negative;
} tc_gather_params;

tc_status tc_gather(const tc_gather_params *p, const void *params, const void *indices, void *output);

/* out[b] = requantize(lhs[b] x rhs[b]); batch strides are 0 along broadcast dimensions. */
typedef struct {
    int32_t batch_dims[3];
    int32_t lhs_batch_strides[3];   /* elements */
    int32_t rhs_batch_strides[3];
    int32_t rows, cols, depth;      /* output rows x cols, accumulation depth */
    int32_t lhs_row_stride, lhs_depth_stride;   /* elements; these encode adj_x */
    int32_t rhs_depth_stride, rhs_col_stride;   /* these encode adj_y */
    int32_t lhs_offset, rhs_offset, output_offset;
    int32_t multiplier, shift;
    int32_t act_min, act_max;
} tc_batch_matmul_params;

tc_status tc_batch_matmul_s8(const tc_batch_matmul_params *p, const int8_t *lhs, const int8_t *rhs,
                             int8_t *output);

/* SQUARED_DIFFERENCE with broadcasting (fields as in tc_binary_params of tc_kernels.h). */
typedef struct {
    int32_t out_dims[TC_TX_MAX_DIMS];
    int32_t in1_strides[TC_TX_MAX_DIMS];
    int32_t in2_strides[TC_TX_MAX_DIMS];
    int32_t input1_offset, input2_offset, output_offset;
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
    int32_t left_shift;
    int32_t act_min, act_max;
} tc_squared_difference_params;

tc_status tc_squared_difference_s8(const tc_squared_difference_params *p, const int8_t *input1,
                                   const int8_t *input2, int8_t *output);

/*
 * Strided copy of elements of `element_bytes` bytes: the output is read in order and element
 * (i0..i5) comes from input[start + sum(ik * strides[k])]. TRANSPOSE, SLICE and STRIDED_SLICE
 * all lower to it; strides may be negative.
 */
typedef struct {
    int32_t out_dims[TC_TX_MAX_DIMS];
    int32_t strides[TC_TX_MAX_DIMS];    /* input elements */
    int32_t start;                       /* input element of the first output element */
    int32_t element_bytes;
} tc_strided_copy_params;

tc_status tc_strided_copy(const tc_strided_copy_params *p, const void *input, void *output);

/* CONCATENATION of up to 8 inputs along one axis, all with the output's quantization. */
#define TC_CONCAT_MAX_INPUTS 8
typedef struct {
    int32_t num_inputs;
    int32_t outer;                                  /* product of dims before the axis */
    int32_t chunk_bytes[TC_CONCAT_MAX_INPUTS];      /* bytes of each input per outer step */
} tc_concat_params;

/* Inputs past num_inputs are NULL. */
tc_status tc_concatenation(const tc_concat_params *p, const void *in0, const void *in1, const void *in2,
                           const void *in3, const void *in4, const void *in5, const void *in6,
                           const void *in7, void *output);

#endif /* TC_KERNELS_TRANSFORMER_H */
