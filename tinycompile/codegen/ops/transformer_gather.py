"""Lower GATHER and EMBEDDING_LOOKUP to a slice copy with run-time bounds checks.

Both references fail the invoke when an index lies outside the table (LiteRT's and TFLM's GATHER
and EMBEDDING_LOOKUP return an error instead of reading out of bounds), so the kernel returns
TC_ERROR_ARGUMENT on such an index and the generated tc_model_invoke returns the layer's number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinycompile import ir
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, same_quantization
from tinycompile.errors import UnsupportedModelError

_INDEX_TYPES = {ir.DType.INT32: 4, ir.DType.INT64: 8}


@dataclass
class WrappedGatherAttrs(ir.GatherAttrs):
    """GATHER attributes after a pass folded Keras' negative-index wrap (x < 0 ? x + n : x) into it."""

    wrap_negative: bool = False


def _check_value_types(op: ir.Operator, table: ir.Tensor, y: ir.Tensor) -> None:
    if table.dtype != y.dtype:
        raise UnsupportedModelError(
            f"{op.describe()}: table '{table.name}' is {table.dtype.value} but output '{y.name}' is {y.dtype.value}"
        )
    if table.dtype in (ir.DType.FLOAT32, ir.DType.FLOAT16):
        raise UnsupportedModelError(f"{op.describe()}: float tables are not supported; convert to full-integer int8")
    if table.dtype == ir.DType.INT8 and table.quant is not None and y.quant is not None \
            and not same_quantization(table, y):
        raise UnsupportedModelError(
            f"{op.describe()}: output '{y.name}' is quantized differently from table '{table.name}'"
        )


def _index_bytes(op: ir.Operator, indices: ir.Tensor) -> int:
    if indices.dtype not in _INDEX_TYPES:
        raise UnsupportedModelError(
            f"{op.describe()}: indices '{indices.name}' are {indices.dtype.value}; int32 and int64 indices are supported"
        )
    return _INDEX_TYPES[indices.dtype]


def _gather_layer(op: ir.Operator, table: ir.Tensor, indices: ir.Tensor, y: ir.Tensor, axis: int, batch_dims: int,
                  wrap_negative: bool) -> Layer:
    shape = table.shape
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    batches = int(np.prod(shape[:batch_dims], dtype=np.int64))
    outer = int(np.prod(shape[batch_dims:axis], dtype=np.int64))
    per_batch = int(np.prod(indices.shape[batch_dims:], dtype=np.int64))
    expected = batches * outer * per_batch * inner
    if y.num_elements != expected:
        raise UnsupportedModelError(
            f"{op.describe()}: output '{y.name}' has {y.num_elements} elements, expected {expected}"
        )
    params = CStruct("tc_gather_params", {
        "batches": batches,
        "outer": outer,
        "axis_size": shape[axis],
        "indices_per_batch": per_batch,
        "inner_bytes": inner * table.dtype.itemsize,
        "index_bytes": _index_bytes(op, indices),
        "wrap_negative": 1 if wrap_negative else 0,
    })
    return Layer(op, "tc_gather", [params, table, indices, y], sources=("tc_transformer_gather.c",))


@register("GATHER")
def lower_gather(op: ir.Operator, options: LoweringOptions) -> Layer:
    table, indices = op.inputs[0], op.inputs[1]
    y = op.outputs[0]
    if table is None or indices is None:
        raise UnsupportedModelError(f"{op.describe()}: GATHER needs params and indices")
    _check_value_types(op, table, y)
    attrs: ir.GatherAttrs = op.attrs if isinstance(op.attrs, ir.GatherAttrs) else ir.GatherAttrs()
    rank = len(table.shape)
    axis = attrs.axis + rank if attrs.axis < 0 else attrs.axis
    batch_dims = attrs.batch_dims + len(indices.shape) if attrs.batch_dims < 0 else attrs.batch_dims
    if not 0 <= axis < rank:
        raise UnsupportedModelError(f"{op.describe()}: axis {attrs.axis} is outside the params' rank {rank}")
    if not 0 <= batch_dims <= axis or batch_dims > len(indices.shape):
        raise UnsupportedModelError(f"{op.describe()}: batch_dims {attrs.batch_dims} is invalid for axis {axis}")
    if tuple(table.shape[:batch_dims]) != tuple(indices.shape[:batch_dims]):
        raise UnsupportedModelError(
            f"{op.describe()}: the first {batch_dims} dimensions of params {list(table.shape)} and indices "
            f"{list(indices.shape)} differ"
        )
    return _gather_layer(op, table, indices, y, axis, batch_dims, getattr(attrs, "wrap_negative", False))


@register("EMBEDDING_LOOKUP")
def lower_embedding_lookup(op: ir.Operator, options: LoweringOptions) -> Layer:
    indices, table = op.inputs[0], op.inputs[1]
    y = op.outputs[0]
    if table is None or indices is None:
        raise UnsupportedModelError(f"{op.describe()}: EMBEDDING_LOOKUP needs ids and a value table")
    if len(indices.shape) != 1:
        raise UnsupportedModelError(f"{op.describe()}: ids '{indices.name}' must be 1-D, got {list(indices.shape)}")
    if indices.dtype != ir.DType.INT32:
        raise UnsupportedModelError(f"{op.describe()}: ids '{indices.name}' must be int32")
    if len(table.shape) < 2:
        raise UnsupportedModelError(f"{op.describe()}: value table '{table.name}' must have at least 2 dimensions")
    _check_value_types(op, table, y)
    return _gather_layer(op, table, indices, y, axis=0, batch_dims=0, wrap_negative=False)
