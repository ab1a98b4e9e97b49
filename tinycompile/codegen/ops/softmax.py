"""Lower int8 SOFTMAX (to int8 or int16) over the last axis, for any beta.

The kernel works in the reference's fixed point, which scales each difference to the row
maximum by beta * input_scale into a number with 5 integer bits. The compiler precomputes that
scaling as a Q31 multiplier with a left shift, and the smallest difference whose exp() still
counts (`diff_min`), as TFLite's PreprocessSoftmaxScaling and CalculateInputRadius do. A
single-rounding build caps the multiplier at 2^30 - 1 instead of 2^31 - 1. Both caps give the
same outputs, because the differences they treat differently have an exp() that rounds to 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tinycompile import ir, quant
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_int8
from tinycompile.errors import UnsupportedModelError

SCALED_DIFF_INTEGER_BITS = 5
_OUTPUT_FORMATS = {
    # output type: (zero point, scale, kernel name)
    ir.DType.INT8: (-128, 1.0 / 256, "tc_softmax_s8"),
    ir.DType.INT16: (-32768, 1.0 / 65536, "tc_softmax_s8_s16"),
}


@dataclass(frozen=True)
class SoftmaxScaling:
    multiplier: int
    left_shift: int
    diff_min: int


def softmax_scaling(beta: float, input_scale: float, single_rounding: bool) -> SoftmaxScaling:
    """Return the input multiplier, left shift and diff_min of an int8 softmax."""
    max_real = float((1 << 30) - 1) if single_rounding else float((1 << 31) - 1)
    real = min(beta * input_scale * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), max_real)
    if not real > 1.0:
        raise ValueError(f"beta * input scale * 2^26 = {real} is not above 1")
    multiplier, shift = quant.quantize_multiplier(real, single_rounding)
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)) / float(1 << shift)
    return SoftmaxScaling(multiplier, shift, -int(math.floor(radius)))


@register("SOFTMAX")
def lower_softmax(op: ir.Operator, options: LoweringOptions) -> Layer:
    attrs: ir.SoftmaxAttrs = op.attrs
    x = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    y = op.outputs[0]

    if y.dtype not in _OUTPUT_FORMATS:
        raise UnsupportedModelError(
            f"{op.describe()}: output '{y.name}' is {y.dtype.value}; an int8 SOFTMAX writes int8 or int16"
        )
    zero_point, scale, kernel = _OUTPUT_FORMATS[y.dtype]
    if (y.quant is None or y.quant.per_channel or y.quant.scalar_zero_point != zero_point
            or abs(y.quant.scalar_scale - scale) > 0.001 * scale):
        got = (f"scale {y.quant.scalar_scale} and zero point {y.quant.scalar_zero_point}"
               if y.quant is not None else "no quantization")
        raise UnsupportedModelError(
            f"{op.describe()}: output '{y.name}' has {got}; a {y.dtype.value} SOFTMAX output needs scale "
            f"1/{round(1 / scale)} and zero point {zero_point}"
        )
    if not x.shape or x.shape != y.shape or x.num_elements == 0:
        raise UnsupportedModelError(
            f"{op.describe()}: input shape {list(x.shape)} and output shape {list(y.shape)} must be equal, "
            "non-empty and have at least one dimension"
        )

    beta = float(attrs.beta)
    try:
        scaling = softmax_scaling(beta, x.quant.scalar_scale, options.single_rounding)
    except ValueError:
        raise UnsupportedModelError(
            f"{op.describe()}: beta {beta} times the input scale {x.quant.scalar_scale} is too small for the "
            "int8 kernel's fixed-point exp(); requantize the input to a larger scale"
        ) from None

    depth = x.shape[-1]
    params = CStruct("tc_softmax_params", {
        "outer_size": x.num_elements // depth,
        "depth": depth,
        "input_multiplier": scaling.multiplier,
        "input_left_shift": scaling.left_shift,
        "diff_min": scaling.diff_min,
    })
    return Layer(op, kernel, [params, x, y], sources=("tc_softmax_s8.c",), macs=x.num_elements)
