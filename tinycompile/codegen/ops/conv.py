"""Lower CONV_2D (including grouped convolution) and DEPTHWISE_CONV_2D."""

from __future__ import annotations

import dataclasses

from tinycompile import ir
from tinycompile.codegen.lowering import (CStruct, Layer, LoweringOptions, Scratch, register, require_constant,
                                          require_int8)
from tinycompile.codegen.ops.common import (bias_arg, check_activation, layer_symbol, output_size,
                                            padding_before, requant_struct)
from tinycompile.codegen.ops.specialize import fast_depthwise_inplace, specialize_layer
from tinycompile.errors import UnsupportedModelError


def _conv_geometry(op: ir.Operator, x: ir.Tensor, y: ir.Tensor, filter_h: int, filter_w: int) -> dict:
    a: ir.Conv2DAttrs = op.attrs
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise UnsupportedModelError(f"{op.describe()}: input and output must be 4-D NHWC tensors")
    n, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    exp_h = output_size(a.padding, in_h, filter_h, a.stride_h, a.dilation_h)
    exp_w = output_size(a.padding, in_w, filter_w, a.stride_w, a.dilation_w)
    if (exp_h, exp_w) != (out_h, out_w):
        raise UnsupportedModelError(
            f"{op.describe()}: output is {out_h}x{out_w} but padding {a.padding.value}, stride and filter give "
            f"{exp_h}x{exp_w}"
        )
    return {
        "batches": n, "in_h": in_h, "in_w": in_w, "in_c": in_c,
        "out_h": out_h, "out_w": out_w, "out_c": out_c,
        "filter_h": filter_h, "filter_w": filter_w,
        "stride_h": a.stride_h, "stride_w": a.stride_w,
        "dilation_h": a.dilation_h, "dilation_w": a.dilation_w,
        "pad_top": padding_before(a.padding, in_h, filter_h, a.stride_h, a.dilation_h, out_h),
        "pad_left": padding_before(a.padding, in_w, filter_w, a.stride_w, a.dilation_w, out_w),
    }


@register("CONV_2D")
def lower_conv2d(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: ir.Conv2DAttrs = op.attrs
    check_activation(op, a.activation)
    x = require_int8(op, op.inputs[0], "input")
    w = require_int8(op, require_constant(op, op.inputs[1], "filter"), "filter")
    y = require_int8(op, op.outputs[0], "output")
    if len(w.shape) != 4:
        raise UnsupportedModelError(f"{op.describe()}: filter '{w.name}' must be 4-D OHWI, got {list(w.shape)}")
    out_c, filter_h, filter_w, filter_in_c = w.shape
    geometry = _conv_geometry(op, x, y, filter_h, filter_w)
    if geometry["in_c"] % filter_in_c != 0 or out_c % (geometry["in_c"] // filter_in_c) != 0:
        raise UnsupportedModelError(
            f"{op.describe()}: input depth {geometry['in_c']} is not a multiple of the filter depth {filter_in_c}"
        )
    bias = bias_arg(op, op.inputs[2] if len(op.inputs) > 2 else None, out_c)
    name = layer_symbol(op)
    params = CStruct("tc_conv_params", {
        **geometry,
        "filter_in_c": filter_in_c,
        "depth_multiplier": 1,
        "q": requant_struct(op, name, x, w, y, out_c, a.activation, options),
    })
    macs = y.num_elements * filter_h * filter_w * filter_in_c
    layer = Layer(op, "tc_conv2d_s8", [params, x, w, bias, y], sources=("tc_conv2d_s8.c",), macs=macs)
    return specialize_layer(layer, options)


@register("DEPTHWISE_CONV_2D")
def lower_depthwise_conv2d(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: ir.DepthwiseConv2DAttrs = op.attrs
    check_activation(op, a.activation)
    x = require_int8(op, op.inputs[0], "input")
    w = require_int8(op, require_constant(op, op.inputs[1], "filter"), "filter")
    y = require_int8(op, op.outputs[0], "output")
    if len(w.shape) != 4 or w.shape[0] != 1:
        raise UnsupportedModelError(f"{op.describe()}: filter '{w.name}' must be 1HWC, got {list(w.shape)}")
    _, filter_h, filter_w, out_c = w.shape
    geometry = _conv_geometry(op, x, y, filter_h, filter_w)
    in_c = geometry["in_c"]
    # Converters sometimes leave depth_multiplier at 0 or 1 while the shapes say otherwise;
    # the shapes are authoritative, as in TFLM.
    if out_c % in_c != 0 or geometry["out_c"] != out_c:
        raise UnsupportedModelError(
            f"{op.describe()}: filter depth {out_c} is not a multiple of the input depth {in_c}"
        )
    multiplier = out_c // in_c
    bias = bias_arg(op, op.inputs[2] if len(op.inputs) > 2 else None, out_c)
    name = layer_symbol(op)
    params = CStruct("tc_conv_params", {
        **geometry,
        "filter_in_c": 1,
        "depth_multiplier": multiplier,
        "q": requant_struct(op, name, x, w, y, out_c, a.activation, options),
    })
    macs = y.num_elements * filter_h * filter_w
    layer = Layer(op, "tc_depthwise_conv2d_s8", [params, x, w, bias, y],
                  sources=("tc_depthwise_conv2d_s8.c",), macs=macs)
    return specialize_layer(layer, options)


def depthwise_inplace(layer: Layer, options: LoweringOptions) -> Layer | None:
    """Rewrite a depthwise layer to tc_depthwise_conv2d_s8_inplace, which writes over its input.

    Returns None unless the depth multiplier is 1. The memory plan must put the output at the
    input's offset. The kernel gets the output's pointer (the same address, but writable) and one
    input channel plane of scratch. A layer that uses a specialized kernel is lowered again for
    the portable one first, because the in-place kernel reads the portable parameters.
    """
    if layer.kernel == "tc_fast_depthwise_conv2d_s8":
        return fast_depthwise_inplace(layer)    # that kernel runs in place as it is
    if layer.kernel != "tc_depthwise_conv2d_s8":
        layer = lower_depthwise_conv2d(layer.op, dataclasses.replace(options, kernels="portable"))
    params, x, weights, bias, output = layer.args
    if params.fields["depth_multiplier"] != 1 or output.num_elements > x.num_elements:
        return None
    plane = params.fields["in_h"] * params.fields["in_w"]
    return dataclasses.replace(layer, kernel="tc_depthwise_conv2d_s8_inplace",
                               args=[params, output, weights, bias, Scratch(plane)],
                               sources=("tc_depthwise_inplace_s8.c",), inplace_ok=(0,))
