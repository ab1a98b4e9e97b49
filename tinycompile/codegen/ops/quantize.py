"""Lower QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32).

Float conversions sit at the graph boundary. The kernel divides by the scale in float and rounds
half away from zero, as both reference interpreters do. An int8 -> int8 QUANTIZE changes scale
and zero point with one multiplier, input_scale / output_scale computed in double, and both
interpreters requantize with double rounding.
"""

from __future__ import annotations

from tinycompile import ir, quant
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_int8
from tinycompile.errors import UnsupportedModelError


def _check_shapes(op: ir.Operator, x: ir.Tensor, y: ir.Tensor) -> None:
    if x.num_elements != y.num_elements:
        raise UnsupportedModelError(
            f"{op.describe()}: input {list(x.shape)} and output {list(y.shape)} differ in size"
        )


def requantize_params(op: ir.Operator, x: ir.Tensor, y: ir.Tensor, options: LoweringOptions) -> CStruct:
    """Parameters of tc_requantize_s8 for an int8 -> int8 QUANTIZE."""
    multiplier, shift = quant.quantize_multiplier(x.quant.scalar_scale / y.quant.scalar_scale,
                                                  options.single_rounding)
    return CStruct("tc_elementwise_params", {
        "size": x.num_elements,
        "input_zero_point": x.quant.scalar_zero_point,
        "output_zero_point": y.quant.scalar_zero_point,
        "multiplier": multiplier,
        "shift": shift,
        "alpha_multiplier": multiplier,
        "alpha_shift": shift,
        "act_min": quant.INT8_MIN,
        "act_max": quant.INT8_MAX,
    })


def _affine(op: ir.Operator, t: ir.Tensor) -> CStruct:
    scale = t.quant.scalar_scale
    if not scale > 0.0:
        raise UnsupportedModelError(f"{op.describe()}: tensor '{t.name}' has scale {scale}; it must be positive")
    return CStruct("tc_affine_params", {"size": t.num_elements, "scale": scale, "zero_point": t.quant.scalar_zero_point})


@register("QUANTIZE")
def lower_quantize(op: ir.Operator, options: LoweringOptions) -> Layer:
    x = op.inputs[0] if op.inputs else None
    y = require_int8(op, op.outputs[0], "output")
    if x is None:
        raise UnsupportedModelError(f"{op.describe()}: missing input tensor")
    _check_shapes(op, x, y)
    if x.dtype == ir.DType.FLOAT32:
        return Layer(op, "tc_quantize_f32_s8", [_affine(op, y), x, y], sources=("tc_quantize.c",))
    if x.dtype == ir.DType.INT8:
        require_int8(op, x, "input")
        return Layer(op, "tc_requantize_s8", [requantize_params(op, x, y, options), x, y],
                     sources=("tc_activation_s8.c",), inplace_ok=(0,))
    raise UnsupportedModelError(
        f"{op.describe()}: input '{x.name}' is {x.dtype.value}; QUANTIZE to int8 reads float32 or int8"
    )


@register("DEQUANTIZE")
def lower_dequantize(op: ir.Operator, options: LoweringOptions) -> Layer:
    x = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    y = op.outputs[0]
    if y.dtype != ir.DType.FLOAT32:
        raise UnsupportedModelError(
            f"{op.describe()}: output '{y.name}' is {y.dtype.value}; DEQUANTIZE of int8 writes float32"
        )
    _check_shapes(op, x, y)
    return Layer(op, "tc_dequantize_s8_f32", [_affine(op, x), x, y], sources=("tc_quantize.c",))
