"""Lower shape-only ops (RESHAPE, SQUEEZE, EXPAND_DIMS) to zero-copy aliases of their input."""

from __future__ import annotations

from tinycompile import ir
from tinycompile.codegen.lowering import Layer, LoweringOptions, register
from tinycompile.errors import UnsupportedModelError


@register("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def lower_reshape(op: ir.Operator, options: LoweringOptions) -> Layer:
    x = op.inputs[0]
    y = op.outputs[0]
    if x is None or x.num_elements != y.num_elements or x.dtype != y.dtype:
        raise UnsupportedModelError(
            f"{op.describe()}: input and output must have the same number of elements and type"
        )
    if x.quant is not None and y.quant is not None and (
        float(x.quant.scale[0]) != float(y.quant.scale[0]) or int(x.quant.zero_point[0]) != int(y.quant.zero_point[0])
    ):
        raise UnsupportedModelError(f"{op.describe()}: a reshape may not change quantization parameters")
    return Layer(op, None, alias_of=x)
