"""Lower int8 BATCH_MATMUL (adj_x, adj_y, broadcast batch dimensions) and SQUARED_DIFFERENCE."""

from __future__ import annotations

import numpy as np

from tinycompile import ir, quant
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_int8
from tinycompile.codegen.ops.elementwise import broadcast_strides
from tinycompile.errors import UnsupportedModelError

MAX_BATCH_DIMS = 3
SQUARED_DIFFERENCE_LEFT_SHIFT = 7   # headroom bits the reference kernels give the inputs


def _batch_strides(op: ir.Operator, batch: tuple[int, ...], out_batch: tuple[int, ...], matrix: int) -> list[int]:
    padded = (1,) * (MAX_BATCH_DIMS - len(batch)) + tuple(batch)
    strides = [0] * MAX_BATCH_DIMS
    step = matrix
    for axis in reversed(range(MAX_BATCH_DIMS)):
        if padded[axis] == out_batch[axis]:
            strides[axis] = step if padded[axis] > 1 else 0
        elif padded[axis] != 1:
            raise UnsupportedModelError(f"{op.describe()}: batch dimensions {list(batch)} cannot be broadcast")
        step *= padded[axis]
    return strides


@register("BATCH_MATMUL")
def lower_batch_matmul(op: ir.Operator, options: LoweringOptions) -> Layer:
    attrs: ir.BatchMatMulAttrs = op.attrs if isinstance(op.attrs, ir.BatchMatMulAttrs) else ir.BatchMatMulAttrs()
    lhs = require_int8(op, op.inputs[0], "lhs")
    rhs = require_int8(op, op.inputs[1], "rhs")
    y = require_int8(op, op.outputs[0], "output")
    if len(lhs.shape) < 2 or len(rhs.shape) < 2:
        raise UnsupportedModelError(f"{op.describe()}: BATCH_MATMUL inputs need at least 2 dimensions")
    lhs_batch, rhs_batch = lhs.shape[:-2], rhs.shape[:-2]
    if max(len(lhs_batch), len(rhs_batch)) > MAX_BATCH_DIMS:
        raise UnsupportedModelError(f"{op.describe()}: at most {MAX_BATCH_DIMS} batch dimensions are supported")
    rows, depth = (lhs.shape[-1], lhs.shape[-2]) if attrs.adj_x else (lhs.shape[-2], lhs.shape[-1])
    rhs_depth, cols = (rhs.shape[-1], rhs.shape[-2]) if attrs.adj_y else (rhs.shape[-2], rhs.shape[-1])
    if depth != rhs_depth:
        raise UnsupportedModelError(
            f"{op.describe()}: inner dimensions differ ({depth} and {rhs_depth}) for shapes "
            f"{list(lhs.shape)} and {list(rhs.shape)}"
        )
    try:
        out_batch = tuple(np.broadcast_shapes(lhs_batch, rhs_batch))
    except ValueError:
        raise UnsupportedModelError(
            f"{op.describe()}: batch dimensions {list(lhs_batch)} and {list(rhs_batch)} cannot be broadcast"
        ) from None
    out_batch3 = (1,) * (MAX_BATCH_DIMS - len(out_batch)) + out_batch
    expected = int(np.prod(out_batch, dtype=np.int64)) * rows * cols
    if y.num_elements != expected:
        raise UnsupportedModelError(f"{op.describe()}: output has {y.num_elements} elements, expected {expected}")
    # GetQuantizedConvolutionMultipler multiplies the two input scales in float32.
    product = float(np.float32(lhs.quant.scalar_scale) * np.float32(rhs.quant.scalar_scale))
    # Both references round twice in this kernel, so the multiplier ignores options.single_rounding.
    multiplier, shift = quant.quantize_multiplier(product / float(y.quant.scalar_scale))
    params = CStruct("tc_batch_matmul_params", {
        "batch_dims": list(out_batch3),
        "lhs_batch_strides": _batch_strides(op, lhs_batch, out_batch3, rows * depth),
        "rhs_batch_strides": _batch_strides(op, rhs_batch, out_batch3, depth * cols),
        "rows": rows, "cols": cols, "depth": depth,
        "lhs_row_stride": 1 if attrs.adj_x else depth,
        "lhs_depth_stride": rows if attrs.adj_x else 1,
        "rhs_depth_stride": 1 if attrs.adj_y else cols,
        "rhs_col_stride": depth if attrs.adj_y else 1,
        "lhs_offset": -lhs.quant.scalar_zero_point,
        "rhs_offset": -rhs.quant.scalar_zero_point,
        "output_offset": y.quant.scalar_zero_point,
        "multiplier": multiplier, "shift": shift,
        "act_min": quant.INT8_MIN, "act_max": quant.INT8_MAX,
    })
    return Layer(op, "tc_batch_matmul_s8", [params, lhs, rhs, y], sources=("tc_transformer_matmul.c",),
                 macs=expected * depth)


@register("SQUARED_DIFFERENCE")
def lower_squared_difference(op: ir.Operator, options: LoweringOptions) -> Layer:
    a = require_int8(op, op.inputs[0], "input 1")
    b = require_int8(op, op.inputs[1], "input 2")
    y = require_int8(op, op.outputs[0], "output")
    try:
        out_shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise UnsupportedModelError(
            f"{op.describe()}: input shapes {list(a.shape)} and {list(b.shape)} cannot be broadcast"
        ) from None
    if int(np.prod(out_shape, dtype=np.int64)) != y.num_elements:
        raise UnsupportedModelError(f"{op.describe()}: output shape {list(y.shape)} is not {list(out_shape)}")
    s1, s2, so = (float(t.quant.scale[0]) for t in (a, b, y))
    single = False    # both references round twice here, see tc_transformer_matmul.c
    twice_max = float(np.float32(2.0) * np.float32(max(s1, s2)))
    m1, sh1 = quant.quantize_multiplier_smaller_than_one(s1 / twice_max, single)
    m2, sh2 = quant.quantize_multiplier_smaller_than_one(s2 / twice_max, single)
    real_out = (twice_max * twice_max) / ((1 << (2 * SQUARED_DIFFERENCE_LEFT_SHIFT)) * so)
    mo, sho = quant.quantize_multiplier(real_out, single)
    out_dims = [1] * (6 - len(out_shape)) + list(out_shape)
    params = CStruct("tc_squared_difference_params", {
        "out_dims": out_dims,
        "in1_strides": broadcast_strides(op, a.shape, out_shape),
        "in2_strides": broadcast_strides(op, b.shape, out_shape),
        "input1_offset": -a.quant.scalar_zero_point,
        "input2_offset": -b.quant.scalar_zero_point,
        "output_offset": y.quant.scalar_zero_point,
        "input1_multiplier": m1, "input1_shift": sh1,
        "input2_multiplier": m2, "input2_shift": sh2,
        "output_multiplier": mo, "output_shift": sho,
        "left_shift": SQUARED_DIFFERENCE_LEFT_SHIFT,
        "act_min": quant.INT8_MIN, "act_max": quant.INT8_MAX,
    })
    return Layer(op, "tc_squared_difference_s8", [params, a, b, y], sources=("tc_transformer_matmul.c",),
                 macs=y.num_elements)
