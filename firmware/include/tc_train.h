/*
 * Backward and update kernels of tinycompile's on-device training step.
 *
 * The training step differentiates the int8 graph itself. Gradients are float32 and are taken
 * with respect to the integer values of each tensor (one unit = one quantization step), with
 * rounding treated as the identity (straight-through estimator). For a conv, depthwise or fully
 * connected layer with accumulator acc = sum((x + input_offset) * (w + weight_offset)) + bias and
 * output y = clamp(round(acc * M) + output_offset), the layer's backward pass is:
 *   g_acc = g_y * M[c] where act_min < y < act_max, else 0     (tc_train_mask_scale)
 *   g_bias[c] = sum of g_acc over positions                     (tc_train_bias_grad)
 *   g_x = transposed convolution of g_acc with w                 (tc_train_*_input_grad)
 *   g_w = correlation of g_acc with x + input_offset            (tc_train_*_weight_grad)
 * Trainable parameters live in SRAM as float32 "master" copies of the updated slices, in integer
 * units. Quantization-aware scaling (QAS) divides a weight gradient by s_w^2 and a bias gradient
 * by (s_x * s_w)^2 before the SGD step, because the int8 weight is W / s_w and the int32 bias is
 * b / (s_x * s_w). Kernels that read the parameters get int8 weights and int32 biases
 * re-quantized from the masters (round half away from zero, weights clamped to [-127, 127]).
 *
 * Layouts are those of the forward kernels: NHWC activations, OHWI conv filters, 1HWC depthwise
 * filters, [out, in] fully connected weights. A "slice" selects indices along a weight's last
 * axis: input channels of a conv or fully connected layer, channels of a depthwise layer.
 */
#ifndef TC_TRAIN_H
#define TC_TRAIN_H

#include "tc_common.h"
#include "tc_kernels.h"

/* The updated part of one weight tensor, viewed as [rows][cols] with cols its last axis. */
typedef struct {
    int32_t rows;              /* elements before the last axis: O*H*W (conv), H*W (depthwise), O (FC) */
    int32_t cols;              /* length of the last axis */
    int32_t count;             /* selected columns; the master copy is [rows][count] */
    const int32_t *index;      /* the selected columns, ascending */
    int32_t rows_per_channel;  /* rows of one output channel (H*W conv, 1 FC); 0: the column is the channel */
    const float *qas;          /* per output channel: 1 / s_w^2 */
} tc_train_slice;

/* Gradient mask of a clamped int8 output and per-channel scale of the requantization. The mask
 * is packed one bit per element by tc_train_pack_mask during the forward pass, so the backward
 * pass needs 1/8 of the output's memory instead of the output itself. */
typedef struct {
    int32_t count;             /* elements */
    int32_t channels;          /* length of the innermost axis */
    const float *scale;        /* per channel, or NULL for 1 */
} tc_train_mask_params;

typedef struct {
    int32_t count;
    float scale1, scale2;      /* s_input / s_output of each input */
    int32_t accumulate1, accumulate2;  /* 1: add to the input gradient, 0: overwrite it */
} tc_train_add_params;

/* Master copies: initialize from the int8 or int32 parameters, and re-quantize back. */
void tc_train_master_from_weights(const tc_train_slice *s, const int8_t *weights, float *master);
void tc_train_materialize_weights(const tc_train_slice *s, const int8_t *frozen, const float *master,
                                  int8_t *weights);
void tc_train_master_from_bias(int32_t count, const int32_t *bias, float *master);
void tc_train_materialize_bias(int32_t count, const float *master, int32_t *bias);

/* SGD with QAS: master -= lr * grad * qas. */
void tc_train_sgd_weights(const tc_train_slice *s, const float *grad, float *master, float lr);
void tc_train_sgd_bias(int32_t count, const float *grad, const float *qas, float *master, float lr);

/* Copy the selected channels x[p][index[j] / divisor] of each position p into dst[p][j]. */
void tc_train_gather_channels(int32_t positions, int32_t channels, int32_t count, const int32_t *index,
                              int32_t divisor, const int8_t *x, int8_t *dst);

/* Set bit i of `bits` (LSB first) where act_min < y[i] < act_max: where the clamp passes the gradient. */
void tc_train_pack_mask(int32_t count, int32_t act_min, int32_t act_max, const int8_t *y, uint8_t *bits);

/* grad[i] *= scale[channel] where bit i is set, else grad[i] = 0. */
void tc_train_mask_scale(const tc_train_mask_params *p, const uint8_t *bits, float *grad);
void tc_train_bias_grad(int32_t positions, int32_t channels, const float *grad, float *grad_bias);

tc_status tc_train_conv_input_grad(const tc_conv_params *p, const float *grad_out, const int8_t *filter,
                                   float *grad_in, int32_t accumulate);
tc_status tc_train_depthwise_input_grad(const tc_conv_params *p, const float *grad_out, const int8_t *filter,
                                        float *grad_in, int32_t accumulate);
tc_status tc_train_fc_input_grad(const tc_fc_params *p, const float *grad_out, const int8_t *weights,
                                 float *grad_in, int32_t accumulate);

/* Weight gradients of the slice, [rows][count]. `x` contains either all input channels
 * (x_is_slice = 0) or only the selected ones, as tc_train_gather_channels writes them. */
tc_status tc_train_conv_weight_grad(const tc_conv_params *p, const tc_train_slice *s, const int8_t *x,
                                    int32_t x_is_slice, const float *grad_out, float *grad_w);
tc_status tc_train_depthwise_weight_grad(const tc_conv_params *p, const tc_train_slice *s, const int8_t *x,
                                         int32_t x_is_slice, const float *grad_out, float *grad_w);
tc_status tc_train_fc_weight_grad(const tc_fc_params *p, const tc_train_slice *s, const int8_t *x,
                                  int32_t x_is_slice, const float *grad_out, float *grad_w);

void tc_train_add_backward(const tc_train_add_params *p, const uint8_t *bits, const float *grad_out,
                           float *grad1, float *grad2);
tc_status tc_train_avg_pool_backward(const tc_pool_params *p, const float *grad_out, float *grad_in,
                                     int32_t accumulate);
tc_status tc_train_max_pool_backward(const tc_pool_params *p, const int8_t *x, const float *grad_out,
                                     float *grad_in, int32_t accumulate);

/* Cross-entropy of softmax(scale * (logits - zero_point)) against `label`; the zero point cancels,
 * so it is not passed. Writes the gradient with respect to the int8 logits, scale * (softmax -
 * one_hot), and returns the loss. */
float tc_train_softmax_cross_entropy(int32_t count, const int8_t *logits, float scale, int32_t label,
                                     float *grad);

/* Copy `count` bytes of input to dst unless src is dst already. */
void tc_train_copy_input(int8_t *dst, const int8_t *src, int32_t count);

/* Index of the largest value, the first one on ties. */
int32_t tc_train_argmax_s8(int32_t count, const int8_t *x);

#endif /* TC_TRAIN_H */
