"""Scales of the int8 backward pass and quantization-aware scaling (QAS) of the updates.

Gradients are taken with respect to integer values. Through a conv, depthwise or fully connected
layer the gradient of the accumulator is the output gradient times the real requantization
multiplier M[c] = s_x * s_w[c] / s_y, and through ADD each input gets s_input / s_y.

QAS (Lin et al., NeurIPS 2022, section 3.1): the int8 weight is W / s_w and the int32 bias is
b / (s_x * s_w), so their gradients are s_w and s_x * s_w times the real-valued gradients, and an
SGD step on the integers must divide by s_w^2 and (s_x * s_w)^2 to move the real parameters as
float training would. These are the `qas` factors the update kernels multiply by.
"""

from __future__ import annotations

import numpy as np

from tinycompile import ir


def weight_scales(op: ir.Operator) -> np.ndarray:
    """Return the per-output-channel weight scales of a conv, depthwise or FC layer (float64)."""
    w = op.inputs[1]
    channels = int(op.outputs[0].shape[-1])
    scales = np.asarray(w.quant.scale, np.float64)
    return np.full(channels, scales[0]) if scales.size == 1 else scales


def grad_multiplier(op: ir.Operator) -> np.ndarray:
    """Return M[c] = s_x * s_w[c] / s_y, the output-to-accumulator gradient scale, as float32."""
    s_x = float(op.inputs[0].quant.scalar_scale)
    s_y = float(op.outputs[0].quant.scalar_scale)
    return (s_x * weight_scales(op) / s_y).astype(np.float32)


def weight_qas(op: ir.Operator) -> np.ndarray:
    """Return 1 / s_w[c]^2 per output channel, as float32."""
    return (1.0 / weight_scales(op) ** 2).astype(np.float32)


def bias_qas(op: ir.Operator) -> np.ndarray:
    """Return 1 / (s_x * s_w[c])^2 per output channel, as float32."""
    s_x = float(op.inputs[0].quant.scalar_scale)
    return (1.0 / (s_x * weight_scales(op)) ** 2).astype(np.float32)


def add_input_scales(op: ir.Operator) -> tuple[float, float]:
    """Return s_a / s_y and s_b / s_y of an ADD."""
    s_y = float(op.outputs[0].quant.scalar_scale)
    return (float(op.inputs[0].quant.scalar_scale) / s_y, float(op.inputs[1].quant.scalar_scale) / s_y)
