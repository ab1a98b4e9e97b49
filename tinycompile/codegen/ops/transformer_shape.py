"""Lower the data movement ops TRANSPOSE, SLICE, STRIDED_SLICE and CONCATENATION.

TRANSPOSE, SLICE and STRIDED_SLICE all become one strided copy: the compiler resolves the
permutation, the begin/size or begin/end/strides and every mask into the output's dimensions, an
input stride per output dimension and a start offset. They move values without changing them, so
int8 inputs must share the output's quantization, and any element type is accepted.
"""

from __future__ import annotations

import numpy as np

from tinycompile import ir
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, same_quantization
from tinycompile.errors import UnsupportedModelError

MAX_DIMS = 6
MAX_CONCAT_INPUTS = 8


def _constant_vector(op: ir.Operator, t: ir.Tensor | None, role: str) -> list[int]:
    if t is None or not t.is_constant:
        raise UnsupportedModelError(f"{op.describe()}: {role} must be a constant tensor")
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def _check_same_values(op: ir.Operator, x: ir.Tensor, y: ir.Tensor) -> None:
    if x.dtype != y.dtype:
        raise UnsupportedModelError(f"{op.describe()}: input is {x.dtype.value} but output is {y.dtype.value}")
    if x.dtype in (ir.DType.FLOAT32, ir.DType.FLOAT16):
        raise UnsupportedModelError(f"{op.describe()}: float tensors are not supported; convert to full-integer int8")
    if x.quant is not None and y.quant is not None and not same_quantization(x, y):
        raise UnsupportedModelError(
            f"{op.describe()}: input '{x.name}' and output '{y.name}' have different quantization parameters"
        )


def _element_strides(shape: tuple[int, ...]) -> list[int]:
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    return strides


def strided_copy_layer(op: ir.Operator, x: ir.Tensor, y: ir.Tensor, dims: list[int], strides: list[int],
                       start: int) -> Layer:
    """Return a tc_strided_copy layer; dims/strides are the output's, in input elements."""
    if len(dims) > MAX_DIMS:
        raise UnsupportedModelError(f"{op.describe()}: at most {MAX_DIMS} dimensions are supported")
    if int(np.prod(dims, dtype=np.int64)) != y.num_elements:
        raise UnsupportedModelError(
            f"{op.describe()}: output '{y.name}' has {y.num_elements} elements, expected {int(np.prod(dims))}"
        )
    pad = MAX_DIMS - len(dims)
    params = CStruct("tc_strided_copy_params", {
        "out_dims": [1] * pad + list(dims),
        "strides": [0] * pad + list(strides),
        "start": start,
        "element_bytes": x.dtype.itemsize,
    })
    return Layer(op, "tc_strided_copy", [params, x, y], sources=("tc_transformer_shape.c",))


@register("TRANSPOSE")
def lower_transpose(op: ir.Operator, options: LoweringOptions) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    _check_same_values(op, x, y)
    perm = _constant_vector(op, op.inputs[1], "permutation")
    rank = len(x.shape)
    perm = [p + rank if p < 0 else p for p in perm]
    if sorted(perm) != list(range(rank)):
        raise UnsupportedModelError(f"{op.describe()}: {perm} is not a permutation of {rank} dimensions")
    in_strides = _element_strides(x.shape)
    return strided_copy_layer(op, x, y, [x.shape[p] for p in perm], [in_strides[p] for p in perm], 0)


@register("SLICE")
def lower_slice(op: ir.Operator, options: LoweringOptions) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    _check_same_values(op, x, y)
    begin = _constant_vector(op, op.inputs[1], "begin")
    size = _constant_vector(op, op.inputs[2], "size")
    rank = len(x.shape)
    if len(begin) != rank or len(size) != rank:
        raise UnsupportedModelError(f"{op.describe()}: begin and size need {rank} elements")
    dims = []
    for axis, (b, s, d) in enumerate(zip(begin, size, x.shape)):
        s = d - b if s == -1 else s
        if b < 0 or s < 0 or b + s > d:
            raise UnsupportedModelError(
                f"{op.describe()}: slice [{b}, {b + s}) is outside dimension {axis} of size {d}"
            )
        dims.append(s)
    strides = _element_strides(x.shape)
    start = sum(b * s for b, s in zip(begin, strides))
    return strided_copy_layer(op, x, y, dims, strides, start)


def _axis_range(begin: int, end: int, stride: int, dim: int, begin_masked: bool, end_masked: bool,
                shrink: bool, offset: bool) -> tuple[int, int]:
    """Return (start, count) of one axis, as TFLite's StartForAxis / StopForAxis compute them."""
    if offset and not end_masked:
        end = begin + end
    if begin_masked:
        start = 0 if stride > 0 else dim - 1
    else:
        start = begin + dim if begin < 0 else begin
        start = min(max(start, 0), dim) if stride > 0 else min(max(start, -1), dim - 1)
    if shrink:
        return start, 1
    if end_masked:
        stop = dim if stride > 0 else -1
    else:
        stop = end + dim if end < 0 else end
        stop = min(max(stop, 0), dim) if stride > 0 else min(max(stop, -1), dim - 1)
    if stride > 0:
        count = max(0, -(-(stop - start) // stride))
    else:
        count = max(0, -(-(start - stop) // -stride))
    return start, count


@register("STRIDED_SLICE")
def lower_strided_slice(op: ir.Operator, options: LoweringOptions) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    _check_same_values(op, x, y)
    a: ir.StridedSliceAttrs = op.attrs
    begin = _constant_vector(op, op.inputs[1], "begin")
    end = _constant_vector(op, op.inputs[2], "end")
    strides = _constant_vector(op, op.inputs[3], "strides") if len(op.inputs) > 3 and op.inputs[3] is not None \
        else [1] * len(begin)
    if not len(begin) == len(end) == len(strides):
        raise UnsupportedModelError(f"{op.describe()}: begin, end and strides have different lengths")
    if any(s == 0 for s in strides):
        raise UnsupportedModelError(f"{op.describe()}: a stride is 0")

    rank = len(x.shape)
    in_strides = _element_strides(x.shape)
    dims: list[int] = []
    steps: list[int] = []
    start_element = 0
    axis = 0

    def take(spec: int | None) -> None:
        nonlocal axis, start_element
        if axis >= rank:
            raise UnsupportedModelError(f"{op.describe()}: the slice spec has more axes than the input's {rank}")
        if spec is None:
            start, count, stride = 0, x.shape[axis], 1
        else:
            bit = 1 << spec
            stride = strides[spec]
            start, count = _axis_range(begin[spec], end[spec], stride, x.shape[axis], bool(a.begin_mask & bit),
                                       bool(a.end_mask & bit), bool(a.shrink_axis_mask & bit), a.offset)
        start_element += start * in_strides[axis] if count else 0
        dims.append(count)
        steps.append(stride * in_strides[axis])
        axis += 1

    specs = len(begin)
    for i in range(specs):
        bit = 1 << i
        if a.ellipsis_mask & bit:
            later = sum(1 for j in range(i + 1, specs) if not a.new_axis_mask & (1 << j))
            for _ in range(rank - axis - later):
                take(None)
        elif a.new_axis_mask & bit:
            continue    # a new axis of size 1 changes the shape, not the element order
        else:
            take(i)
    while axis < rank:
        take(None)
    if 0 in dims:
        raise UnsupportedModelError(f"{op.describe()}: the slice is empty")
    return strided_copy_layer(op, x, y, dims, steps, start_element)


@register("CONCATENATION")
def lower_concatenation(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: ir.ConcatenationAttrs = op.attrs
    y = op.outputs[0]
    inputs = [t for t in op.inputs if t is not None]
    if not 1 <= len(inputs) <= MAX_CONCAT_INPUTS:
        raise UnsupportedModelError(
            f"{op.describe()}: {len(inputs)} inputs; the kernel concatenates 1 to {MAX_CONCAT_INPUTS}"
        )
    if a.activation != ir.Activation.NONE:
        raise UnsupportedModelError(f"{op.describe()}: fused activation {a.activation.value} is not supported")
    rank = len(y.shape)
    axis = a.axis + rank if a.axis < 0 else a.axis
    if not 0 <= axis < max(rank, 1):
        raise UnsupportedModelError(f"{op.describe()}: axis {a.axis} is outside the output's rank {rank}")
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    chunks = []
    for t in inputs:
        _check_same_values(op, t, y)
        if len(t.shape) != rank:
            raise UnsupportedModelError(f"{op.describe()}: input '{t.name}' has rank {len(t.shape)}, not {rank}")
        chunks.append(t.num_elements // outer * t.dtype.itemsize)
    if sum(chunks) * outer != y.nbytes:
        raise UnsupportedModelError(f"{op.describe()}: the inputs do not add up to the output's shape")
    params = CStruct("tc_concat_params", {
        "num_inputs": len(inputs),
        "outer": outer,
        "chunk_bytes": chunks + [0] * (MAX_CONCAT_INPUTS - len(chunks)),
    })
    args = [params, *inputs, *([None] * (MAX_CONCAT_INPUTS - len(inputs))), y]
    return Layer(op, "tc_concatenation", args, sources=("tc_transformer_shape.c",))
