"""Lower TRANSPOSE and the ONNX-only operators of `tinycompile.frontends.onnx_ir`.

Scales are turned into the float32 values that ONNX Runtime's CPU kernels compute at prepare
time (for QLinearConv: x_scale * w_scale / y_scale, evaluated left to right in float32), so that
the kernels in `firmware/kernels/tc_onnx_*.c` round the same products the same way.
"""

from __future__ import annotations

import numpy as np

from tinycompile import ir
from tinycompile.codegen import lowering
from tinycompile.codegen.lowering import ConstArray, CStruct, Layer, LoweringOptions, register
from tinycompile.codegen.ops.common import layer_symbol
from tinycompile.errors import UnsupportedModelError
from tinycompile.frontends import onnx_ir

TRANSPOSE_MAX_DIMS = 6
CONCAT_MAX_INPUTS = 8

_INTEGER_TYPES = (ir.DType.INT8, ir.DType.UINT8)


def _f32(value) -> np.float32:
    return np.float32(value)


def _require_type(op: ir.Operator, tensor: ir.Tensor | None, role: str, allowed: tuple[ir.DType, ...]) -> ir.Tensor:
    if tensor is None:
        raise UnsupportedModelError(f"{op.describe()}: missing {role} tensor")
    if tensor.dtype not in allowed:
        names = " or ".join(d.value for d in allowed)
        raise UnsupportedModelError(
            f"{op.describe()}: {role} '{tensor.name}' is {tensor.dtype.value}, but this kernel needs {names}"
        )
    return tensor


def _per_tensor(op: ir.Operator, tensor: ir.Tensor, role: str) -> tuple[np.float32, int]:
    """Return (scale, zero point) of a per-tensor quantized activation."""
    if tensor.quant is None:
        raise UnsupportedModelError(f"{op.describe()}: {role} '{tensor.name}' has no quantization parameters")
    if tensor.quant.per_channel:
        raise UnsupportedModelError(
            f"{op.describe()}: {role} '{tensor.name}' is quantized per axis; only weights may be"
        )
    return _f32(tensor.quant.scalar_scale), tensor.quant.scalar_zero_point


def _output_requant(op: ir.Operator, name: str, input_scale: np.float32, weights: ir.Tensor, output: ir.Tensor,
                    channels: int, int32_output: bool, act_min: int, act_max: int) -> CStruct:
    if int32_output:
        _require_type(op, output, "output", (ir.DType.INT32,))
        scales = np.zeros(1, np.float32)
        zero_point = 0
    else:
        _require_type(op, output, "output", (ir.DType.INT8,))
        output_scale, zero_point = _per_tensor(op, output, "output")
        weight_scales = np.asarray(weights.quant.scale, np.float32).reshape(-1)
        if weight_scales.size not in (1, channels):
            raise UnsupportedModelError(
                f"{op.describe()}: weights '{weights.name}' have {weight_scales.size} scales for {channels} channels"
            )
        # Evaluated in float32 in this order, as ONNX Runtime computes its output scales.
        scales = (input_scale * weight_scales) / output_scale
    return CStruct("tc_onnx_requant", {
        "int32_output": 1 if int32_output else 0,
        "per_channel": 1 if scales.size > 1 else 0,
        "scale": ConstArray(f"{name}_scale", "float", scales.astype(np.float32)),
        "output_zero_point": zero_point,
        "act_min": act_min,
        "act_max": act_max,
    })


def _bias(op: ir.Operator, bias: ir.Tensor | None, channels: int) -> ir.Tensor | None:
    if bias is None:
        return None
    if not bias.is_constant or bias.dtype != ir.DType.INT32 or bias.num_elements != channels:
        raise UnsupportedModelError(
            f"{op.describe()}: bias '{bias.name}' must be a constant int32 vector of {channels} elements"
        )
    return bias


def _weight_zero_points(zero_point: np.ndarray | None, channels: int) -> np.ndarray:
    values = np.zeros(1, np.int32) if zero_point is None else np.asarray(zero_point, np.int32).reshape(-1)
    if values.size not in (1, channels):
        raise ValueError(f"{values.size} weight zero points for {channels} channels")
    return values


@register(onnx_ir.ONNX_CONV)
def lower_onnx_conv(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: onnx_ir.OnnxConvAttrs = op.attrs
    x = _require_type(op, op.inputs[0], "input", (ir.DType.INT8,))
    w = _require_type(op, op.inputs[1], "filter", (ir.DType.INT8,))
    y = op.outputs[0]
    if not w.is_constant or len(w.shape) != 4 or len(x.shape) != 4 or len(y.shape) != 4:
        raise UnsupportedModelError(f"{op.describe()}: needs a 4-D NHWC input and output and a constant OHWI filter")
    n, in_h, in_w, in_c = x.shape
    _, out_h, out_w, out_c = y.shape
    _, filter_h, filter_w, filter_in_c = w.shape
    if filter_in_c * a.groups != in_c or out_c % a.groups != 0 or w.shape[0] != out_c:
        raise UnsupportedModelError(
            f"{op.describe()}: filter {list(w.shape)} does not fit input {list(x.shape)} with {a.groups} groups"
        )
    input_scale, input_zero_point = _per_tensor(op, x, "input") if x.quant else (_f32(1.0), 0)
    name = layer_symbol(op)
    zero_points = _weight_zero_points(a.weight_zero_point, out_c)
    params = CStruct("tc_onnx_conv_params", {
        "batches": n, "in_h": in_h, "in_w": in_w, "in_c": in_c,
        "out_h": out_h, "out_w": out_w, "out_c": out_c,
        "filter_h": filter_h, "filter_w": filter_w, "groups": a.groups,
        "stride_h": a.stride_h, "stride_w": a.stride_w,
        "dilation_h": a.dilation_h, "dilation_w": a.dilation_w,
        "pad_top": a.pad_top, "pad_left": a.pad_left,
        "input_zero_point": input_zero_point,
        "weight_zero_point_per_channel": 1 if zero_points.size > 1 else 0,
        "weight_zero_point": ConstArray(f"{name}_weight_zero_point", "int32_t", zero_points),
        "q": _output_requant(op, name, input_scale, w, y, out_c, a.int32_output, a.act_min, a.act_max),
    })
    bias = _bias(op, op.inputs[2] if len(op.inputs) > 2 else None, out_c)
    macs = y.num_elements * filter_h * filter_w * filter_in_c
    return Layer(op, "tc_onnx_conv_s8", [params, x, w, bias, y], sources=("tc_onnx_conv.c",), macs=macs)


@register(onnx_ir.ONNX_MATMUL)
def lower_onnx_matmul(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: onnx_ir.OnnxMatMulAttrs = op.attrs
    lhs = _require_type(op, op.inputs[0], "input A", (ir.DType.INT8,))
    rhs = _require_type(op, op.inputs[1], "input B", (ir.DType.INT8,))
    y = op.outputs[0]
    batches = int(a.a_offsets.size)
    if y.num_elements != batches * a.m * a.n:
        raise UnsupportedModelError(
            f"{op.describe()}: output '{y.name}' has {y.num_elements} elements, expected {batches * a.m * a.n}"
        )
    input_scale, a_zero_point = _per_tensor(op, lhs, "input A") if lhs.quant else (_f32(1.0), 0)
    name = layer_symbol(op)
    zero_points = _weight_zero_points(a.b_zero_point, a.n)
    params = CStruct("tc_onnx_matmul_params", {
        "batches": batches, "m": a.m, "k": a.k, "n": a.n,
        "a_offsets": ConstArray(f"{name}_a_offsets", "int32_t", np.asarray(a.a_offsets, np.int32)),
        "b_offsets": ConstArray(f"{name}_b_offsets", "int32_t", np.asarray(a.b_offsets, np.int32)),
        "a_zero_point": a_zero_point,
        "b_zero_point_per_column": 1 if zero_points.size > 1 else 0,
        "b_zero_point": ConstArray(f"{name}_b_zero_point", "int32_t", zero_points),
        "q": _output_requant(op, name, input_scale, rhs, y, a.n, a.int32_output, a.act_min, a.act_max),
    })
    bias = _bias(op, op.inputs[2] if len(op.inputs) > 2 else None, a.n)
    return Layer(op, "tc_onnx_matmul_s8", [params, lhs, rhs, bias, y], sources=("tc_onnx_conv.c",),
                 macs=batches * a.m * a.n * a.k)


@register(onnx_ir.ONNX_MAX_POOL, onnx_ir.ONNX_AVERAGE_POOL)
def lower_onnx_pool(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: onnx_ir.OnnxPoolAttrs = op.attrs
    x = _require_type(op, op.inputs[0], "input", (ir.DType.INT8,))
    y = _require_type(op, op.outputs[0], "output", (ir.DType.INT8,))
    if len(x.shape) != 4 or len(y.shape) != 4:
        raise UnsupportedModelError(f"{op.describe()}: input and output must be 4-D NHWC tensors")
    input_scale, input_zero_point = _per_tensor(op, x, "input")
    output_scale, output_zero_point = _per_tensor(op, y, "output")
    n, in_h, in_w, c = x.shape
    params = CStruct("tc_onnx_pool_params", {
        "batches": n, "in_h": in_h, "in_w": in_w, "channels": c,
        "out_h": y.shape[1], "out_w": y.shape[2],
        "filter_h": a.filter_h, "filter_w": a.filter_w,
        "stride_h": a.stride_h, "stride_w": a.stride_w,
        "dilation_h": a.dilation_h, "dilation_w": a.dilation_w,
        "pad_top": a.pad_top, "pad_left": a.pad_left,
        "count_include_pad": 1 if a.count_include_pad else 0,
        "integer_sum": 1 if a.integer_sum else 0,
        "input_scale": input_scale, "input_zero_point": input_zero_point,
        "output_scale": output_scale, "output_zero_point": output_zero_point,
        "rescale": _f32(1.0) if input_scale == output_scale else input_scale / output_scale,
        "act_min": -128, "act_max": 127,
    })
    kernel = "tc_onnx_max_pool_s8" if op.op_type == onnx_ir.ONNX_MAX_POOL else "tc_onnx_avg_pool_s8"
    return Layer(op, kernel, [params, x, y], sources=("tc_onnx_pool.c",),
                 macs=y.num_elements * a.filter_h * a.filter_w)


def _axis_split(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    axis = axis % len(shape)
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    return outer, int(shape[axis]), inner


@register(onnx_ir.ONNX_SOFTMAX)
def lower_onnx_softmax(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: onnx_ir.OnnxAxisAttrs = op.attrs
    x = _require_type(op, op.inputs[0], "input", (ir.DType.INT8,))
    y = _require_type(op, op.outputs[0], "output", (ir.DType.INT8,))
    input_scale, input_zero_point = _per_tensor(op, x, "input")
    output_scale, output_zero_point = _per_tensor(op, y, "output")
    outer, axis_size, inner = _axis_split(x.shape or (1,), a.axis)
    params = CStruct("tc_onnx_softmax_params", {
        "outer": outer, "axis_size": axis_size, "inner": inner,
        "input_scale": input_scale, "input_zero_point": input_zero_point,
        "output_scale": output_scale, "output_zero_point": output_zero_point,
        "act_min": -128, "act_max": 127,
    })
    return Layer(op, "tc_onnx_softmax_s8", [params, x, y], sources=("tc_onnx_elementwise.c",),
                 macs=x.num_elements * 2)


@register(onnx_ir.ONNX_CONCAT)
def lower_onnx_concat(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: onnx_ir.OnnxAxisAttrs = op.attrs
    y = _require_type(op, op.outputs[0], "output", (ir.DType.INT8,))
    inputs = [_require_type(op, t, f"input {i}", (ir.DType.INT8,)) for i, t in enumerate(op.inputs)]
    if not 1 <= len(inputs) <= CONCAT_MAX_INPUTS:
        raise UnsupportedModelError(f"{op.describe()}: the kernel concatenates 1 to {CONCAT_MAX_INPUTS} inputs")
    output_scale, output_zero_point = _per_tensor(op, y, "output")
    axis = a.axis % len(y.shape)
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    pad = CONCAT_MAX_INPUTS - len(inputs)
    inner, identity, rescale, zero_points = [], [], [], []
    for i, t in enumerate(inputs):
        scale, zero_point = _per_tensor(op, t, f"input {i}")
        inner.append(t.num_elements // max(outer, 1))
        identity.append(1 if scale == output_scale and zero_point == output_zero_point else 0)
        rescale.append(scale / output_scale)
        zero_points.append(zero_point)
    params = CStruct("tc_onnx_concat_params", {
        "outer": outer, "num_inputs": len(inputs),
        "inner": inner + [0] * pad, "identity": identity + [0] * pad,
        "rescale": [_f32(r) for r in rescale] + [_f32(0.0)] * pad,
        "input_zero_point": zero_points + [0] * pad,
        "output_zero_point": output_zero_point,
    })
    return Layer(op, "tc_onnx_concat_s8", [params, y, *inputs, *([None] * pad)],
                 sources=("tc_onnx_elementwise.c",))


@register(onnx_ir.ONNX_REQUANTIZE)
def lower_onnx_requantize(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: onnx_ir.OnnxRequantizeAttrs = op.attrs
    x = _require_type(op, op.inputs[0], "input", _INTEGER_TYPES)
    y = _require_type(op, op.outputs[0], "output", _INTEGER_TYPES)
    if x.num_elements != y.num_elements:
        raise UnsupportedModelError(f"{op.describe()}: input and output sizes differ")
    input_scale, input_zero_point = _per_tensor(op, x, "input")
    output_scale, output_zero_point = _per_tensor(op, y, "output")
    params = CStruct("tc_onnx_requantize_params", {
        "size": x.num_elements,
        "input_unsigned": 1 if x.dtype == ir.DType.UINT8 else 0,
        "output_unsigned": 1 if y.dtype == ir.DType.UINT8 else 0,
        "identity": 1 if input_scale == output_scale else 0,
        "rescale": input_scale / output_scale,
        "input_zero_point": input_zero_point, "output_zero_point": output_zero_point,
        "act_min": a.act_min, "act_max": a.act_max,
    })
    return Layer(op, "tc_onnx_requantize", [params, x, y], sources=("tc_onnx_elementwise.c",),
                 inplace_ok=(0,) if x.dtype.itemsize == y.dtype.itemsize else ())


@register(onnx_ir.ONNX_QUANTIZE, onnx_ir.ONNX_DEQUANTIZE)
def lower_onnx_quantize(op: ir.Operator, options: LoweringOptions) -> Layer:
    quantize = op.op_type == onnx_ir.ONNX_QUANTIZE
    float_t, int_t = (op.inputs[0], op.outputs[0]) if quantize else (op.outputs[0], op.inputs[0])
    _require_type(op, float_t, "float side", (ir.DType.FLOAT32,))
    _require_type(op, int_t, "integer side", _INTEGER_TYPES)
    scale, zero_point = _per_tensor(op, int_t, "integer side")
    info = np.iinfo(int_t.dtype.numpy)
    params = CStruct("tc_onnx_quant_params", {
        "size": int_t.num_elements,
        "is_unsigned": 1 if int_t.dtype == ir.DType.UINT8 else 0,
        "scale": scale, "zero_point": zero_point,
        "act_min": int(info.min), "act_max": int(info.max),
    })
    kernel = "tc_onnx_quantize" if quantize else "tc_onnx_dequantize"
    return Layer(op, kernel, [params, op.inputs[0], op.outputs[0]], sources=("tc_onnx_elementwise.c",))


def lower_transpose(op: ir.Operator, options: LoweringOptions) -> Layer:
    """Lower TRANSPOSE, whose permutation is a constant int32 second input as in TFLite."""
    x = op.inputs[0]
    y = op.outputs[0]
    perm_t = op.inputs[1] if len(op.inputs) > 1 else None
    if x is None or perm_t is None or not perm_t.is_constant:
        raise UnsupportedModelError(f"{op.describe()}: the permutation must be a constant input")
    if x.dtype.itemsize not in (1, 4) or x.dtype != y.dtype:
        raise UnsupportedModelError(
            f"{op.describe()}: transposes 1- and 4-byte elements of one type, got {x.dtype.value} -> {y.dtype.value}"
        )
    perm = [int(p) for p in np.asarray(perm_t.data).reshape(-1)]
    rank = len(x.shape)
    if sorted(perm) != list(range(rank)):
        raise UnsupportedModelError(f"{op.describe()}: {perm} is not a permutation of {rank} dimensions")
    if rank > TRANSPOSE_MAX_DIMS:
        raise UnsupportedModelError(f"{op.describe()}: the kernel transposes at most {TRANSPOSE_MAX_DIMS} dimensions")
    expected = tuple(x.shape[p] for p in perm)
    if expected != tuple(y.shape):
        raise UnsupportedModelError(f"{op.describe()}: output shape {list(y.shape)} is not {list(expected)}")
    in_strides = [int(np.prod(x.shape[i + 1:], dtype=np.int64)) for i in range(rank)]
    pad = TRANSPOSE_MAX_DIMS - rank
    params = CStruct("tc_transpose_params", {
        "element_size": x.dtype.itemsize,
        "out_dims": [1] * pad + list(expected),
        "in_strides": [0] * pad + [in_strides[p] for p in perm],
    })
    return Layer(op, "tc_transpose", [params, x, y], sources=("tc_transpose.c",))


# Another op family may lower TRANSPOSE with a more general kernel; this one only fills the gap
# when none is registered before this module is imported.
if "TRANSPOSE" not in lowering._REGISTRY:
    register("TRANSPOSE")(lower_transpose)
