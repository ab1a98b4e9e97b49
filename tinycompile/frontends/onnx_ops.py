"""Per-op converters of the ONNX frontend.

Each converter reads its inputs as quantized values, so a QDQ float op's DequantizeLinear inputs
and a QOperator op's integer inputs look the same. It takes the output quantization from the
QuantizeLinear after a QDQ float op, or from the op's own scale inputs, and emits IR operators:
TFLite ops (ADD, MUL, MAX_POOL_2D, RESHAPE, TRANSPOSE) where their kernels compute the ONNX op as
ONNX Runtime does, else the ONNX-only ops of `onnx_ir`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from tinycompile import ir
from tinycompile.frontends import onnx_ir
from tinycompile.frontends.onnx import MICROSOFT_DOMAIN, QUANTIZE_HINT, OnnxFloatModelError, OnnxUnsupportedOpError
from tinycompile.frontends.onnx_import import (BIAS_SCALE_RTOL, NCHW_TO_NHWC, NHWC_TO_NCHW, UINT8_SHIFT, ConstValue,
                                               DQValue, FloatValue, Importer, Layout, Pending, QValue, Value, _quant,
                                               ceil_div, round_half_even_quantize, same_quant)

NHWC_AXIS = {0: 0, 1: 3, 2: 1, 3: 2}  # NCHW axis -> its position in NHWC

FLOAT_OPS = {"Conv", "Gemm", "MatMul", "Add", "Mul", "Relu", "Clip", "MaxPool", "AveragePool", "GlobalAveragePool",
             "Flatten", "Reshape", "Transpose", "Concat", "Softmax", "Squeeze", "Unsqueeze"}
QOPERATOR_OPS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}
MICROSOFT_OPS = {"QLinearAdd", "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool", "QGemm",
                 "QLinearSoftmax", "QLinearConcat", "QuantizeLinear", "DequantizeLinear"}
PASS_THROUGH = {"Identity", "Dropout"}


def attributes(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def supported_op_types() -> list[str]:
    return sorted(FLOAT_OPS | QOPERATOR_OPS | MICROSOFT_OPS | PASS_THROUGH
                  | {"QuantizeLinear", "DequantizeLinear", "Constant", "Shape", "Size"})


def convert_node(im: Importer, node: onnx.NodeProto) -> None:
    op = node.op_type
    if node.domain not in ("", "ai.onnx", MICROSOFT_DOMAIN) or (node.domain == MICROSOFT_DOMAIN and op not in MICROSOFT_OPS):
        raise OnnxUnsupportedOpError(
            f"{im.describe(node)}: op {node.domain}.{op} is not supported; supported ops are {', '.join(supported_op_types())}"
        )
    if op == "Constant":
        return _constant(im, node)
    if op in PASS_THROUGH:
        im.values[node.output[0]] = im.value(node, node.input[0])
        return None
    if op in ("Shape", "Size"):
        return _shape(im, node)
    if op == "QuantizeLinear":
        return _quantize_linear(im, node)
    if op == "DequantizeLinear":
        return _dequantize_linear(im, node)
    inputs = [im.values.get(name) for name in node.input if name]
    if inputs and all(isinstance(v, ConstValue) for v in inputs):
        return _fold(im, node)
    handler = _HANDLERS.get(op)
    if handler is None:
        raise OnnxUnsupportedOpError(
            f"{im.describe(node)}: op {op} is not supported; supported ops are {', '.join(supported_op_types())}"
        )
    if op in FLOAT_OPS and any(isinstance(v, (DQValue, FloatValue, Pending)) for v in inputs):
        return handler(im, node, qdq=True)
    return handler(im, node, qdq=False)


# ---- constants ------------------------------------------------------------------------------


def _constant(im: Importer, node: onnx.NodeProto) -> None:
    attrs = attributes(node)
    if "value" not in attrs:
        raise im.fail(node, f"only the 'value' attribute form is supported, got {sorted(attrs)}")
    im.values[node.output[0]] = ConstValue(onnx.numpy_helper.to_array(attrs["value"]))


def _shape(im: Importer, node: onnx.NodeProto) -> None:
    v = im.value(node, node.input[0])
    if isinstance(v, ConstValue):
        shape = v.data.shape
    elif isinstance(v, (QValue, DQValue, Pending)):
        shape = (v if isinstance(v, QValue) else v.q).onnx_shape
    else:
        shape = v.tensor.shape
    if node.op_type == "Size":
        im.values[node.output[0]] = ConstValue(np.asarray(int(np.prod(shape)), np.int64))
        return
    attrs = attributes(node)
    start, end = attrs.get("start", 0), attrs.get("end", len(shape))
    im.values[node.output[0]] = ConstValue(np.asarray(shape[start:end], np.int64))


def _fold(im: Importer, node: onnx.NodeProto) -> None:
    """Evaluate a node whose inputs are all constants with onnx's reference evaluator."""
    feeds = {name: im.values[name].data for name in node.input if name}
    graph_inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(data.dtype), data.shape)
                    for name, data in feeds.items()]
    graph_outputs = [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None) for name in node.output if name]
    model = helper.make_model(helper.make_graph([node], "fold", graph_inputs, graph_outputs),
                              opset_imports=im.model.opset_import)
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:  # the evaluator raises whatever the op implementation raises
        raise im.fail(node, f"folding this constant node failed: {type(exc).__name__}: {str(exc)[:120]}") from None
    for name, data in zip([n for n in node.output if n], results):
        im.values[name] = ConstValue(np.asarray(data))


# ---- QuantizeLinear / DequantizeLinear --------------------------------------------------------


def _axis_attr(im: Importer, node: onnx.NodeProto, rank: int) -> int:
    attrs = attributes(node)
    if attrs.get("block_size", 0):
        raise im.fail(node, "blocked quantization (block_size) is not supported; quantize per tensor or per axis")
    axis = int(attrs.get("axis", 1))
    return axis % rank if rank else 0


def _check_axis(im: Importer, node: onnx.NodeProto, data: np.ndarray, scale_size: int) -> None:
    """Reject a per-axis Quantize/DequantizeLinear whose axis the ONNX definition does not allow.

    ONNX Runtime refuses such a model, so there is no reference to compile it against.
    """
    if scale_size <= 1:
        return  # per tensor: the axis is ignored
    axis = int(attributes(node).get("axis", 1))
    rank = data.ndim
    fits = [i for i, d in enumerate(data.shape) if d == scale_size]
    hint = f"set the axis attribute to {fits[0]}, the dimension with {scale_size} entries" if fits else \
        "give it one scale per entry of the quantized axis"
    if not -rank <= axis < rank:
        raise im.fail(node, f"quantizes '{node.input[0]}' of shape {list(data.shape)} per axis with axis {axis}, "
                            f"outside the valid range {-rank} to {rank - 1}; {hint}")
    if data.shape[axis % rank] != scale_size:
        raise im.fail(node, f"has {scale_size} scales for axis {axis} of '{node.input[0]}', which has "
                            f"{data.shape[axis % rank]} entries; {hint}")


def _quantize_linear(im: Importer, node: onnx.NodeProto) -> None:
    v = im.value(node, node.input[0])
    out = node.output[0]
    if isinstance(v, ConstValue):
        data = np.asarray(v.data)
        axis = _axis_attr(im, node, data.ndim)
        quant, dtype = im.quant_params(node, 1, 2, allow_per_axis=True, axis=axis)
        _check_axis(im, node, data, quant.scale.size)
        scale, zp = quant.scale, quant.zero_point
        if scale.size > 1:
            shape = [1] * data.ndim
            shape[axis] = scale.size
            scale, zp = scale.reshape(shape), zp.reshape(shape)
        q = round_half_even_quantize(data, scale, zp, -128, 127)
        t = im.const_tensor(out, q, ir.DType.INT8, quant)
        im.values[out] = QValue(t, Layout.PLAIN, dtype)
        return
    quant, dtype = im.quant_params(node, 1, 2)
    if isinstance(v, FloatValue):
        t = im.new_tensor(out, v.tensor.shape, ir.DType.INT8, quant)
        im.emit(onnx_ir.ONNX_QUANTIZE, [v.tensor], [t])
        im.values[out] = QValue(t, Layout.PLAIN, dtype)
        return
    if isinstance(v, (Pending, DQValue)):
        source = v.q
        if same_quant(source.tensor.quant, quant):
            im.values[out] = QValue(source.tensor, source.layout, dtype, source.source_uint8)
            return
        im.values[out] = _requantize(im, source, quant, out, dtype)
        return
    raise im.fail(node, f"input '{node.input[0]}' is already an integer tensor; QuantizeLinear needs a float input")


def _requantize(im: Importer, source: QValue, quant: ir.Quantization, name: str, dtype: ir.DType,
                bounds: tuple[int, int] = (-128, 127)) -> QValue:
    t = im.new_tensor(name, source.tensor.shape, ir.DType.INT8, quant)
    im.emit(onnx_ir.ONNX_REQUANTIZE, [source.tensor], [t], onnx_ir.OnnxRequantizeAttrs(*bounds))
    return QValue(t, source.layout, dtype)


def _dequantize_linear(im: Importer, node: onnx.NodeProto) -> None:
    v = im.value(node, node.input[0])
    out = node.output[0]
    if isinstance(v, ConstValue):
        data = np.asarray(v.data)
        axis = _axis_attr(im, node, data.ndim)
        if data.dtype == np.int32:
            scale = np.asarray(im.const(node, 1), np.float32).reshape(-1)
            zero_point = im.const(node, 2)
            zero_point = np.zeros(scale.shape, np.int64) if zero_point is None else np.asarray(zero_point).reshape(-1)
            quant = _quant(scale, np.broadcast_to(zero_point, scale.shape), axis)
        else:
            quant, _ = im.quant_params(node, 1, 2, allow_per_axis=True, axis=axis)
        _check_axis(im, node, data, quant.scale.size)
        im.values[out] = DQValue(im.quantized_const(node, data, quant, node.input[0]))
        return
    if not isinstance(v, QValue):
        raise im.fail(node, f"input '{node.input[0]}' is not an integer tensor")
    if v.tensor.dtype == ir.DType.INT32:
        raise im.fail(node, f"dequantizes the int32 activation '{node.input[0]}', so the rest of the model computes "
                            f"in float (dynamic quantization); {QUANTIZE_HINT}")
    quant, _ = im.quant_params(node, 1, 2)
    im.ensure_quant(v, quant)
    if not same_quant(v.tensor.quant, quant):
        v = _requantize(im, v, quant, f"{node.input[0]}_requantized", v.onnx_type)
    im.values[out] = DQValue(v)


# ---- convolution ------------------------------------------------------------------------------


def _conv_pads(im: Importer, node: onnx.NodeProto, attrs: dict, in_hw, kernel, strides, dilations):
    """Return (pad_top, pad_left, out_h, out_w) as ONNX defines them for auto_pad and pads."""
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    result_pads, out = [], []
    pads = list(attrs.get("pads", [0] * 4))
    if len(pads) != 4:
        raise im.fail(node, f"has pads {pads}; only 2-D ops (4 pad values) are supported")
    for i in range(2):
        effective = (kernel[i] - 1) * dilations[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            size = ceil_div(in_hw[i], strides[i])
            total = max(0, (size - 1) * strides[i] + effective - in_hw[i])
            before = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        elif auto_pad == "VALID":
            size = (in_hw[i] - effective) // strides[i] + 1
            before = 0
        elif auto_pad == "NOTSET":
            before, after = pads[i], pads[i + 2]
            span = in_hw[i] + before + after - effective
            if ceil_mode:
                size = ceil_div(span, strides[i]) + 1
                if (size - 1) * strides[i] >= in_hw[i] + before:
                    size -= 1  # the last window must start inside the input or the leading padding
            else:
                size = span // strides[i] + 1
        else:
            raise im.fail(node, f"auto_pad '{auto_pad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID")
        if size <= 0:
            raise im.fail(node, f"the kernel {kernel} does not fit the {in_hw[0]}x{in_hw[1]} input")
        result_pads.append(before)
        out.append(size)
    return result_pads[0], result_pads[1], out[0], out[1]


def _tflite_padding(in_hw, kernel, strides, dilations, pads, out_hw) -> ir.Padding | None:
    """Return the TFLite padding that reproduces explicit ONNX padding, or None."""
    if out_hw == [(in_hw[i] - ((kernel[i] - 1) * dilations[i] + 1)) // strides[i] + 1 for i in range(2)] \
            and pads == [0, 0]:
        return ir.Padding.VALID
    same = []
    for i in range(2):
        size = ceil_div(in_hw[i], strides[i])
        total = max(0, (size - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_hw[i])
        same.append(size == out_hw[i] and total // 2 == pads[i])
    return ir.Padding.SAME if all(same) else None


@dataclass
class BiasInput:
    """One constant added to an accumulator: an op's own bias input or a fused bias Add's operand.

    The constant broadcasts against `out_shape` (the op's ONNX output shape) and may vary only
    along `axis`, the output-channel axis (None: it must hold one value).
    """

    name: str
    value: Value
    out_shape: tuple[int, ...]
    axis: int | None
    beta: float = 1.0


def _bias_input(im: Importer, node: onnx.NodeProto, index: int | None, out_shape, axis: int | None,
                beta: float = 1.0) -> BiasInput | None:
    if index is None or index >= len(node.input) or not node.input[index]:
        return None
    name = node.input[index]
    return BiasInput(name, im.value(node, name), tuple(out_shape), axis, beta)


def _channel_vector(im: Importer, node: onnx.NodeProto, bias: BiasInput, data: np.ndarray) -> np.ndarray:
    """Return `data` as one value per output channel, or fail if it varies along another axis."""
    rank = len(bias.out_shape)
    channels = 1 if bias.axis is None else bias.out_shape[bias.axis]
    if data.ndim > rank:
        aligned = None
    else:
        aligned = (1,) * (rank - data.ndim) + tuple(data.shape)
    if aligned is None or any(d != 1 and (i != bias.axis or d != channels) for i, d in enumerate(aligned)):
        raise im.fail(node, f"bias '{bias.name}' has shape {list(data.shape)}, which is not one value per channel "
                            f"of the output {list(bias.out_shape)}; only per-channel biases are supported")
    return np.broadcast_to(np.asarray(data).reshape(-1), (channels,))


def _bias_term(im: Importer, node: onnx.NodeProto, bias: BiasInput, expected: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return (int32 values, True) for a bias stored in the accumulator's scale, else (real values, False)."""
    v = bias.value
    if isinstance(v, DQValue) and v.q.tensor.is_constant:
        t = v.q.tensor
        data = _channel_vector(im, node, bias, t.data).astype(np.float64)
        scale = _channel_vector(im, node, bias, t.quant.scale.reshape(_quant_shape(t))).astype(np.float64)
        zero = _channel_vector(im, node, bias, t.quant.zero_point.reshape(_quant_shape(t))).astype(np.float64)
        if (t.dtype == ir.DType.INT32 and bias.beta == 1.0 and not np.any(zero)
                and np.allclose(scale, expected, rtol=BIAS_SCALE_RTOL, atol=0)):
            return data.astype(np.int64), True
        return (data - zero) * scale * bias.beta, False
    if isinstance(v, QValue) and v.tensor.is_constant and v.tensor.dtype == ir.DType.INT32:
        data = _channel_vector(im, node, bias, v.tensor.data)
    elif isinstance(v, ConstValue) and np.asarray(v.data).dtype == np.int32:
        data = _channel_vector(im, node, bias, np.asarray(v.data))
    elif isinstance(v, ConstValue) and np.issubdtype(np.asarray(v.data).dtype, np.floating):
        return _channel_vector(im, node, bias, np.asarray(v.data)).astype(np.float64) * bias.beta, False
    else:
        raise im.fail(node, f"bias '{bias.name}' must be a constant: an int32 or float initializer, or the "
                            "DequantizeLinear of one")
    # A plain int32 bias is already in the accumulator's scale (QLinearConv, QGemm, ConvInteger).
    if bias.beta == 1.0:
        return data.astype(np.int64), True
    return data.astype(np.float64) * expected * bias.beta, False


def _quant_shape(t: ir.Tensor) -> tuple[int, ...]:
    """Return the shape that a tensor's scales broadcast as: () per tensor, else along its axis."""
    if t.quant.scale.size == 1:
        return ()
    shape = [1] * len(t.shape)
    shape[t.quant.axis] = t.quant.scale.size
    return tuple(shape) if len(t.shape) > 0 else (t.quant.scale.size,)


def _bias_values(im: Importer, node: onnx.NodeProto, biases: list[BiasInput | None], input_scale: float,
                 weight_scale: np.ndarray, channels: int) -> np.ndarray | None:
    """Return the int32 bias in the accumulator's scale input_scale * weight_scale[c], or None.

    `biases` are the op's own bias input and a fused bias Add's constant, and their sum is
    stored. A bias already in that scale is kept as it is. A float bias, or one in another
    scale, is rounded half to even into it, as quantize_static quantizes biases. This may move a
    result by one step against a reference that adds the bias in float.
    """
    biases = [b for b in biases if b is not None]
    if not biases:
        return None
    expected = (np.float32(input_scale)
                * np.broadcast_to(np.asarray(weight_scale, np.float32), (channels,))).astype(np.float64)
    terms = [_bias_term(im, node, b, expected) for b in biases]
    if all(exact for _, exact in terms):
        total = np.sum([values for values, _ in terms], axis=0)
    else:
        if not np.all(expected > 0):
            raise im.fail(node, "has a float bias but a zero weight or input scale, so the bias cannot be "
                                "stored in the accumulator's scale")
        real = np.sum([values * expected if exact else values for values, exact in terms], axis=0)
        total = np.rint(real / expected)
    if np.any(total < -2**31) or np.any(total > 2**31 - 1):
        names = ", ".join(f"'{b.name}'" for b in biases)
        raise im.fail(node, f"bias {names} does not fit int32 in the accumulator's scale input_scale * weight_scale "
                            f"(largest value {float(np.max(np.abs(total))):.3g}); requantize the model with "
                            "larger weight or input scales")
    return total.astype(np.int32)


def _find_bias_add(im: Importer, node: onnx.NodeProto) -> onnx.NodeProto | None:
    """Return the Add that adds a constant to a QDQ float op's output before its QuantizeLinear.

    tf2onnx writes TFLite's FULLY_CONNECTED as MatMul followed by an Add of the dequantized int32
    bias. The Add is fused into the product as its bias, as quantize_static folds biases into Gemm.
    """
    out = node.output[0]
    readers = im.consumers.get(out, [])
    if out in im.output_names or len(readers) != 1:
        return None
    add = readers[0]
    if add.op_type != "Add" or add.domain not in ("", "ai.onnx") or len(add.input) != 2 or add.input[0] == add.input[1]:
        return None
    other = add.input[1] if add.input[0] == out else add.input[0]
    v = im.constant_early(other)
    if isinstance(v, ConstValue) and np.issubdtype(np.asarray(v.data).dtype, np.floating):
        return add
    if isinstance(v, DQValue):
        return add
    return None


def _fused_bias(im: Importer, add: onnx.NodeProto | None, op_output: str, out_shape, axis: int | None
                ) -> BiasInput | None:
    if add is None:
        return None
    other = add.input[1] if add.input[0] == op_output else add.input[0]
    return BiasInput(other, im.value(add, other), tuple(out_shape), axis)


def _activation(bounds, quant: ir.Quantization) -> ir.Activation | None:
    """Map fused (min, max) bounds to a TFLite activation whose clamp is identical, else None."""
    if bounds == (None, None):
        return ir.Activation.NONE
    if bounds == (0.0, None):
        return ir.Activation.RELU
    return None


def _emit_clamp(im: Importer, out: QValue, bounds, name: str) -> QValue:
    """Clamp an op's output (already in its final quantization) to fused Relu/Clip bounds."""
    low, high = im.clamp_range(out.tensor.quant, bounds)
    out.tensor.name = f"{name}_unclamped"
    t = im.new_tensor(name, out.tensor.shape, ir.DType.INT8, out.tensor.quant)
    im.emit(onnx_ir.ONNX_REQUANTIZE, [out.tensor], [t], onnx_ir.OnnxRequantizeAttrs(low, high))
    return QValue(t, out.layout, out.onnx_type)


def _output_spec(im: Importer, node: onnx.NodeProto, qdq: bool, scale_index: int | None = None,
                 zp_index: int | None = None, bias_add: onnx.NodeProto | None = None):
    """Return (quant, dtype, bounds, fused nodes, output name) of a QDQ float op or a QOperator op."""
    if qdq:
        quant, bounds, fused = im.float_output_quant(node, bias_add)
        return quant, ir.DType.INT8, bounds, fused, node.output[0]
    if scale_index is None:
        return None, ir.DType.INT32, (None, None), [], node.output[0]
    quant, dtype = im.quant_params(node, scale_index, zp_index)
    return quant, dtype, (None, None), [], node.output[0]


def _finish(im: Importer, node: onnx.NodeProto, qdq: bool, out: QValue, fused) -> None:
    if qdq:
        im.finish_float_op(node, out, fused)
    else:
        im.values[node.output[0]] = out


def _conv(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    op = node.op_type
    attrs = attributes(node)
    bias_add = None  # a constant Add after a QDQ Conv, fused as its bias
    if op == "QLinearConv":
        x = im.qinput(node, 0)
        x_quant, x_type = im.quant_params(node, 1, 2)
        im.ensure_quant(x, x_quant)
        w_index, w_quant_indices, bias_index = 3, (4, 5), 8
        out_spec = _output_spec(im, node, False, 6, 7)
    elif op == "ConvInteger":
        x = im.qinput(node, 0)
        zp = im.const(node, 2)
        zero = (0 if zp is None else int(np.asarray(zp).reshape(-1)[0])) \
            - (UINT8_SHIFT if x.onnx_type == ir.DType.UINT8 else 0)
        if x.tensor.quant is None:
            im.ensure_quant(x, _quant(1.0, zero))
        elif x.tensor.quant.scalar_zero_point != zero:
            raise im.fail(node, f"input '{node.input[0]}' is read with zero point {zero} here and "
                                f"{x.tensor.quant.scalar_zero_point} elsewhere")
        w_index, w_quant_indices, bias_index = 1, None, None
        out_spec = _output_spec(im, node, False)
    else:
        x = im.qinput(node, 0)
        w_index, w_quant_indices, bias_index = 1, None, 2
        bias_add = _find_bias_add(im, node) if qdq else None
        out_spec = _output_spec(im, node, qdq, bias_add=bias_add)
    quant, out_type, bounds, fused, out_name = out_spec
    x_quant = im.raw_quant(x)
    if len(x.onnx_shape) != 4:
        raise im.fail(node, f"input has shape {list(x.onnx_shape)}; only 2-D convolution on NCHW tensors is supported")
    weights = _weight_input(im, node, w_index, w_quant_indices)
    w = weights.tensor
    if len(w.shape) != 4:
        raise im.fail(node, f"filter '{w.name}' has shape {list(w.shape)}; expected OIHW")
    out_c, group_in_c, kh, kw = w.shape
    group = int(attrs.get("group", 1))
    n, in_c, in_h, in_w = x.onnx_shape
    if group_in_c * group != in_c:
        raise im.fail(node, f"filter '{w.name}' {list(w.shape)} with group {group} does not fit {in_c} input channels")
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    pad_top, pad_left, out_h, out_w = _conv_pads(im, node, attrs, (in_h, in_w), (kh, kw), strides, dilations)
    x = im.to_layout(x, Layout.NHWC)
    w_quant = w.quant
    weight_zp = np.asarray(w_quant.zero_point, np.int64)
    biases = [_bias_input(im, node, bias_index, (out_c,), 0),
              _fused_bias(im, bias_add, node.output[0], (n, out_c, out_h, out_w), 1)]
    bias = _bias_values(im, node, biases, x_quant.scalar_scale, w_quant.scale, out_c)
    bias_t = im.const_tensor(f"{out_name}_bias", bias, ir.DType.INT32) if bias is not None else None
    ohwi = np.transpose(w.data, (0, 2, 3, 1))
    out_dtype = ir.DType.INT8 if quant is not None else ir.DType.INT32
    y = im.new_tensor(out_name, (n, out_h, out_w, out_c), out_dtype, quant)
    # Convolutions always use the ONNX kernel: its float requantization reproduces QLinearConv
    # exactly and a QDQ Conv's float reference more closely than TFLite's fixed-point kernels
    # (docs/onnx.md lists the measurements).
    filter_t = im.const_tensor(f"{w.name}_ohwi", ohwi, ir.DType.INT8, _quant(w_quant.scale, w_quant.zero_point, 0))
    low, high = im.clamp_range(quant, bounds) if quant is not None else (-128, 127)
    attrs_ir = onnx_ir.OnnxConvAttrs(stride_h=strides[0], stride_w=strides[1], dilation_h=dilations[0],
                                     dilation_w=dilations[1], pad_top=pad_top, pad_left=pad_left, groups=group,
                                     weight_zero_point=weight_zp.astype(np.int32),
                                     int32_output=quant is None, act_min=low, act_max=high)
    im.emit(onnx_ir.ONNX_CONV, [x.tensor, filter_t, bias_t], [y], attrs_ir)
    _finish(im, node, qdq, QValue(y, Layout.NHWC, out_type), fused)


def _weight_input(im: Importer, node: onnx.NodeProto, index: int, quant_indices) -> QValue:
    """Return a constant integer weight input with its quantization (per tensor or per axis 0)."""
    if quant_indices is None:
        v = im.value(node, node.input[index])
        if isinstance(v, ConstValue):
            data = np.asarray(v.data)
            zp_index = 3 if node.op_type in ("ConvInteger", "MatMulInteger") else None
            zp = im.const(node, zp_index) if zp_index is not None else None
            zp = np.zeros(1, np.int64) if zp is None else np.asarray(zp, np.int64).reshape(-1)
            if data.dtype == np.uint8:
                zp = zp - UINT8_SHIFT
            axis = 0 if node.op_type == "ConvInteger" else max(data.ndim - 1, 0)
            return im.quantized_const(node, data, _quant(np.ones(zp.shape), zp, axis), node.input[index])
        w = im.qinput(node, index)
    else:
        v = im.value(node, node.input[index])
        if not isinstance(v, ConstValue):
            raise im.fail(node, f"weights '{node.input[index]}' must be a constant")
        data = np.asarray(v.data)
        axis = 0 if node.op_type in ("QLinearConv",) else max(data.ndim - 1, 0)
        if node.op_type == "QGemm" and attributes(node).get("transB", 0):
            axis = 0
        quant, _ = im.quant_params(node, quant_indices[0], quant_indices[1], allow_per_axis=True, axis=axis)
        w = im.quantized_const(node, data, quant, node.input[index])
    if not w.tensor.is_constant:
        raise im.fail(node, f"weights '{node.input[index]}' must be a constant")
    return w


# ---- matrix products ----------------------------------------------------------------------------


def _matmul(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    """Gemm, MatMul, QGemm, QLinearMatMul and MatMulInteger."""
    op = node.op_type
    attrs = attributes(node)
    alpha = float(attrs.get("alpha", 1.0))
    beta = float(attrs.get("beta", 1.0))
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    bias_index = None
    bias_add = None  # a constant Add after a QDQ Gemm or MatMul, fused as its bias
    if op == "QLinearMatMul":
        a = im.qinput(node, 0)
        im.ensure_quant(a, im.quant_params(node, 1, 2)[0])
        b_index, b_quant_indices = 3, (4, 5)
        spec = _output_spec(im, node, False, 6, 7)
    elif op == "QGemm":
        a = im.qinput(node, 0)
        im.ensure_quant(a, im.quant_params(node, 1, 2)[0])
        b_index, b_quant_indices, bias_index = 3, (4, 5), 6
        if len(node.input) < 8 or not node.input[7]:
            raise im.fail(node, "has no y_scale, so its output is float; quantize the whole model statically")
        spec = _output_spec(im, node, False, 7, 8)
    elif op == "MatMulInteger":
        a = im.qinput(node, 0)
        zp = im.const(node, 2)
        zero = 0 if zp is None else int(np.asarray(zp).reshape(-1)[0])
        zero -= UINT8_SHIFT if a.onnx_type == ir.DType.UINT8 else 0
        im.ensure_quant(a, _quant(1.0, zero))
        if a.tensor.quant.scalar_zero_point != zero:
            raise im.fail(node, f"input '{node.input[0]}' is read with two different zero points")
        b_index, b_quant_indices = 1, None
        spec = _output_spec(im, node, False)
    else:
        a = im.qinput(node, 0)
        b_index, b_quant_indices = 1, None
        bias_index = 2 if op == "Gemm" else None
        bias_add = _find_bias_add(im, node) if qdq else None
        spec = _output_spec(im, node, qdq, bias_add=bias_add)
    quant, out_type, bounds, fused, out_name = spec
    a = im.plain(a)
    a_quant = im.raw_quant(a)
    b_value = im.values.get(node.input[b_index])
    b_constant = isinstance(b_value, (ConstValue, DQValue)) and (
        isinstance(b_value, ConstValue) or b_value.q.tensor.is_constant)
    if isinstance(b_value, QValue) and b_value.tensor.is_constant:
        b_constant = True
    if b_constant:
        b = _weight_input(im, node, b_index, b_quant_indices)
        if op == "MatMulInteger":
            b_zp = im.const(node, 3)
            if b_zp is not None:
                zp = np.asarray(b_zp, np.int64).reshape(-1) - (UINT8_SHIFT if b.onnx_type == ir.DType.UINT8 else 0)
                b.tensor.quant = _quant(np.ones(zp.shape), zp, b.tensor.quant.axis)
    else:
        b = im.plain(im.qinput(node, b_index))
        if b_quant_indices is not None:
            im.ensure_quant(b, im.quant_params(node, b_quant_indices[0], b_quant_indices[1])[0])
        elif op == "MatMulInteger":
            zp = im.const(node, 3)
            zero = 0 if zp is None else int(np.asarray(zp).reshape(-1)[0])
            im.ensure_quant(b, _quant(1.0, zero - (UINT8_SHIFT if b.onnx_type == ir.DType.UINT8 else 0)))
        im.raw_quant(b)
    if trans_a:
        if len(a.tensor.shape) != 2:
            raise im.fail(node, "transA needs a 2-D input A")
        a = QValue(im.transpose(a.tensor, (1, 0), f"{node.input[0]}_transposed"), Layout.PLAIN, a.onnx_type)
    if b_constant:
        b_kn = b.tensor.data.T if trans_b else b.tensor.data
        if b_kn.ndim != 2:
            b_kn = b.tensor.data
            if trans_b:
                raise im.fail(node, "transB needs a 2-D input B")
    elif trans_b:
        b = QValue(im.transpose(b.tensor, (1, 0), f"{node.input[b_index]}_transposed"), Layout.PLAIN, b.onnx_type)
    a_shape = a.tensor.shape
    b_shape = b_kn.shape if b_constant else b.tensor.shape
    if len(a_shape) < 1 or len(b_shape) < 1:
        raise im.fail(node, "inputs must have at least one dimension")
    k = a_shape[-1]
    k_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if k != k_b:
        raise im.fail(node, f"inner dimensions differ: A {list(a_shape)}, B {list(b_shape)}")
    n_cols = 1 if len(b_shape) == 1 else b_shape[-1]
    w_quant = b.tensor.quant
    weight_scales = np.asarray(w_quant.scale, np.float32) * np.float32(alpha)
    if alpha != 1.0 and not b_constant:
        raise im.fail(node, f"alpha {alpha} with a non-constant B is not supported")
    out_shape = _matmul_shape(a_shape, b_shape)
    out_dtype = ir.DType.INT8 if quant is not None else ir.DType.INT32
    channel_axis = len(out_shape) - 1 if len(b_shape) > 1 else None
    biases = [_bias_input(im, node, bias_index, out_shape, channel_axis, beta),
              _fused_bias(im, bias_add, node.output[0], out_shape, channel_axis)]
    bias = _bias_values(im, node, biases, a_quant.scalar_scale, weight_scales, n_cols)
    bias_t = im.const_tensor(f"{out_name}_bias", bias, ir.DType.INT32) if bias is not None else None
    y = im.new_tensor(out_name, out_shape, out_dtype, quant)
    b_zp = np.asarray(w_quant.zero_point, np.int64)
    # Like convolutions, matrix products always use the ONNX kernel (float requantization).
    if b_constant:
        b_t = im.const_tensor(f"{node.input[b_index]}_kn", b_kn, ir.DType.INT8,
                              _quant(weight_scales, b_zp, max(b_kn.ndim - 1, 0)))
    else:
        b_t = b.tensor
    a_offsets, b_offsets, m = _matmul_offsets(a_shape, b_shape)
    low, high = im.clamp_range(quant, bounds) if quant is not None else (-128, 127)
    attrs_ir = onnx_ir.OnnxMatMulAttrs(m=m, k=k, n=n_cols, a_offsets=a_offsets, b_offsets=b_offsets,
                                       b_zero_point=b_zp.astype(np.int32).reshape(-1),
                                       int32_output=quant is None, act_min=low, act_max=high)
    im.emit(onnx_ir.ONNX_MATMUL, [a.tensor, b_t, bias_t], [y], attrs_ir)
    _finish(im, node, qdq, QValue(y, Layout.PLAIN, out_type), fused)

def _matmul_shape(a_shape, b_shape) -> tuple[int, ...]:
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    shape = tuple(batch) + (a2[-2], b2[-1])
    if len(a_shape) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b_shape) == 1:
        shape = shape[:-1]
    return shape


def _matmul_offsets(a_shape, b_shape) -> tuple[np.ndarray, np.ndarray, int]:
    """Return per-output-matrix element offsets of A and B under numpy matmul broadcasting."""
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    m, k, n = a2[-2], a2[-1], b2[-1]
    a_index = np.arange(int(np.prod(a2[:-2], dtype=np.int64)) or 1).reshape(a2[:-2] or ())
    b_index = np.arange(int(np.prod(b2[:-2], dtype=np.int64)) or 1).reshape(b2[:-2] or ())
    a_batches = np.broadcast_to(a_index, batch).reshape(-1)
    b_batches = np.broadcast_to(b_index, batch).reshape(-1)
    return (a_batches * m * k).astype(np.int32), (b_batches * k * n).astype(np.int32), m


# ---- element-wise ------------------------------------------------------------------------------


def _binary(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    """Add, Mul, QLinearAdd, QLinearMul, and Add/Mul on plain integer tensors."""
    op = node.op_type
    if op in ("QLinearAdd", "QLinearMul"):
        a = im.qinput(node, 0)
        im.ensure_quant(a, im.quant_params(node, 1, 2)[0])
        b_value = im.values.get(node.input[3])
        b = _operand(im, node, 3, (4, 5))
        spec = _output_spec(im, node, False, 6, 7)
        del b_value
    else:
        a = _operand(im, node, 0, None)
        b = _operand(im, node, 1, None)
        if qdq:
            spec = _output_spec(im, node, True)
        else:
            quant = _quant(1.0, 0) if a.onnx_type == ir.DType.INT8 else _quant(1.0, -UINT8_SHIFT)
            spec = (quant, a.onnx_type, (None, None), [], node.output[0])
    quant, out_type, bounds, fused, out_name = spec
    im.raw_quant(a)
    im.raw_quant(b)
    a, b = _match_layouts(im, node, a, b)
    shape = tuple(np.broadcast_shapes(a.tensor.shape, b.tensor.shape))
    y = im.new_tensor(out_name, shape, ir.DType.INT8, quant)
    activation = _activation(bounds, quant)
    im.emit("ADD" if op in ("Add", "QLinearAdd") else "MUL", [a.tensor, b.tensor], [y],
            ir.ActivationAttrs(activation=activation or ir.Activation.NONE))
    out = QValue(y, a.layout, out_type)
    if activation is None:
        out = _emit_clamp(im, out, bounds, out_name)
    _finish(im, node, qdq, out, fused)


def _operand(im: Importer, node: onnx.NodeProto, index: int, quant_indices) -> QValue:
    v = im.value(node, node.input[index])
    if isinstance(v, ConstValue):
        data = np.asarray(v.data)
        if quant_indices is None:
            if data.dtype not in (np.int8, np.uint8):
                raise im.fail(node, f"operand '{node.input[index]}' is a {data.dtype} constant; expected a "
                                    f"quantized tensor: {QUANTIZE_HINT}")
            zero = -UINT8_SHIFT if data.dtype == np.uint8 else 0
            return im.quantized_const(node, data, _quant(1.0, zero), node.input[index])
        quant, _ = im.quant_params(node, *quant_indices)
        return im.quantized_const(node, data, quant, node.input[index])
    q = im.qinput(node, index)
    if quant_indices is not None:
        im.ensure_quant(q, im.quant_params(node, *quant_indices)[0])
    return q


def _match_layouts(im: Importer, node: onnx.NodeProto, a: QValue, b: QValue) -> tuple[QValue, QValue]:
    """Bring two operands into one layout; constants follow the activation."""
    if a.layout == b.layout:
        return a, b
    nhwc, other = (a, b) if a.layout == Layout.NHWC else (b, a)
    if other.tensor.is_constant and len(other.tensor.shape) <= 4:
        shape = (1,) * (4 - len(other.tensor.shape)) + tuple(other.tensor.shape)
        reshaped = QValue(im.const_tensor(other.tensor.name, other.tensor.data.reshape(shape), other.tensor.dtype,
                                          other.tensor.quant), Layout.PLAIN, other.onnx_type)
        moved = im.to_layout(reshaped, Layout.NHWC)
    elif len(other.tensor.shape) == 4:
        moved = im.to_layout(other, Layout.NHWC)
    else:
        plain = im.plain(nhwc)
        return (plain, other) if a is nhwc else (other, plain)
    return (nhwc, moved) if a is nhwc else (moved, nhwc)


def _relu_clip(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    x = im.qinput(node, 0)
    x_quant = im.raw_quant(x)
    bounds = (0.0, None) if node.op_type == "Relu" else None
    if qdq:
        quant, _, _, fused, out_name = _output_spec(im, node, True)
        if bounds is None:
            bounds = im.clip_bounds(node)
    else:
        quant, fused, out_name = x_quant, [], node.output[0]
        if bounds is None:
            low, high = (im.const(node, 1), im.const(node, 2)) if im.opset >= 11 else \
                (attributes(node).get("min"), attributes(node).get("max"))
            shift = UINT8_SHIFT if x.onnx_type == ir.DType.UINT8 else 0
            low_q = -128 if low is None else max(-128, int(np.asarray(low).reshape(-1)[0]) - shift)
            high_q = 127 if high is None else min(127, int(np.asarray(high).reshape(-1)[0]) - shift)
            y = im.new_tensor(out_name, x.tensor.shape, ir.DType.INT8, x_quant)
            im.emit(onnx_ir.ONNX_REQUANTIZE, [x.tensor], [y], onnx_ir.OnnxRequantizeAttrs(low_q, high_q))
            im.values[node.output[0]] = QValue(y, x.layout, x.onnx_type)
            return
    low, high = im.clamp_range(quant, bounds)
    y = im.new_tensor(out_name, x.tensor.shape, ir.DType.INT8, quant)
    im.emit(onnx_ir.ONNX_REQUANTIZE, [x.tensor], [y], onnx_ir.OnnxRequantizeAttrs(low, high))
    _finish(im, node, qdq, QValue(y, x.layout, x.onnx_type), fused)


# ---- pooling ------------------------------------------------------------------------------------


def _pool(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    op = node.op_type
    attrs = attributes(node)
    x = im.qinput(node, 0)
    if op in ("QLinearAveragePool", "QLinearGlobalAveragePool"):
        im.ensure_quant(x, im.quant_params(node, 1, 2)[0])
        quant, out_type, bounds, fused, out_name = _output_spec(im, node, False, 3, 4)
    elif qdq:
        quant, out_type, bounds, fused, out_name = _output_spec(im, node, True)
    else:
        quant, out_type, bounds, fused, out_name = im.raw_quant(x), x.onnx_type, (None, None), [], node.output[0]
    if len(node.output) > 1 and node.output[1]:
        raise im.fail(node, "the Indices output of MaxPool is not supported")
    x_quant = im.raw_quant(x)
    channels_last = bool(attrs.get("channels_last", 0))
    if channels_last:
        if x.layout != Layout.PLAIN:
            x = im.plain(x)
        n, in_h, in_w, c = x.tensor.shape
        stored = x
    else:
        if len(x.onnx_shape) != 4:
            raise im.fail(node, f"input has shape {list(x.onnx_shape)}; only 2-D pooling on NCHW tensors is supported")
        n, c, in_h, in_w = x.onnx_shape
        stored = im.to_layout(x, Layout.NHWC)
    global_pool = op in ("GlobalAveragePool", "QLinearGlobalAveragePool")
    if global_pool:
        kernel, strides, dilations = [in_h, in_w], [1, 1], [1, 1]
        pad_top, pad_left, out_h, out_w = 0, 0, 1, 1
    else:
        kernel = list(attrs["kernel_shape"])
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        if len(kernel) != 2:
            raise im.fail(node, f"kernel_shape {kernel} is not 2-D")
        pad_top, pad_left, out_h, out_w = _conv_pads(im, node, attrs, (in_h, in_w), kernel, strides, dilations)
    is_max = op == "MaxPool"
    count_include_pad = bool(attrs.get("count_include_pad", 0))
    y = im.new_tensor(out_name, (n, out_h, out_w, c), ir.DType.INT8, quant)
    padding = _tflite_padding((in_h, in_w), kernel, strides, dilations, [pad_top, pad_left], [out_h, out_w])
    activation = _activation(bounds, quant)
    # Max pooling has no rounding, so TFLite's kernel is exact when it can express the op. Average
    # pooling uses the ONNX kernel: its float sum follows ONNX Runtime more closely (docs/onnx.md).
    use_tflite = (is_max and padding is not None and dilations == [1, 1] and same_quant(x_quant, quant)
                  and activation is not None)
    if use_tflite:
        im.emit("MAX_POOL_2D", [stored.tensor], [y],
                ir.Pool2DAttrs(filter_h=kernel[0], filter_w=kernel[1], stride_h=strides[0], stride_w=strides[1],
                               padding=padding, activation=activation))
    else:
        attrs_ir = onnx_ir.OnnxPoolAttrs(filter_h=kernel[0], filter_w=kernel[1], stride_h=strides[0],
                                         stride_w=strides[1], dilation_h=dilations[0], dilation_w=dilations[1],
                                         pad_top=pad_top, pad_left=pad_left, count_include_pad=count_include_pad,
                                         integer_sum=op == "QLinearGlobalAveragePool")
        im.emit(onnx_ir.ONNX_MAX_POOL if is_max else onnx_ir.ONNX_AVERAGE_POOL, [stored.tensor], [y], attrs_ir)
        if activation is not None and activation != ir.Activation.NONE:
            activation = None
    out = QValue(y, Layout.PLAIN if channels_last else Layout.NHWC, out_type)
    if activation is None:
        out = _emit_clamp(im, out, bounds, out_name)
    _finish(im, node, qdq, out, fused)


# ---- shape and data movement ----------------------------------------------------------------------


def _passthrough_quant(im: Importer, node: onnx.NodeProto, qdq: bool, x: QValue):
    """Output quantization of a data-movement op: the QuantizeLinear's if there is one, else the input's.

    None when the input is an integer tensor without a scale yet: the output then shares the
    quantization that a later DequantizeLinear gives either of them (`Importer.share_quant`).
    """
    readers = im.consumers.get(node.output[0], [])
    if qdq and readers and all(r.op_type == "QuantizeLinear" for r in readers):
        return im.quant_params(readers[0], 1, 2)[0]
    return x.tensor.quant


def _reshape(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    op = node.op_type
    x = im.qinput(node, 0)
    shape = x.onnx_shape
    attrs = attributes(node)
    if op == "Flatten":
        axis = int(attrs.get("axis", 1)) % (len(shape) + 1) if shape else 0
        new_shape = (int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64)))
    elif op == "Reshape":
        target = [int(d) for d in np.asarray(im.const(node, 1)).reshape(-1)]
        allow_zero = int(attrs.get("allowzero", 0))
        resolved = [shape[i] if d == 0 and not allow_zero else d for i, d in enumerate(target)]
        if -1 in resolved:
            known = int(np.prod([d for d in resolved if d != -1], dtype=np.int64))
            resolved[resolved.index(-1)] = int(np.prod(shape, dtype=np.int64)) // max(known, 1)
        new_shape = tuple(resolved)
    elif op == "Squeeze":
        axes = attrs.get("axes") if im.opset < 13 else im.const(node, 1)
        axes = [int(a) % len(shape) for a in np.asarray(axes).reshape(-1)] if axes is not None else \
            [i for i, d in enumerate(shape) if d == 1]
        new_shape = tuple(d for i, d in enumerate(shape) if i not in axes)
    else:  # Unsqueeze
        axes = attrs.get("axes") if im.opset < 13 else im.const(node, 1)
        rank = len(shape) + len(np.asarray(axes).reshape(-1))
        axes = sorted(int(a) % rank for a in np.asarray(axes).reshape(-1))
        dims = list(shape)
        for a in axes:
            dims.insert(a, 1)
        new_shape = tuple(dims)
    if int(np.prod(new_shape, dtype=np.int64)) != int(np.prod(shape, dtype=np.int64)):
        raise im.fail(node, f"cannot reshape {list(shape)} to {list(new_shape)}")
    quant = _passthrough_quant(im, node, qdq, x)
    if x.layout == Layout.NHWC and not (shape[2] == 1 and shape[3] == 1):
        x = im.plain(x)
    # With H = W = 1, NHWC and NCHW order the same bytes, so no transpose is needed.
    y = im.new_tensor(node.output[0], new_shape, ir.DType.INT8, x.tensor.quant)
    im.emit("RESHAPE", [x.tensor], [y], ir.ReshapeAttrs(new_shape=tuple(new_shape)))
    out = QValue(y, Layout.PLAIN, x.onnx_type)
    im.share_quant(x, out)
    if not same_quant(quant, x.tensor.quant):
        out = _requantize(im, out, quant, f"{node.output[0]}_requantized", out.onnx_type)
    _finish_movement(im, node, qdq, out)


def _finish_movement(im: Importer, node: onnx.NodeProto, qdq: bool, out: QValue) -> None:
    # A data-movement op's float output equals the dequantized int8 result exactly, so readers
    # other than QuantizeLinear may use it too.
    if not qdq:
        im.values[node.output[0]] = out
    elif _all_quantized(im, node):
        im.values[node.output[0]] = Pending(out)
    else:
        im.values[node.output[0]] = DQValue(out)


def _all_quantized(im: Importer, node: onnx.NodeProto) -> bool:
    readers = im.consumers.get(node.output[0], [])
    return bool(readers) and all(r.op_type == "QuantizeLinear" for r in readers)


def _transpose(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    x = im.qinput(node, 0)
    rank = len(x.onnx_shape)
    perm = list(attributes(node).get("perm", list(reversed(range(rank)))))
    stored_perm = [NCHW_TO_NHWC.index(p) for p in perm] if x.layout == Layout.NHWC else perm
    quant = _passthrough_quant(im, node, qdq, x)
    if (rank == 4 and perm == list(NHWC_TO_NCHW) and x.layout == Layout.PLAIN and not x.tensor.is_constant
            and same_quant(quant, x.tensor.quant)):
        # NHWC to NCHW, as tf2onnx writes before a convolution: the stored tensor already is the
        # NHWC form of the result, so the result is the same tensor in the NHWC layout.
        _finish_movement(im, node, qdq, QValue(x.tensor, Layout.NHWC, x.onnx_type, x.source_uint8))
        return
    if stored_perm == list(range(rank)):
        out_shape = tuple(x.tensor.shape)
        y = im.new_tensor(node.output[0], out_shape, ir.DType.INT8, x.tensor.quant)
        im.emit("RESHAPE", [x.tensor], [y], ir.ReshapeAttrs(new_shape=out_shape))
    else:
        y = im.transpose(x.tensor, stored_perm, node.output[0])
    out = QValue(y, Layout.PLAIN, x.onnx_type)
    im.share_quant(x, out)
    if not same_quant(quant, x.tensor.quant):
        out = _requantize(im, out, quant, f"{node.output[0]}_requantized", out.onnx_type)
    _finish_movement(im, node, qdq, out)


def _concat(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    attrs = attributes(node)
    if node.op_type == "QLinearConcat":
        quant, out_type = im.quant_params(node, 0, 1)
        parts = []
        for i in range(2, len(node.input), 3):
            parts.append(_operand(im, node, i, (i + 1, i + 2)))
        fused, bounds = [], (None, None)
    else:
        parts = [_operand(im, node, i, None) for i in range(len(node.input))]
        if qdq:
            quant, bounds, fused = im.float_output_quant(node)
        else:
            quant, bounds, fused = im.raw_quant(parts[0]), (None, None), []
        out_type = parts[0].onnx_type
    for p in parts:
        im.raw_quant(p)
    rank = len(parts[0].onnx_shape)
    axis = int(attrs["axis"]) % rank
    layout = Layout.NHWC if all(p.layout == Layout.NHWC or p.tensor.is_constant for p in parts) and rank == 4 \
        and any(p.layout == Layout.NHWC for p in parts) else Layout.PLAIN
    parts = [im.to_layout(p, layout) if len(p.tensor.shape) == 4 else p for p in parts]
    stored_axis = NHWC_AXIS[axis] if layout == Layout.NHWC else axis
    while len(parts) > 1:
        group, parts = parts[:8], parts[8:]
        shape = list(group[0].tensor.shape)
        shape[stored_axis] = sum(p.tensor.shape[stored_axis] for p in group)
        name = node.output[0] if not parts else f"{node.output[0]}_part{len(im.operators)}"
        y = im.new_tensor(name, shape, ir.DType.INT8, quant)
        im.emit(onnx_ir.ONNX_CONCAT, [p.tensor for p in group], [y], onnx_ir.OnnxAxisAttrs(axis=stored_axis))
        out = QValue(y, layout, out_type)
        if parts:
            parts = [out] + parts
        else:
            parts = [out]
            break
    out = parts[0]
    if bounds != (None, None):
        out = _emit_clamp(im, out, bounds, node.output[0])
    _finish(im, node, qdq, out, fused)


def _softmax(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    attrs = attributes(node)
    x = im.qinput(node, 0)
    if node.op_type == "QLinearSoftmax":
        im.ensure_quant(x, im.quant_params(node, 1, 2)[0])
        quant, out_type, bounds, fused, out_name = _output_spec(im, node, False, 3, 4)
        opset = int(attrs.get("opset", 13))
    elif qdq:
        quant, out_type, bounds, fused, out_name = _output_spec(im, node, True)
        opset = im.opset
    else:
        raise im.fail(node, "Softmax on an integer tensor needs DequantizeLinear before it and QuantizeLinear after it")
    rank = len(x.onnx_shape)
    axis = int(attrs.get("axis", -1 if opset >= 13 else 1)) % rank
    coerced = opset < 13 and axis != rank - 1
    if coerced or (x.layout == Layout.NHWC and False):
        # Before opset 13 Softmax flattens the input to 2-D at `axis` and normalizes each row.
        x = im.plain(x)
        flat = (int(np.prod(x.onnx_shape[:axis], dtype=np.int64)), int(np.prod(x.onnx_shape[axis:], dtype=np.int64)))
        view = im.new_tensor(f"{node.output[0]}_rows", flat, ir.DType.INT8, x.tensor.quant)
        im.emit("RESHAPE", [x.tensor], [view], ir.ReshapeAttrs(new_shape=flat))
        rows = im.new_tensor(f"{out_name}_rows_out", flat, ir.DType.INT8, quant)
        im.emit(onnx_ir.ONNX_SOFTMAX, [view], [rows], onnx_ir.OnnxAxisAttrs(axis=1))
        y = im.new_tensor(out_name, x.onnx_shape, ir.DType.INT8, quant)
        im.emit("RESHAPE", [rows], [y], ir.ReshapeAttrs(new_shape=tuple(x.onnx_shape)))
        out = QValue(y, Layout.PLAIN, out_type)
    else:
        stored_axis = NHWC_AXIS[axis] if x.layout == Layout.NHWC else axis
        y = im.new_tensor(out_name, x.tensor.shape, ir.DType.INT8, quant)
        im.emit(onnx_ir.ONNX_SOFTMAX, [x.tensor], [y], onnx_ir.OnnxAxisAttrs(axis=stored_axis))
        out = QValue(y, x.layout, out_type)
    if bounds != (None, None):
        out = _emit_clamp(im, out, bounds, out_name)
    _finish(im, node, qdq, out, fused)


def _reject_float(im: Importer, node: onnx.NodeProto, qdq: bool) -> None:
    raise OnnxFloatModelError(f"{im.describe(node)} computes in float; {QUANTIZE_HINT}")


_HANDLERS = {
    "Conv": _conv, "QLinearConv": _conv, "ConvInteger": _conv,
    "Gemm": _matmul, "MatMul": _matmul, "QGemm": _matmul, "QLinearMatMul": _matmul, "MatMulInteger": _matmul,
    "Add": _binary, "Mul": _binary, "QLinearAdd": _binary, "QLinearMul": _binary,
    "Relu": _relu_clip, "Clip": _relu_clip,
    "MaxPool": _pool, "AveragePool": _pool, "GlobalAveragePool": _pool, "QLinearAveragePool": _pool,
    "QLinearGlobalAveragePool": _pool,
    "Flatten": _reshape, "Reshape": _reshape, "Squeeze": _reshape, "Unsqueeze": _reshape,
    "Transpose": _transpose,
    "Concat": _concat, "QLinearConcat": _concat,
    "Softmax": _softmax, "QLinearSoftmax": _softmax,
}
