"""Lower int8 MEAN and SUM over a constant set of axes, with or without keep_dims.

The compiler resolves the axes (negative axes wrap, repeated axes count once) into two strided
index spaces over the input. The kept axes enumerate the outputs in order, and the reduced axes
enumerate the elements summed into one output. The kernel sums raw int8 values in int32 and
requantizes sum - count * input_zero_point by input_scale / output_scale.

For MEAN the compiler first folds 1/count into that multiplier as TFLite's QuantizedMeanOrSum
does: a left shift by floor(log2(count)), at most 32 and at most 31 + shift, then an integer
division. Both reference interpreters (tflite-micro and ai-edge-litert 2.3.0) take this path for
every int8 MEAN, including equal input and output quantization and the 4-D mean over height and
width, and both round twice. keep_dims only changes the output shape, never the values.
"""

from __future__ import annotations

import numpy as np

from tinycompile import ir, quant
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_constant, require_int8
from tinycompile.errors import UnsupportedModelError

MAX_DIMS = 6


def resolve_axes(op: ir.Operator, axis: ir.Tensor, rank: int) -> list[int]:
    """Return the sorted, de-duplicated axes that `axis` names, negative axes wrapped."""
    resolved: set[int] = set()
    for a in np.asarray(axis.data).reshape(-1).tolist():
        a = int(a)
        if not -rank <= a < rank:
            raise UnsupportedModelError(
                f"{op.describe()}: axis {a} is out of range for a {rank}-D input; use -{rank}..{rank - 1}"
            )
        resolved.add(a % rank)
    return sorted(resolved)


def mean_multiplier(input_scale: float, output_scale: float, count: int, single_rounding: bool) -> tuple[int, int]:
    """Return MEAN's requantization: input_scale / output_scale with 1/count folded in."""
    multiplier, shift = quant.quantize_multiplier(float(input_scale) / float(output_scale), single_rounding)
    extra = min(count.bit_length() - 1, 32, 31 + shift)
    return int((multiplier << extra) // count), shift - extra


def _strided(dims: list[int], strides: list[int]) -> tuple[list[int], list[int]]:
    lead = MAX_DIMS - len(dims)
    return [1] * lead + dims, [0] * lead + strides


@register("MEAN", "SUM")
def lower_reduce(op: ir.Operator, options: LoweringOptions) -> Layer:
    attrs: ir.ReducerAttrs = op.attrs
    x = require_int8(op, op.inputs[0] if op.inputs else None, "input")
    y = require_int8(op, op.outputs[0], "output")
    axis = require_constant(op, op.inputs[1] if len(op.inputs) > 1 else None, "axis")
    if axis.dtype not in (ir.DType.INT32, ir.DType.INT64):
        raise UnsupportedModelError(f"{op.describe()}: axis '{axis.name}' is {axis.dtype.value}; it must be int32")
    rank = len(x.shape)
    if rank > MAX_DIMS:
        raise UnsupportedModelError(f"{op.describe()}: input has {rank} dimensions; {op.op_type} supports at most {MAX_DIMS}")
    axes = resolve_axes(op, axis, rank)

    if attrs.keep_dims:
        expected = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        expected = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    if tuple(y.shape) != expected and y.num_elements != int(np.prod(expected, dtype=np.int64)):
        raise UnsupportedModelError(
            f"{op.describe()}: output shape {list(y.shape)} does not match reducing {list(x.shape)} over axes "
            f"{axes} (keep_dims {attrs.keep_dims}): expected {list(expected)}"
        )

    strides = [int(np.prod(x.shape[i + 1:], dtype=np.int64)) for i in range(rank)]
    count = int(np.prod([x.shape[i] for i in axes], dtype=np.int64))
    if count == 0 or x.num_elements == 0:
        raise UnsupportedModelError(f"{op.describe()}: input '{x.name}' {list(x.shape)} reduces over no elements")
    kept_dims, kept_strides = _strided([x.shape[i] for i in range(rank) if i not in axes],
                                       [strides[i] for i in range(rank) if i not in axes])
    reduced_dims, reduced_strides = _strided([x.shape[i] for i in axes], [strides[i] for i in axes])

    s_in, s_out = x.quant.scalar_scale, y.quant.scalar_scale
    if op.op_type == "MEAN":
        multiplier, shift = mean_multiplier(s_in, s_out, count, options.single_rounding)
    else:
        multiplier, shift = quant.quantize_multiplier(float(s_in) / float(s_out), options.single_rounding)
    params = CStruct("tc_reduce_params", {
        "kept_dims": kept_dims,
        "kept_strides": kept_strides,
        "reduced_dims": reduced_dims,
        "reduced_strides": reduced_strides,
        "count": count,
        "input_zero_point": x.quant.scalar_zero_point,
        "output_zero_point": y.quant.scalar_zero_point,
        "multiplier": multiplier,
        "shift": shift,
    })
    return Layer(op, "tc_reduce_sum_s8", [params, x, y], sources=("tc_reduce_s8.c",), macs=x.num_elements)
