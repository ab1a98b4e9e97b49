"""Lower the int8 binary element-wise ops ADD, SUB and MUL, with broadcasting."""

from __future__ import annotations

import numpy as np

from tinycompile import ir, quant
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_int8
from tinycompile.codegen.ops.common import check_activation
from tinycompile.codegen.ops.specialize import specialize_layer
from tinycompile.errors import UnsupportedModelError

MAX_DIMS = 6
ADD_LEFT_SHIFT = 20  # headroom bits TFLite gives int8 ADD and SUB before rescaling


def broadcast_strides(op: ir.Operator, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Return element strides of `in_shape` read as `out_shape` (numpy broadcasting), padded to six dims."""
    if len(in_shape) > MAX_DIMS or len(out_shape) > MAX_DIMS:
        raise UnsupportedModelError(f"{op.describe()}: broadcasting supports at most {MAX_DIMS} dimensions")
    padded = (1,) * (MAX_DIMS - len(in_shape)) + tuple(in_shape)
    out = (1,) * (MAX_DIMS - len(out_shape)) + tuple(out_shape)
    strides = [0] * MAX_DIMS
    step = 1
    for axis in reversed(range(MAX_DIMS)):
        if padded[axis] == out[axis]:
            strides[axis] = step if padded[axis] > 1 else 0
        elif padded[axis] == 1:
            strides[axis] = 0
        else:
            raise UnsupportedModelError(
                f"{op.describe()}: shape {list(in_shape)} cannot be broadcast to {list(out_shape)}"
            )
        step *= padded[axis]
    return strides


def broadcast_fields(op: ir.Operator, a: ir.Tensor, b: ir.Tensor, y: ir.Tensor) -> dict:
    """Return the out_dims/strides/flat_size fields of tc_binary_params."""
    try:
        expected = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise UnsupportedModelError(
            f"{op.describe()}: input shapes {list(a.shape)} and {list(b.shape)} cannot be broadcast"
        ) from None
    if tuple(expected) != tuple(y.shape) and int(np.prod(expected)) != y.num_elements:
        raise UnsupportedModelError(
            f"{op.describe()}: output shape {list(y.shape)} does not match the broadcast shape {list(expected)}"
        )
    out_dims = [1] * (MAX_DIMS - len(expected)) + list(expected)
    flat = a.shape == b.shape
    return {
        "out_dims": out_dims,
        "in1_strides": broadcast_strides(op, a.shape, tuple(expected)),
        "in2_strides": broadcast_strides(op, b.shape, tuple(expected)),
        "flat_size": y.num_elements if flat else 0,
    }


@register("ADD", "SUB", "MUL")
def lower_binary(op: ir.Operator, options: LoweringOptions) -> Layer:
    attrs: ir.ActivationAttrs = op.attrs
    check_activation(op, attrs.activation)
    a = require_int8(op, op.inputs[0], "input 1")
    b = require_int8(op, op.inputs[1], "input 2")
    y = require_int8(op, op.outputs[0], "output")
    s1, s2, so = (float(t.quant.scale[0]) for t in (a, b, y))
    single = options.single_rounding
    fields: dict = {**broadcast_fields(op, a, b, y)}
    fields.update(input1_offset=-a.quant.scalar_zero_point, input2_offset=-b.quant.scalar_zero_point,
                  output_offset=y.quant.scalar_zero_point)
    if op.op_type == "MUL":
        m, s = quant.quantize_multiplier(s1 * s2 / so, single)
        fields.update(input1_multiplier=0, input1_shift=0, input2_multiplier=0, input2_shift=0,
                      output_multiplier=m, output_shift=s, left_shift=0)
    else:
        twice_max = 2.0 * max(s1, s2)
        m1, sh1 = quant.quantize_multiplier_smaller_than_one(s1 / twice_max, single)
        m2, sh2 = quant.quantize_multiplier_smaller_than_one(s2 / twice_max, single)
        real_out = twice_max / ((1 << ADD_LEFT_SHIFT) * so)
        if not 0.0 < real_out < 1.0:
            raise UnsupportedModelError(
                f"{op.describe()}: output scale {so} is too small for the int8 {op.op_type} kernel "
                f"(rescale factor {real_out} must be below 1)"
            )
        mo, sho = quant.quantize_multiplier_smaller_than_one(real_out, single)
        fields.update(input1_multiplier=m1, input1_shift=sh1, input2_multiplier=m2, input2_shift=sh2,
                      output_multiplier=mo, output_shift=sho, left_shift=ADD_LEFT_SHIFT)
    act_min, act_max = quant.activation_range(attrs.activation, y.quant)
    fields.update(act_min=act_min, act_max=act_max)
    params = CStruct("tc_binary_params", fields)
    kernel = {"ADD": "tc_add_s8", "SUB": "tc_sub_s8", "MUL": "tc_mul_s8"}[op.op_type]
    # The kernel reads element i of an input that is not broadcast just before it writes output
    # element i, so the output may overwrite such an input. A broadcast input is read again later.
    inplace = tuple(i for i, t in enumerate((a, b)) if t.num_elements == y.num_elements)
    layer = Layer(op, kernel, [params, a, b, y], sources=("tc_binary_s8.c",), macs=y.num_elements,
                  inplace_ok=inplace)
    return specialize_layer(layer, options)
