"""Read a .tflite flatbuffer into the graph IR without importing TensorFlow.

The flatbuffer accessors come from the `tflite` schema package. This module only translates: it
keeps every operator in the model's order and index, converts builtin options into the IR's typed
attribute dataclasses, and rejects what no later stage can handle (several subgraphs, dynamic
shapes, custom ops, sparse tensors) with a message that names the operator or tensor.
Checks of data types and op support live in `tinycompile.passes.validate`.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import tflite

from tinycompile import ir
from tinycompile.errors import ModelFormatError, UnsupportedModelError

log = logging.getLogger(__name__)

_TENSOR_TYPES = {
    tflite.TensorType.INT8: ir.DType.INT8,
    tflite.TensorType.UINT8: ir.DType.UINT8,
    tflite.TensorType.INT16: ir.DType.INT16,
    tflite.TensorType.INT32: ir.DType.INT32,
    tflite.TensorType.INT64: ir.DType.INT64,
    tflite.TensorType.FLOAT32: ir.DType.FLOAT32,
    tflite.TensorType.FLOAT16: ir.DType.FLOAT16,
    tflite.TensorType.BOOL: ir.DType.BOOL,
}

_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}

_BUILTIN_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}

_ACTIVATIONS = {
    tflite.ActivationFunctionType.NONE: ir.Activation.NONE,
    tflite.ActivationFunctionType.RELU: ir.Activation.RELU,
    tflite.ActivationFunctionType.RELU_N1_TO_1: ir.Activation.RELU_N1_TO_1,
    tflite.ActivationFunctionType.RELU6: ir.Activation.RELU6,
    tflite.ActivationFunctionType.TANH: ir.Activation.TANH,
    tflite.ActivationFunctionType.SIGN_BIT: ir.Activation.SIGN_BIT,
}

_PADDINGS = {tflite.Padding.SAME: ir.Padding.SAME, tflite.Padding.VALID: ir.Padding.VALID}


def load_tflite(path: str | Path) -> ir.Graph:
    """Parse the .tflite file at `path` into a Graph."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file '{path}': {exc.strerror}") from None
    return parse_tflite(buf, name=path.stem, source=str(path))


def parse_tflite(buf: bytes, name: str = "model", source: str = "<bytes>") -> ir.Graph:
    """Parse a .tflite flatbuffer held in memory into a Graph."""
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelFormatError(
            f"'{source}' is not a TFLite model (no TFL3 file identifier); "
            "pass a .tflite file written by the TFLite converter"
        )
    try:
        return _Reader(buf, name, source).read()
    except (IndexError, ValueError, TypeError, KeyError, OverflowError, struct.error) as exc:
        # Flatbuffer accessors fail with these when offsets point past the end of the buffer.
        log.debug("reading %s failed: %r", source, exc)
        raise ModelFormatError(
            f"'{source}' is malformed or truncated: its {len(buf)} bytes do not hold a readable TFLite "
            "flatbuffer; re-export the model from the converter"
        ) from None


class _Reader:
    def __init__(self, buf: bytes, name: str, source: str):
        self.buf = buf
        self.name = name
        self.source = source
        self.model = tflite.Model.GetRootAs(buf, 0)

    def read(self) -> ir.Graph:
        model = self.model
        n_subgraphs = model.SubgraphsLength()
        if n_subgraphs != 1:
            raise UnsupportedModelError(
                f"'{self.source}' has {n_subgraphs} subgraphs; tinycompile compiles models with exactly "
                "one subgraph (no control flow ops such as WHILE or IF): re-export without control flow"
            )
        sg = model.Subgraphs(0)
        tensors = [self._tensor(sg, i) for i in range(sg.TensorsLength())]

        operators = []
        for i in range(sg.OperatorsLength()):
            operators.append(self._operator(sg.Operators(i), i, tensors))

        inputs = [tensors[i] for i in sg.InputsAsNumpy()] if not sg.InputsIsNone() else []
        outputs = [tensors[i] for i in sg.OutputsAsNumpy()] if not sg.OutputsIsNone() else []
        if not inputs or not outputs:
            raise ModelFormatError(f"'{self.source}' declares no graph inputs or no graph outputs")
        for t in inputs:
            if t.is_constant:
                raise ModelFormatError(f"graph input '{t.name}' is a constant tensor in '{self.source}'")
        return ir.Graph(self.name, tensors, operators, inputs, outputs, source_format="tflite")

    def _buffer_data(self, index: int) -> np.ndarray | None:
        if index == 0 or index >= self.model.BuffersLength():
            return None
        b = self.model.Buffers(index)
        offset = b.Offset()
        if offset > 1:
            # Models over 2 GB keep buffer data after the flatbuffer, addressed by offset and size.
            size = b.Size()
            if offset + size > len(self.buf):
                raise ModelFormatError(f"buffer {index} lies past the end of '{self.source}'")
            return np.frombuffer(self.buf, dtype=np.uint8, count=size, offset=offset)
        if b.DataIsNone() or b.DataLength() == 0:
            return None
        return b.DataAsNumpy()

    def _tensor(self, sg, i: int) -> ir.Tensor:
        t = sg.Tensors(i)
        name = t.Name().decode("utf-8", "replace") if t.Name() else f"tensor_{i}"
        ttype = t.Type()
        if ttype not in _TENSOR_TYPES:
            type_name = _TYPE_NAMES.get(ttype, str(ttype))
            raise UnsupportedModelError(
                f"tensor {i} '{name}' has type {type_name}, which tinycompile does not support; "
                "convert the model to full-integer int8"
            )
        dtype = _TENSOR_TYPES[ttype]
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if not t.ShapeIsNone() else ()
        if not t.ShapeSignatureIsNone():
            signature = [int(d) for d in t.ShapeSignatureAsNumpy()]
            if any(d < 0 for d in signature[1:]) or (signature and signature[0] < 0 and shape[:1] != (1,)):
                raise UnsupportedModelError(
                    f"tensor {i} '{name}' has a dynamic shape {signature}; "
                    "re-export the model with a fixed input shape"
                )
        if any(d < 0 for d in shape):
            raise UnsupportedModelError(
                f"tensor {i} '{name}' has a dynamic shape {list(shape)}; re-export the model with a fixed input shape"
            )
        if t.Sparsity() is not None:
            raise UnsupportedModelError(
                f"tensor {i} '{name}' is sparse; tinycompile needs dense weights: convert without sparsity"
            )

        quant = None
        q = t.Quantization()
        if q is not None and not q.ScaleIsNone() and q.ScaleLength() > 0:
            scale = q.ScaleAsNumpy().astype(np.float32)
            zero_point = (
                q.ZeroPointAsNumpy().astype(np.int64)
                if not q.ZeroPointIsNone() and q.ZeroPointLength() > 0
                else np.zeros(scale.shape, np.int64)
            )
            if zero_point.size == 1 and scale.size > 1:
                zero_point = np.full(scale.shape, zero_point[0], np.int64)
            quant = ir.Quantization(scale=scale, zero_point=zero_point, axis=int(q.QuantizedDimension()))

        data = None
        raw = self._buffer_data(t.Buffer())
        if raw is not None:
            expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
            if raw.size != expected:
                raise ModelFormatError(
                    f"tensor {i} '{name}' has {raw.size} bytes of data but its shape {list(shape)} "
                    f"and type {dtype.value} need {expected}; the model is corrupt"
                )
            data = np.frombuffer(raw.tobytes(), dtype=dtype.numpy).reshape(shape).copy()
        return ir.Tensor(index=i, name=name, shape=shape, dtype=dtype, quant=quant, data=data)

    def _operator(self, op, index: int, tensors: list[ir.Tensor]) -> ir.Operator:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        op_type = _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")
        if op_type == "CUSTOM":
            custom = code.CustomCode().decode("utf-8", "replace") if code.CustomCode() else "?"
            raise UnsupportedModelError(
                f"operator {index} is the custom op '{custom}', which tinycompile cannot compile; "
                "use the model as converted before vendor tools (e.g. Vela) replaced its layers"
            )
        input_indices = [] if op.InputsIsNone() else op.InputsAsNumpy()
        inputs = [tensors[i] if i >= 0 else None for i in input_indices]
        outputs = [tensors[i] for i in (op.OutputsAsNumpy() if not op.OutputsIsNone() else [])]
        attrs = _parse_options(op, op_type, inputs)
        return ir.Operator(index=index, op_type=op_type, inputs=inputs, outputs=outputs,
                           attrs=attrs, version=code.Version())


def _options(op, cls):
    table = op.BuiltinOptions()
    if table is None:
        return None
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _parse_options(op, op_type: str, inputs) -> object:
    if op_type == "CONV_2D":
        o = _options(op, tflite.Conv2DOptions)
        return ir.Conv2DAttrs(
            stride_h=o.StrideH(), stride_w=o.StrideW(),
            dilation_h=o.DilationHFactor(), dilation_w=o.DilationWFactor(),
            padding=_PADDINGS[o.Padding()], activation=_ACTIVATIONS[o.FusedActivationFunction()],
        )
    if op_type == "DEPTHWISE_CONV_2D":
        o = _options(op, tflite.DepthwiseConv2DOptions)
        return ir.DepthwiseConv2DAttrs(
            stride_h=o.StrideH(), stride_w=o.StrideW(),
            dilation_h=o.DilationHFactor(), dilation_w=o.DilationWFactor(),
            padding=_PADDINGS[o.Padding()], activation=_ACTIVATIONS[o.FusedActivationFunction()],
            depth_multiplier=o.DepthMultiplier(),
        )
    if op_type == "FULLY_CONNECTED":
        o = _options(op, tflite.FullyConnectedOptions)
        if o is None:
            return ir.FullyConnectedAttrs()
        if o.WeightsFormat() != tflite.FullyConnectedOptionsWeightsFormat.DEFAULT:
            raise UnsupportedModelError(
                f"operator {op_type} uses shuffled weights (weights_format {o.WeightsFormat()}); "
                "convert with the default weights format"
            )
        return ir.FullyConnectedAttrs(
            activation=_ACTIVATIONS[o.FusedActivationFunction()], keep_num_dims=bool(o.KeepNumDims())
        )
    if op_type in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"):
        o = _options(op, tflite.Pool2DOptions)
        return ir.Pool2DAttrs(
            filter_h=o.FilterHeight(), filter_w=o.FilterWidth(), stride_h=o.StrideH(), stride_w=o.StrideW(),
            padding=_PADDINGS[o.Padding()], activation=_ACTIVATIONS[o.FusedActivationFunction()],
        )
    if op_type in ("ADD", "SUB", "MUL", "DIV"):
        cls = {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions,
               "MUL": tflite.MulOptions, "DIV": tflite.DivOptions}[op_type]
        o = _options(op, cls)
        act = _ACTIVATIONS[o.FusedActivationFunction()] if o is not None else ir.Activation.NONE
        return ir.ActivationAttrs(activation=act)
    if op_type == "SOFTMAX":
        o = _options(op, tflite.SoftmaxOptions)
        return ir.SoftmaxAttrs(beta=float(o.Beta()) if o is not None else 1.0)
    if op_type == "RESHAPE":
        o = _options(op, tflite.ReshapeOptions)
        shape: tuple[int, ...] = ()
        if o is not None and not o.NewShapeIsNone():
            shape = tuple(int(d) for d in o.NewShapeAsNumpy())
        return ir.ReshapeAttrs(new_shape=shape)
    if op_type in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
        o = _options(op, tflite.ReducerOptions)
        return ir.ReducerAttrs(keep_dims=bool(o.KeepDims()) if o is not None else False)
    if op_type == "CONCATENATION":
        o = _options(op, tflite.ConcatenationOptions)
        return ir.ConcatenationAttrs(axis=o.Axis(), activation=_ACTIVATIONS[o.FusedActivationFunction()])
    if op_type == "STRIDED_SLICE":
        o = _options(op, tflite.StridedSliceOptions)
        return ir.StridedSliceAttrs(
            begin_mask=o.BeginMask(), end_mask=o.EndMask(), ellipsis_mask=o.EllipsisMask(),
            new_axis_mask=o.NewAxisMask(), shrink_axis_mask=o.ShrinkAxisMask(), offset=bool(o.Offset()),
        )
    if op_type == "BATCH_MATMUL":
        o = _options(op, tflite.BatchMatMulOptions)
        return ir.BatchMatMulAttrs(adj_x=bool(o.AdjX()), adj_y=bool(o.AdjY())) if o else ir.BatchMatMulAttrs()
    if op_type == "GATHER":
        o = _options(op, tflite.GatherOptions)
        return ir.GatherAttrs(axis=o.Axis(), batch_dims=o.BatchDims()) if o else ir.GatherAttrs()
    if op_type == "GELU":
        o = _options(op, tflite.GeluOptions)
        return ir.GeluAttrs(approximate=bool(o.Approximate())) if o else ir.GeluAttrs()
    if op_type == "LEAKY_RELU":
        o = _options(op, tflite.LeakyReluOptions)
        return ir.LeakyReluAttrs(alpha=float(o.Alpha()))
    if op_type == "SQUEEZE":
        o = _options(op, tflite.SqueezeOptions)
        dims = tuple(int(d) for d in o.SqueezeDimsAsNumpy()) if o and not o.SqueezeDimsIsNone() else ()
        return ir.SqueezeAttrs(squeeze_dims=dims)
    return ir.NoAttrs()
