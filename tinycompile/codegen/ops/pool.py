"""Lower AVERAGE_POOL_2D and MAX_POOL_2D."""

from __future__ import annotations

from tinycompile import ir, quant
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_int8, same_quantization
from tinycompile.codegen.ops.common import check_activation, output_size, padding_before
from tinycompile.codegen.ops.specialize import specialize_layer
from tinycompile.errors import UnsupportedModelError


@register("AVERAGE_POOL_2D", "MAX_POOL_2D")
def lower_pool2d(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: ir.Pool2DAttrs = op.attrs
    check_activation(op, a.activation)
    x = require_int8(op, op.inputs[0], "input")
    y = require_int8(op, op.outputs[0], "output")
    if len(x.shape) != 4:
        raise UnsupportedModelError(f"{op.describe()}: input must be 4-D NHWC, got {list(x.shape)}")
    if not same_quantization(x, y):
        raise UnsupportedModelError(
            f"{op.describe()}: input and output quantization differ; int8 pooling needs the same scale and zero point"
        )
    n, in_h, in_w, c = x.shape
    out_h = output_size(a.padding, in_h, a.filter_h, a.stride_h)
    out_w = output_size(a.padding, in_w, a.filter_w, a.stride_w)
    if y.shape != (n, out_h, out_w, c):
        raise UnsupportedModelError(
            f"{op.describe()}: output shape {list(y.shape)} does not match the expected {[n, out_h, out_w, c]}"
        )
    act_min, act_max = quant.activation_range(a.activation, y.quant)
    params = CStruct("tc_pool_params", {
        "batches": n, "in_h": in_h, "in_w": in_w, "channels": c,
        "out_h": out_h, "out_w": out_w,
        "filter_h": a.filter_h, "filter_w": a.filter_w,
        "stride_h": a.stride_h, "stride_w": a.stride_w,
        "pad_top": padding_before(a.padding, in_h, a.filter_h, a.stride_h, 1, out_h),
        "pad_left": padding_before(a.padding, in_w, a.filter_w, a.stride_w, 1, out_w),
        "act_min": act_min, "act_max": act_max,
    })
    kernel = "tc_avg_pool2d_s8" if op.op_type == "AVERAGE_POOL_2D" else "tc_max_pool2d_s8"
    layer = Layer(op, kernel, [params, x, y], sources=("tc_pool2d_s8.c",),
                  macs=y.num_elements * a.filter_h * a.filter_w)
    return specialize_layer(layer, options)
