"""Lower the standalone int8 activations RELU, RELU6, RELU_N1_TO_1 and LEAKY_RELU.

The two reference interpreters differ here by more than rounding, so the lowering follows the
one the compile targets:

- TFLM rescales RELU with input_scale / output_scale computed in double. Its RELU6 does not
  rescale at all but clamps the raw input between the quantized 0 and 6 of the input scale and
  ignores the output quantization. It has no RELU_N1_TO_1, which therefore follows LiteRT in
  both modes.
- LiteRT rescales RELU, RELU6 and RELU_N1_TO_1 alike, with input_scale / output_scale computed
  in float, and clamps to the output's quantized bounds.
- Both compute LEAKY_RELU's two multipliers (identity and alpha) in float.

Bounds are quantized as zero_point + round(bound / scale) in float, rounding half away from
zero. Every requantization here rounds twice in both interpreters.
"""

from __future__ import annotations

import numpy as np

from tinycompile import ir, quant
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_int8
from tinycompile.errors import UnsupportedModelError

_BOUNDS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def _quantize_bound(value: float, scale: float, zero_point: int) -> int:
    """zero_point + round(value / scale) with a float division, as the reference computes bounds."""
    return zero_point + quant.round_half_away(float(np.float32(value) / np.float32(scale)))


def _float_ratio(*factors: float, divisor: float) -> float:
    """Multiply `factors` and divide by `divisor` in float32, rounding each step as C float code does."""
    value = np.float32(factors[0])
    for f in factors[1:]:
        value = np.float32(value * np.float32(f))
    return float(np.float32(value / np.float32(divisor)))


def _params(x: ir.Tensor, y: ir.Tensor, multiplier: tuple[int, int], alpha: tuple[int, int],
            act_min: int, act_max: int) -> CStruct:
    return CStruct("tc_elementwise_params", {
        "size": x.num_elements,
        "input_zero_point": x.quant.scalar_zero_point,
        "output_zero_point": y.quant.scalar_zero_point,
        "multiplier": multiplier[0],
        "shift": multiplier[1],
        "alpha_multiplier": alpha[0],
        "alpha_shift": alpha[1],
        "act_min": act_min,
        "act_max": act_max,
    })


def _operands(op: ir.Operator) -> tuple[ir.Tensor, ir.Tensor]:
    x = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    y = require_int8(op, op.outputs[0], "output")
    if x.num_elements != y.num_elements:
        raise UnsupportedModelError(f"{op.describe()}: input {list(x.shape)} and output {list(y.shape)} differ in size")
    return x, y


@register("RELU", "RELU6", "RELU_N1_TO_1")
def lower_relu(op: ir.Operator, options: LoweringOptions) -> Layer:
    x, y = _operands(op)
    low, high = _BOUNDS[op.op_type]
    s_in, s_out = x.quant.scalar_scale, y.quant.scalar_scale
    zp_in, zp_out = x.quant.scalar_zero_point, y.quant.scalar_zero_point
    if options.rounding == "tflm" and op.op_type == "RELU6":
        six = min(quant.INT8_MAX, max(quant.INT8_MIN, _quantize_bound(6.0, s_in, zp_in)))
        params = _params(x, y, (0, 0), (0, 0), zp_in, six)
        return Layer(op, "tc_clamp_s8", [params, x, y], sources=("tc_activation_s8.c",), inplace_ok=(0,))
    # TFLM has no RELU_N1_TO_1, so LiteRT's arithmetic defines it in both modes.
    tflm_arithmetic = options.rounding == "tflm" and op.op_type != "RELU_N1_TO_1"
    ratio = s_in / s_out if tflm_arithmetic else _float_ratio(s_in, divisor=s_out)
    multiplier = quant.quantize_multiplier(ratio, options.single_rounding)
    act_min = max(quant.INT8_MIN, _quantize_bound(low, s_out, zp_out))
    act_max = quant.INT8_MAX if high is None else min(quant.INT8_MAX, _quantize_bound(high, s_out, zp_out))
    params = _params(x, y, multiplier, multiplier, act_min, act_max)
    return Layer(op, "tc_requantize_s8", [params, x, y], sources=("tc_activation_s8.c",), inplace_ok=(0,))


@register("LEAKY_RELU")
def lower_leaky_relu(op: ir.Operator, options: LoweringOptions) -> Layer:
    attrs: ir.LeakyReluAttrs = op.attrs
    x, y = _operands(op)
    s_in, s_out = x.quant.scalar_scale, y.quant.scalar_scale
    identity = quant.quantize_multiplier(_float_ratio(s_in, divisor=s_out), options.single_rounding)
    alpha = quant.quantize_multiplier(_float_ratio(s_in, attrs.alpha, divisor=s_out), options.single_rounding)
    params = _params(x, y, identity, alpha, quant.INT8_MIN, quant.INT8_MAX)
    return Layer(op, "tc_requantize_s8", [params, x, y], sources=("tc_activation_s8.c",), inplace_ok=(0,))
