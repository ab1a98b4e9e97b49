"""Fold two patterns that TFLite converters leave in int8 transformer models into int8 operators.

1. A float island DEQUANTIZE -> NEG / SQUARE / ABS (one or more) -> QUANTIZE, which the converter
   emits for LayerNormalization's negated mean and for tf.square. The island maps each int8 input
   value to one int8 output value, so it becomes a TC_INT8_LUT operator whose table the pass
   computes with the references' float32 arithmetic. Only ops that are exact in float32 fold, so
   the table matches the reference on every value.
2. Keras' negative-index wrap in front of GATHER: SELECT(LESS(i, 0), ADD(i, n), i) with n the
   gathered axis' size. The pass drops the three int32 ops and marks the GATHER to add n to a
   negative index itself, which computes the same output and fails on the same out-of-range ids.

Both run before validation, because the float island would otherwise be rejected.
"""

from __future__ import annotations

import logging

import numpy as np

from tinycompile import ir
from tinycompile.codegen.ops.transformer_fixedpoint import affine_float_lut
from tinycompile.codegen.ops.transformer_gather import WrappedGatherAttrs
from tinycompile.codegen.ops.transformer_lut import LUT_OP, LutAttrs

log = logging.getLogger(__name__)

_EXACT_FLOAT_UNARY = {
    "NEG": lambda v: -v,
    "SQUARE": lambda v: v * v,
    "ABS": lambda v: abs(v),
}


def fold_transformer_patterns(graph: ir.Graph) -> None:
    """Apply both folds to `graph` in place."""
    folded = _fold_float_islands(graph) + _fold_index_wraps(graph)
    if folded:
        graph.renumber()
        log.info("folded %d converter patterns into int8 operators", folded)


def _single_consumer(graph: ir.Graph, consumers: dict, t: ir.Tensor) -> ir.Operator | None:
    users = consumers.get(id(t), [])
    if len(users) != 1 or any(t is out for out in graph.outputs):
        return None
    return users[0]


def _is_int8(t: ir.Tensor | None) -> bool:
    return t is not None and t.dtype == ir.DType.INT8 and t.quant is not None and not t.quant.per_channel


def _fold_float_islands(graph: ir.Graph) -> int:
    consumers = graph.consumers()
    removed: set[int] = set()
    replacements: dict[int, ir.Operator] = {}
    for op in graph.operators:
        if op.op_type != "DEQUANTIZE" or not _is_int8(op.inputs[0]) or op.inputs[0].is_constant:
            continue
        chain = []
        current = op.outputs[0]
        next_op = _single_consumer(graph, consumers, current)
        while next_op is not None and next_op.op_type in _EXACT_FLOAT_UNARY:
            chain.append(next_op)
            current = next_op.outputs[0]
            next_op = _single_consumer(graph, consumers, current)
        if not chain or next_op is None or next_op.op_type != "QUANTIZE" or not _is_int8(next_op.outputs[0]):
            continue
        x, y = op.inputs[0], next_op.outputs[0]
        functions = [_EXACT_FLOAT_UNARY[c.op_type] for c in chain]

        def composed(v, functions=functions):
            for f in functions:
                v = np.float32(f(v))
            return v

        table = affine_float_lut(x.quant.scalar_scale, x.quant.scalar_zero_point,
                                 y.quant.scalar_scale, y.quant.scalar_zero_point, composed)
        names = " -> ".join(["DEQUANTIZE", *(c.op_type for c in chain), "QUANTIZE"])
        lut = ir.Operator(index=op.index, op_type=LUT_OP, inputs=[x], outputs=[y], attrs=LutAttrs(table, names))
        replacements[id(op)] = lut
        removed.update(id(o) for o in [*chain, next_op])
    if not replacements:
        return 0
    graph.operators = [replacements.get(id(o), o) for o in graph.operators if id(o) not in removed]
    return len(replacements)


def _constant_scalar(t: ir.Tensor | None) -> int | None:
    if t is None or not t.is_constant or t.num_elements != 1 or t.dtype not in (ir.DType.INT32, ir.DType.INT64):
        return None
    return int(np.asarray(t.data).reshape(-1)[0])


def _fold_index_wraps(graph: ir.Graph) -> int:
    producers = graph.producers()
    consumers = graph.consumers()
    removed: set[int] = set()
    count = 0
    for op in graph.operators:
        if op.op_type != "GATHER" or len(op.inputs) < 2 or op.inputs[1] is None:
            continue
        select = producers.get(id(op.inputs[1]))
        if select is None or select.op_type not in ("SELECT", "SELECT_V2") or len(select.inputs) != 3:
            continue
        if _single_consumer(graph, consumers, select.outputs[0]) is not op:
            continue
        cond, if_true, if_false = select.inputs
        less, add = producers.get(id(cond)), producers.get(id(if_true))
        if less is None or add is None or less.op_type != "LESS" or add.op_type != "ADD":
            continue
        index = if_false
        if less.inputs[0] is not index or add.inputs[0] is not index or index.dtype != ir.DType.INT32:
            continue
        if tuple(cond.shape) != tuple(index.shape) or tuple(if_true.shape) != tuple(index.shape):
            continue
        attrs = op.attrs if isinstance(op.attrs, ir.GatherAttrs) else ir.GatherAttrs()
        table = op.inputs[0]
        axis = attrs.axis + len(table.shape) if attrs.axis < 0 else attrs.axis
        if _constant_scalar(less.inputs[1]) != 0 or _constant_scalar(add.inputs[1]) != table.shape[axis]:
            continue
        if _single_consumer(graph, consumers, cond) is not select or \
                _single_consumer(graph, consumers, if_true) is not select:
            continue
        op.inputs[1] = index
        op.attrs = WrappedGatherAttrs(axis=attrs.axis, batch_dims=attrs.batch_dims, wrap_negative=True)
        removed.update({id(less), id(add), id(select)})
        count += 1
    if count:
        graph.operators = [o for o in graph.operators if id(o) not in removed]
    return count
