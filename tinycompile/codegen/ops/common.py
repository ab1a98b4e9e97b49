"""Pieces shared by several lowerings: padding arithmetic and requantization structs."""

from __future__ import annotations

import numpy as np

from tinycompile import ir, quant
from tinycompile.codegen.lowering import ConstArray, CStruct, LoweringOptions, symbol_for
from tinycompile.errors import UnsupportedModelError


def output_size(padding: ir.Padding, in_size: int, filter_size: int, stride: int, dilation: int = 1) -> int:
    effective = (filter_size - 1) * dilation + 1
    if padding == ir.Padding.SAME:
        return (in_size + stride - 1) // stride
    return (in_size - effective + stride) // stride


def padding_before(padding: ir.Padding, in_size: int, filter_size: int, stride: int, dilation: int,
                   out_size: int) -> int:
    """Return the padding before the first element, as TFLite's ComputePaddingHeightWidth does.

    An odd total padding puts the extra element after the data, so the value before is floor(total / 2).
    """
    if padding == ir.Padding.VALID:
        return 0
    effective = (filter_size - 1) * dilation + 1
    total = max(0, (out_size - 1) * stride + effective - in_size)
    return total // 2


def requant_struct(op: ir.Operator, name: str, input_t: ir.Tensor, weights_t: ir.Tensor, output_t: ir.Tensor,
                   channels: int, activation: ir.Activation, options: LoweringOptions) -> CStruct:
    """Build the tc_requant_params struct of a conv, depthwise or fully connected layer."""
    wq = weights_t.quant
    if wq.per_channel and wq.scale.size != channels:
        raise UnsupportedModelError(
            f"{op.describe()}: weights '{weights_t.name}' have {wq.scale.size} per-channel scales "
            f"for {channels} output channels"
        )
    mult, shift = quant.per_channel_multipliers(
        input_t.quant.scalar_scale, wq.scale, output_t.quant.scalar_scale, channels if wq.per_channel else 1,
        options.single_rounding,
    )
    act_min, act_max = quant.activation_range(activation, output_t.quant)
    weight_zp = int(wq.zero_point[0])
    if np.any(wq.zero_point != weight_zp):
        raise UnsupportedModelError(
            f"{op.describe()}: weights '{weights_t.name}' have different zero points per channel"
        )
    return CStruct("tc_requant_params", {
        "input_offset": -input_t.quant.scalar_zero_point,
        "weight_offset": -weight_zp,
        "output_offset": output_t.quant.scalar_zero_point,
        "act_min": act_min,
        "act_max": act_max,
        "per_channel": 1 if wq.per_channel else 0,
        "multiplier": ConstArray(f"{name}_multiplier", "int32_t", mult),
        "shift": ConstArray(f"{name}_shift", "int32_t", shift),
    })


def layer_symbol(op: ir.Operator) -> str:
    """Return the prefix of a layer's C symbols."""
    return f"tc_layer{op.index}"


def check_activation(op: ir.Operator, activation: ir.Activation) -> None:
    if activation in (ir.Activation.TANH, ir.Activation.SIGN_BIT):
        raise UnsupportedModelError(
            f"{op.describe()}: fused activation {activation.value} is not supported on int8 layers"
        )


def bias_arg(op: ir.Operator, bias: ir.Tensor | None, channels: int):
    """Return the bias tensor (a const int32 vector) or None when the layer has no bias."""
    if bias is None:
        return None
    if not bias.is_constant:
        raise UnsupportedModelError(f"{op.describe()}: bias '{bias.name}' must be a constant")
    if bias.dtype != ir.DType.INT32:
        raise UnsupportedModelError(
            f"{op.describe()}: bias '{bias.name}' is {bias.dtype.value}; int8 layers need an int32 bias "
            "(int64 biases belong to int16 models, which are not supported)"
        )
    if bias.num_elements != channels:
        raise UnsupportedModelError(
            f"{op.describe()}: bias '{bias.name}' has {bias.num_elements} elements for {channels} channels"
        )
    return bias


__all__ = ["output_size", "padding_before", "requant_struct", "layer_symbol", "bias_arg",
           "check_activation", "symbol_for"]
