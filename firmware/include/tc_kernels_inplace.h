/*
 * Kernels that write their output over their input in the arena, so the memory planner can give
 * the output the input's bytes instead of a second buffer.
 */
#ifndef TC_KERNELS_INPLACE_H
#define TC_KERNELS_INPLACE_H

#include "tc_kernels.h"

/*
 * Depthwise convolution with depth multiplier 1, computed in place: `data` holds the NHWC input
 * on entry and the NHWC output on return (out_h * out_w <= in_h * in_w, so the output fits).
 * In NHWC, every element of channel c sits at an index congruent to c modulo the channel count,
 * in the input and in the output alike. So the kernel copies one input channel plane (in_h *
 * in_w bytes) to `scratch`, computes that channel's outputs from the copy, and writes them over
 * bytes that only held that channel. Batches run in order: output batch b ends before input
 * batch b + 1 begins, so no batch overwrites input that is still to be read.
 * The results equal tc_depthwise_conv2d_s8's element for element.
 * Returns TC_ERROR_ARGUMENT when the multiplier is not 1 or the output is larger than the input.
 */
tc_status tc_depthwise_conv2d_s8_inplace(const tc_conv_params *p, int8_t *data, const int8_t *filter,
                                         const int32_t *bias, int8_t *scratch);

#endif /* TC_KERNELS_INPLACE_H */
