"""Lower PAD and PADV2 (constant padding) of tensors of up to six dimensions and any element type.

The paddings must be a constant [rank, 2] int32 or int64 tensor, which the compiler folds into
the kernel's amounts before each dimension. PAD fills with the output zero point (0 for
unquantized types) and PADV2 with its constant operand. The kernel only moves bytes, so input
and output must share their quantization, and the pad value travels as the bytes of one element.
"""

from __future__ import annotations

import numpy as np

from tinycompile import ir
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_constant
from tinycompile.errors import UnsupportedModelError

MAX_DIMS = 6
_PADDING_TYPES = (ir.DType.INT32, ir.DType.INT64)


def _same_quantization(a: ir.Tensor, b: ir.Tensor) -> bool:
    if a.quant is None or b.quant is None:
        return a.quant is None and b.quant is None
    return (a.quant.scale.size == 1 and b.quant.scale.size == 1
            and float(a.quant.scale[0]) == float(b.quant.scale[0])
            and int(a.quant.zero_point[0]) == int(b.quant.zero_point[0]))


def _pad_value(op: ir.Operator, x: ir.Tensor, y: ir.Tensor) -> np.ndarray:
    """Return one element of the padding value as a 0-d array of the tensor's type."""
    constant = op.inputs[2] if op.op_type == "PADV2" and len(op.inputs) > 2 else None
    if constant is None:
        zero = y.quant.scalar_zero_point if y.quant is not None else 0
        return np.asarray(zero, dtype=y.dtype.numpy)
    require_constant(op, constant, "constant value")
    if constant.dtype != y.dtype or constant.num_elements != 1:
        raise UnsupportedModelError(
            f"{op.describe()}: constant value '{constant.name}' must be one {y.dtype.value} element, got "
            f"{constant.dtype.value}{list(constant.shape)}"
        )
    if constant.quant is not None and not _same_quantization(constant, y):
        raise UnsupportedModelError(
            f"{op.describe()}: constant value '{constant.name}' is quantized differently from the output "
            f"'{y.name}'; requantize it to the output's scale and zero point"
        )
    return np.asarray(constant.data.reshape(-1)[0], dtype=y.dtype.numpy)


@register("PAD", "PADV2")
def lower_pad(op: ir.Operator, options: LoweringOptions) -> Layer:
    if len(op.inputs) < 2 or op.inputs[0] is None:
        raise UnsupportedModelError(f"{op.describe()}: needs an input and a paddings tensor")
    x = op.inputs[0]
    y = op.outputs[0]
    paddings = require_constant(op, op.inputs[1], "paddings")
    rank = len(x.shape)

    if paddings.dtype not in _PADDING_TYPES or paddings.num_elements != 2 * rank:
        raise UnsupportedModelError(
            f"{op.describe()}: paddings '{paddings.name}' must be an int32 or int64 [{rank}, 2] tensor, got "
            f"{paddings.dtype.value}{list(paddings.shape)}"
        )
    if rank > MAX_DIMS:
        raise UnsupportedModelError(f"{op.describe()}: input has {rank} dimensions; PAD supports at most {MAX_DIMS}")
    if x.dtype != y.dtype:
        raise UnsupportedModelError(
            f"{op.describe()}: input is {x.dtype.value} but output is {y.dtype.value}; PAD cannot convert types"
        )
    if x.dtype.itemsize > 8:
        raise UnsupportedModelError(f"{op.describe()}: elements of type {x.dtype.value} are too wide to pad")
    if not _same_quantization(x, y):
        raise UnsupportedModelError(
            f"{op.describe()}: input '{x.name}' and output '{y.name}' are quantized differently; PAD copies values "
            "and needs the same scale and zero point on both"
        )

    amounts = paddings.data.reshape(rank, 2).astype(np.int64)
    if np.any(amounts < 0):
        raise UnsupportedModelError(
            f"{op.describe()}: paddings {amounts.tolist()} contain a negative amount; only non-negative padding exists"
        )
    expected = tuple(int(d + a + b) for d, (a, b) in zip(x.shape, amounts))
    if expected != tuple(y.shape):
        raise UnsupportedModelError(
            f"{op.describe()}: output shape {list(y.shape)} does not match the input {list(x.shape)} padded by "
            f"{amounts.tolist()} ({list(expected)})"
        )

    lead = MAX_DIMS - rank
    value = _pad_value(op, x, y).tobytes()
    params = CStruct("tc_pad_params", {
        "in_dims": [1] * lead + [int(d) for d in x.shape],
        "out_dims": [1] * lead + [int(d) for d in y.shape],
        "pad_before": [0] * lead + [int(a) for a in amounts[:, 0]],
        "element_size": x.dtype.itemsize,
        "pad_value": list(value + bytes(8 - len(value))),
    })
    return Layer(op, "tc_pad", [params, x, y], sources=("tc_pad.c",))
