"""Reject models that are not full-integer int8 before any lowering runs.

A model is compilable when every operator computes on int8 activations. Float tensors may only
appear at the graph boundary, read by a QUANTIZE or written by a DEQUANTIZE. The checks give the
reason a model fails (float model, weight-only quantization, int16 activations) with the operator
and tensor that show it, and say how to re-convert.
"""

from __future__ import annotations

from tinycompile import ir
from tinycompile.errors import UnsupportedModelError

FULL_INTEGER_HINT = (
    "convert it to full-integer int8 with TFLiteConverter: optimizations=[tf.lite.Optimize.DEFAULT], "
    "a representative_dataset and target_spec.supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8]"
)

# Ops whose float inputs or outputs are legitimate at the graph boundary.
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE", "ONNX_QUANTIZE", "ONNX_DEQUANTIZE"}


def validate_graph(graph: ir.Graph) -> None:
    """Raise UnsupportedModelError if the graph is not a full-integer int8 model."""
    if not graph.operators:
        raise UnsupportedModelError(f"model '{graph.name}' has no operators; there is nothing to compile")
    for op in graph.operators:
        _check_operator(op)


def _check_operator(op: ir.Operator) -> None:
    if op.op_type == "DEQUANTIZE" and op.inputs and op.inputs[0] is not None and op.inputs[0].is_constant:
        raise UnsupportedModelError(
            f"{op.describe()} dequantizes the constant '{op.inputs[0].name}': the model is weight-only "
            f"(dynamic-range) quantized and computes in float; {FULL_INTEGER_HINT}"
        )
    for role, tensors in (("input", op.inputs), ("output", op.outputs)):
        for t in tensors:
            if t is None:
                continue
            if t.dtype == ir.DType.INT16 and not t.is_constant:
                raise UnsupportedModelError(
                    f"{op.describe()} has int16 {role} '{t.name}': 16x8 quantized activations are not "
                    "supported; convert with int8 activations (TFLITE_BUILTINS_INT8)"
                )
            if t.dtype in (ir.DType.FLOAT32, ir.DType.FLOAT16):
                if op.op_type in _BOUNDARY_OPS:
                    continue
                kind = "weight-only quantized" if _has_int8_constant(op) else "a float model"
                raise UnsupportedModelError(
                    f"{op.describe()} has {t.dtype.value} {role} '{t.name}': the model is {kind}; "
                    f"{FULL_INTEGER_HINT}"
                )


def _has_int8_constant(op: ir.Operator) -> bool:
    return any(t is not None and t.is_constant and t.dtype == ir.DType.INT8 for t in op.inputs)
