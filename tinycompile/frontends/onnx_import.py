"""Convert the nodes of a quantized ONNX graph into IR operators.

The importer walks the nodes in their (topological) file order and keeps, for every ONNX value
name, what it is in the IR:

- `QValue`: an integer tensor (activation or constant) with its quantization;
- `DQValue`: the float output of a DequantizeLinear, standing for its QValue;
- `Pending`: the float output of a QDQ float op; the op was emitted with the scale and zero
  point of the QuantizeLinear that reads that output, so the QuantizeLinear maps onto it;
- `ConstValue`: a folded constant (initializers, Constant nodes, Shape of a known tensor, and
  any node whose inputs are all constant, evaluated with onnx's reference evaluator);
- `FloatValue`: a float graph input, which only a QuantizeLinear may read.

uint8 tensors are stored as int8: data and zero point both shift by -128, which leaves
real = scale * (q - zero_point) unchanged, so every int8 kernel applies. Rank-4 activations that
convolutions or pools produce are NHWC (`Layout.NHWC`); a TRANSPOSE is inserted wherever an op
needs the ONNX (NCHW) order, including before every graph output.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tinycompile import ir
from tinycompile.errors import UnsupportedModelError
from tinycompile.frontends import onnx_ir
from tinycompile.frontends.onnx import MICROSOFT_DOMAIN, QUANTIZE_HINT, OnnxFloatModelError, opset_versions

log = logging.getLogger(__name__)

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)
UINT8_SHIFT = 128
BIAS_SCALE_RTOL = 1e-5


class Layout(enum.Enum):
    PLAIN = "plain"   # stored in the ONNX order
    NHWC = "nhwc"     # a rank-4 NCHW ONNX value stored as NHWC


@dataclass(eq=False)
class QValue:
    tensor: ir.Tensor
    layout: Layout = Layout.PLAIN
    onnx_type: ir.DType = ir.DType.INT8   # the type the ONNX model declares (uint8 is stored as int8)
    source_uint8: ir.Tensor | None = None  # the uint8 graph input this tensor was shifted from

    @property
    def onnx_shape(self) -> tuple[int, ...]:
        shape = self.tensor.shape
        return tuple(shape[i] for i in NHWC_TO_NCHW) if self.layout == Layout.NHWC else shape


@dataclass(eq=False)
class DQValue:
    q: QValue


@dataclass(eq=False)
class Pending:
    q: QValue


@dataclass(eq=False)
class ConstValue:
    data: np.ndarray


@dataclass(eq=False)
class FloatValue:
    tensor: ir.Tensor


Value = QValue | DQValue | Pending | ConstValue | FloatValue

_ONNX_TYPES = {
    onnx.TensorProto.INT8: ir.DType.INT8,
    onnx.TensorProto.UINT8: ir.DType.UINT8,
    onnx.TensorProto.INT32: ir.DType.INT32,
    onnx.TensorProto.FLOAT: ir.DType.FLOAT32,
}


def _quant(scale, zero_point, axis: int = 0) -> ir.Quantization:
    return ir.Quantization(scale=np.asarray(scale, np.float32).reshape(-1),
                           zero_point=np.asarray(zero_point, np.int64).reshape(-1), axis=axis)


def same_quant(a: ir.Quantization | None, b: ir.Quantization | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.scale.shape == b.scale.shape and bool(np.all(a.scale == b.scale))
            and bool(np.all(a.zero_point == b.zero_point)))


def round_half_even_quantize(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                             qmin: int, qmax: int) -> np.ndarray:
    """QuantizeLinear on constants: saturate(round_half_even(x / scale) + zero_point), in float32."""
    q = np.rint(np.asarray(values, np.float32) / np.asarray(scale, np.float32))
    return np.clip(q + zero_point, qmin, qmax).astype(np.int64)


class Importer:
    """Convert one ONNX graph; `run` returns the IR graph."""

    def __init__(self, model: onnx.ModelProto, name: str, input_shapes: dict[str, tuple[int, ...]]):
        self.model = model
        self.graph_proto = model.graph
        self.name = name
        self.input_shapes = input_shapes
        self.opset = opset_versions(model).get("", 0)
        self.tensors: list[ir.Tensor] = []
        self.operators: list[ir.Operator] = []
        self.values: dict[str, Value] = {}
        self.inputs: list[ir.Tensor] = []
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        self.producers: dict[str, onnx.NodeProto] = {}
        self.fused: set[int] = set()  # nodes already converted: fused into another op, or converted early
        self.layout_cache: dict[tuple[int, Layout], QValue] = {}
        # Values that hold the same integers (a reshaped or transposed tensor and its source):
        # whichever first gets a scale and zero point gives them to the others.
        self.quant_peers: dict[int, list[QValue]] = {}
        for node in self.graph_proto.node:
            for name_ in node.input:
                if name_:
                    self.consumers.setdefault(name_, []).append(node)
            for name_ in node.output:
                if name_:
                    self.producers[name_] = node
        self.output_names = {v.name for v in self.graph_proto.output}

    # ---- graph construction helpers -------------------------------------------------------

    def new_tensor(self, name: str, shape, dtype: ir.DType, quant: ir.Quantization | None = None,
                   data: np.ndarray | None = None) -> ir.Tensor:
        t = ir.Tensor(index=len(self.tensors), name=name, shape=tuple(int(d) for d in shape), dtype=dtype,
                      quant=quant, data=data)
        self.tensors.append(t)
        return t

    def emit(self, op_type: str, inputs: list, outputs: list[ir.Tensor], attrs=None) -> ir.Operator:
        op = ir.Operator(index=len(self.operators), op_type=op_type, inputs=list(inputs), outputs=outputs,
                         attrs=attrs if attrs is not None else ir.NoAttrs())
        self.operators.append(op)
        return op

    def const_tensor(self, name: str, data: np.ndarray, dtype: ir.DType, quant=None) -> ir.Tensor:
        data = np.ascontiguousarray(np.asarray(data).astype(dtype.numpy))
        return self.new_tensor(name, data.shape, dtype, quant=quant, data=data)

    def describe(self, node: onnx.NodeProto) -> str:
        domain = node.domain or "ai.onnx"
        version = 1 if node.domain == MICROSOFT_DOMAIN else self.opset
        return f"node '{node.name or node.output[0]}' ({node.op_type}, {domain} opset {version})"

    def fail(self, node: onnx.NodeProto, message: str) -> UnsupportedModelError:
        return UnsupportedModelError(f"{self.describe(node)}: {message}")

    # ---- values ---------------------------------------------------------------------------

    def value(self, node: onnx.NodeProto, name: str) -> Value:
        if name not in self.values and self.constant_early(name) is None:
            raise self.fail(node, f"input '{name}' is not produced by any node, initializer or graph input")
        return self.values[name]

    def constant_early(self, name: str, depth: int = 0) -> Value | None:
        """Convert the nodes that compute constant `name` now, if they are not converted yet.

        A fusion reads constants of nodes that come later in the file (a bias Add's
        DequantizeLinear may follow the MatMul that it is fused into). Only nodes whose inputs are
        all constant are converted out of order; anything else returns None.
        """
        if name in self.values:
            return self.values[name] if self.is_constant(self.values[name]) else None
        node = self.producers.get(name)
        if node is None or id(node) in self.fused or depth > 32:
            return None
        for input_name in node.input:
            if input_name and self.constant_early(input_name, depth + 1) is None:
                return None
        from tinycompile.frontends import onnx_ops

        onnx_ops.convert_node(self, node)
        self.fused.add(id(node))
        value = self.values.get(name)
        return value if value is not None and self.is_constant(value) else None

    @staticmethod
    def is_constant(v: Value) -> bool:
        if isinstance(v, ConstValue):
            return True
        q = v.q if isinstance(v, DQValue) else v
        return isinstance(q, QValue) and q.tensor.is_constant

    def const(self, node: onnx.NodeProto, index: int, default=None) -> np.ndarray | None:
        """Return constant input `index`, or `default` when the input is absent."""
        if index >= len(node.input) or not node.input[index]:
            return default
        v = self.value(node, node.input[index])
        if isinstance(v, ConstValue):
            return v.data
        if isinstance(v, QValue) and v.tensor.is_constant:
            return v.tensor.data
        raise self.fail(node, f"input '{node.input[index]}' must be a constant (an initializer) because "
                              "tinycompile fixes scales, zero points and weights at compile time; store it "
                              "as an initializer, e.g. by quantizing with onnxruntime's quantize_static")

    def qinput(self, node: onnx.NodeProto, index: int) -> QValue:
        """Return input `index` as a quantized integer value (a DequantizeLinear's source counts)."""
        name = node.input[index]
        v = self.value(node, name)
        if isinstance(v, DQValue):
            return v.q
        if isinstance(v, QValue):
            return v
        if isinstance(v, ConstValue):
            raise self.fail(node, f"input '{name}' is a float constant that no DequantizeLinear quantizes; "
                                  f"the model is partly float: {QUANTIZE_HINT}")
        if isinstance(v, FloatValue):
            raise OnnxFloatModelError(f"{self.describe(node)} reads the float input '{name}' without a "
                                      f"QuantizeLinear: the model is partly float; {QUANTIZE_HINT}")
        raise self.fail(node, f"input '{name}' is the unquantized float output of another op; "
                              f"put QuantizeLinear/DequantizeLinear between them: {QUANTIZE_HINT}")

    def ensure_quant(self, qv: QValue, quant: ir.Quantization) -> None:
        """Give an integer activation its scale and zero point when the first consumer states them."""
        t = qv.tensor
        if t.quant is None:
            t.quant = quant
            if qv.source_uint8 is not None and qv.source_uint8.quant is None:
                qv.source_uint8.quant = _quant(quant.scale, quant.zero_point + UINT8_SHIFT)
            for peer in self.quant_peers.get(id(t), []):
                self.ensure_quant(peer, quant)

    def share_quant(self, a: QValue, b: QValue) -> None:
        """Let two values that hold the same integers share the quantization either gets later.

        An integer graph input that a Transpose or Reshape reads before any DequantizeLinear has
        no scale yet. The DequantizeLinear after the data movement gives it one.
        """
        if a.tensor.quant is None and b.tensor.quant is None and a.tensor is not b.tensor:
            self.quant_peers.setdefault(id(a.tensor), []).append(b)
            self.quant_peers.setdefault(id(b.tensor), []).append(a)

    def raw_quant(self, qv: QValue) -> ir.Quantization:
        """Return a value's quantization; plain integer data without one counts as scale 1."""
        if qv.tensor.quant is None:
            zero = -UINT8_SHIFT if qv.onnx_type == ir.DType.UINT8 else 0
            self.ensure_quant(qv, _quant(1.0, zero))
        return qv.tensor.quant

    def quant_params(self, node: onnx.NodeProto, scale_index: int, zp_index: int,
                     allow_per_axis: bool = False, axis: int = 0) -> tuple[ir.Quantization, ir.DType]:
        """Read a (scale, zero point) input pair; the returned zero point is in the int8 domain."""
        scale = self.const(node, scale_index)
        if scale is None:
            raise self.fail(node, f"input {scale_index} (scale) is missing")
        zp_value = self.value(node, node.input[zp_index]) if zp_index < len(node.input) and node.input[zp_index] else None
        zero_point = self.const(node, zp_index)
        dtype = ir.DType.UINT8
        if zp_value is not None:
            dtype = self.zero_point_type(node, zp_index)
        elif zp_index >= len(node.input) or not node.input[zp_index]:
            out_type = helper.get_attribute_value(next(a for a in node.attribute if a.name == "output_dtype")) \
                if any(a.name == "output_dtype" for a in node.attribute) else 0
            dtype = ir.DType.INT8 if out_type == onnx.TensorProto.INT8 else ir.DType.UINT8
        if zero_point is None:
            zero_point = np.zeros(np.asarray(scale).shape, np.int64)
        scale = np.asarray(scale, np.float32).reshape(-1)
        zero_point = np.asarray(zero_point, np.int64).reshape(-1)
        if scale.size > 1 and not allow_per_axis:
            raise self.fail(node, f"is quantized per axis ({scale.size} scales) on an activation; "
                                  "only weights may be quantized per axis: quantize with per-tensor activations")
        if zero_point.size == 1 and scale.size > 1:
            zero_point = np.full(scale.shape, zero_point[0], np.int64)
        if dtype == ir.DType.UINT8:
            zero_point = zero_point - UINT8_SHIFT
        return _quant(scale, zero_point, axis), dtype

    def zero_point_type(self, node: onnx.NodeProto, index: int) -> ir.DType:
        data = self.const(node, index)
        kind = np.asarray(data).dtype
        if kind == np.uint8:
            return ir.DType.UINT8
        if kind == np.int8:
            return ir.DType.INT8
        raise self.fail(node, f"zero point '{node.input[index]}' is {kind}; tinycompile supports int8 and uint8 "
                              "quantization: quantize with QuantType.QInt8 or QuantType.QUInt8")

    def quantized_const(self, node: onnx.NodeProto, data: np.ndarray, quant: ir.Quantization,
                        name: str) -> QValue:
        """Store an integer constant, shifting uint8 data into int8 (the zero point already is)."""
        data = np.asarray(data)
        onnx_type = ir.DType.INT8
        if data.dtype == np.uint8:
            data = data.astype(np.int64) - UINT8_SHIFT
            onnx_type = ir.DType.UINT8
        elif data.dtype not in (np.int8, np.int32):
            raise self.fail(node, f"constant '{name}' is {data.dtype}; expected int8, uint8 or int32")
        dtype = ir.DType.INT32 if data.dtype == np.int32 else ir.DType.INT8
        t = self.const_tensor(name, data, dtype, quant=quant)
        return QValue(t, Layout.PLAIN, onnx_type)

    # ---- layout ---------------------------------------------------------------------------

    def to_layout(self, qv: QValue, layout: Layout) -> QValue:
        """Return `qv` stored in `layout`, inserting a TRANSPOSE (cached per tensor) if needed."""
        if qv.layout == layout:
            return qv
        key = (id(qv.tensor), layout)
        if key in self.layout_cache:
            return self.layout_cache[key]
        t = qv.tensor
        if len(t.shape) != 4:
            raise UnsupportedModelError(f"tensor '{t.name}' must be 4-D to change layout, got {list(t.shape)}")
        if t.is_constant:
            perm = NCHW_TO_NHWC if layout == Layout.NHWC else NHWC_TO_NCHW
            moved = self.const_tensor(f"{t.name}_{layout.value}", np.transpose(t.data, perm), t.dtype, t.quant)
            result = QValue(moved, layout, qv.onnx_type)
        else:
            perm = NCHW_TO_NHWC if layout == Layout.NHWC else NHWC_TO_NCHW
            result = QValue(self.transpose(t, perm, f"{t.name}_{'nhwc' if layout == Layout.NHWC else 'nchw'}"),
                            layout, qv.onnx_type)
            self.share_quant(qv, result)
        self.layout_cache[key] = result
        return result

    def transpose(self, t: ir.Tensor, perm, name: str) -> ir.Tensor:
        """Emit a TRANSPOSE, or a RESHAPE (which aliases its input) when no byte moves.

        Bytes stay in place when the dimensions larger than 1 keep their order, as for NCHW to
        NHWC with one channel or with H = W = 1.
        """
        shape = [t.shape[p] for p in perm]
        out = self.new_tensor(name, shape, t.dtype, t.quant)
        moved = [p for p in perm if t.shape[p] != 1]
        if moved == sorted(moved):
            self.emit("RESHAPE", [t], [out], ir.ReshapeAttrs(new_shape=tuple(shape)))
            return out
        perm_t = self.const_tensor(f"{name}_perm", np.asarray(perm, np.int32), ir.DType.INT32)
        self.emit("TRANSPOSE", [t, perm_t], [out])
        return out

    def plain(self, qv: QValue) -> QValue:
        return self.to_layout(qv, Layout.PLAIN) if qv.layout == Layout.NHWC else qv

    # ---- outputs of QDQ float ops ---------------------------------------------------------

    def float_output_quant(self, node: onnx.NodeProto, bias_add: onnx.NodeProto | None = None
                           ) -> tuple[ir.Quantization, tuple[float | None, float | None], list[onnx.NodeProto]]:
        """Find the QuantizeLinear that quantizes a float op's output.

        Returns its quantization, the (min, max) of a Relu or Clip between the op and the
        QuantizeLinear (fused into the op), and the nodes that the fusion consumed. `bias_add` is
        a constant bias Add that reads the op's output and that the caller fuses; the search then
        starts at the Add's output.
        """
        out = node.output[0] if bias_add is None else bias_add.output[0]
        readers = self.consumers.get(out, [])
        bounds: tuple[float | None, float | None] = (None, None)
        fused: list[onnx.NodeProto] = [] if bias_add is None else [bias_add]
        if (len(readers) == 1 and readers[0].op_type in ("Relu", "Clip") and out not in self.output_names):
            act = readers[0]
            if act.op_type == "Relu":
                bounds = (0.0, None)
            else:
                bounds = self.clip_bounds(act)
            fused.append(act)
            out = act.output[0]
            readers = self.consumers.get(out, [])
        quantizers = [r for r in readers if r.op_type == "QuantizeLinear"]
        if not quantizers or len(quantizers) != len(readers) or out in self.output_names:
            raise self.fail(node, f"its float output '{out}' is read by "
                                  f"{', '.join(sorted({r.op_type for r in readers})) or 'no node'}"
                                  f"{' and is a graph output' if out in self.output_names else ''} instead of only "
                                  f"QuantizeLinear; the model is partly float: {QUANTIZE_HINT}")
        quant, _ = self.quant_params(quantizers[0], 1, 2)
        return quant, bounds, fused

    def clip_bounds(self, node: onnx.NodeProto) -> tuple[float | None, float | None]:
        if self.opset < 11:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            return attrs.get("min"), attrs.get("max")
        low = self.const(node, 1)
        high = self.const(node, 2)
        return (None if low is None else float(np.asarray(low).reshape(-1)[0]),
                None if high is None else float(np.asarray(high).reshape(-1)[0]))

    def clamp_range(self, quant: ir.Quantization, bounds) -> tuple[int, int]:
        """Return the int8 clamp bounds of float bounds under `quant`, rounding as QuantizeLinear does."""
        low, high = bounds
        scale = np.float32(quant.scalar_scale)
        zp = quant.scalar_zero_point
        qmin = -128 if low is None else int(np.clip(np.rint(np.float32(low) / scale) + zp, -128, 127))
        qmax = 127 if high is None else int(np.clip(np.rint(np.float32(high) / scale) + zp, -128, 127))
        return qmin, qmax

    def finish_float_op(self, node: onnx.NodeProto, out: QValue, fused: list[onnx.NodeProto]) -> None:
        """Record a QDQ float op's output (and any fused activation's) as pending quantization."""
        self.values[node.output[0]] = Pending(out)
        for act in fused:
            self.fused.add(id(act))
            self.values[act.output[0]] = Pending(out)

    # ---- the main loop --------------------------------------------------------------------

    def run(self) -> ir.Graph:
        from tinycompile.frontends import onnx_ops

        initializers = {t.name: t for t in self.graph_proto.initializer}
        for name, tensor in initializers.items():
            self.values[name] = ConstValue(numpy_helper.to_array(tensor))
        for value in self.graph_proto.input:
            if value.name in initializers:
                continue
            self.add_graph_input(value)
        for node in self.graph_proto.node:
            if id(node) in self.fused:
                continue
            onnx_ops.convert_node(self, node)
        outputs = [self.graph_output(v) for v in self.graph_proto.output]
        for t in self.tensors:
            if t.quant is None and t.dtype == ir.DType.INT8 and not t.is_constant:
                t.quant = _quant(1.0, 0)
        used = {id(t) for op in self.operators for t in [*op.inputs, *op.outputs] if t is not None}
        used |= {id(t) for t in self.inputs} | {id(t) for t in outputs}
        tensors = [t for t in self.tensors if id(t) in used]
        for i, t in enumerate(tensors):
            t.index = i
        graph = ir.Graph(self.name, tensors, self.operators, self.inputs, outputs, source_format="onnx")
        graph.renumber()
        return graph

    def add_graph_input(self, value: onnx.ValueInfoProto) -> None:
        elem = value.type.tensor_type.elem_type
        dtype = _ONNX_TYPES.get(elem)
        shape = self.input_shapes[value.name]
        if dtype is None:
            raise UnsupportedModelError(
                f"graph input '{value.name}' has type {onnx.TensorProto.DataType.Name(elem)}; tinycompile reads "
                "float32, int8 and uint8 inputs"
            )
        t = self.new_tensor(value.name, shape, dtype)
        self.inputs.append(t)
        if dtype == ir.DType.FLOAT32:
            self.values[value.name] = FloatValue(t)
        elif dtype == ir.DType.UINT8:
            shifted = self.new_tensor(f"{value.name}_s8", shape, ir.DType.INT8)
            qv = QValue(shifted, Layout.PLAIN, ir.DType.UINT8, source_uint8=t)
            self.emit(onnx_ir.ONNX_REQUANTIZE, [t], [shifted], onnx_ir.OnnxRequantizeAttrs(-128, 127))
            self.values[value.name] = qv
        else:
            self.values[value.name] = QValue(t, Layout.PLAIN, dtype)

    def graph_output(self, value: onnx.ValueInfoProto) -> ir.Tensor:
        name = value.name
        v = self.values.get(name)
        declared = _ONNX_TYPES.get(value.type.tensor_type.elem_type)
        if isinstance(v, DQValue):
            q = self.plain(v.q)
            out = self.new_tensor(name, q.tensor.shape, ir.DType.FLOAT32)
            self.emit(onnx_ir.ONNX_DEQUANTIZE, [q.tensor], [out])
            return out
        if isinstance(v, QValue):
            if v.tensor.is_constant:
                raise UnsupportedModelError(f"graph output '{name}' is a constant; there is nothing to compute")
            q = self.plain(v)
            if v.onnx_type == ir.DType.UINT8 or declared == ir.DType.UINT8:
                quant = self.raw_quant(q)
                out = self.new_tensor(name, q.tensor.shape, ir.DType.UINT8,
                                      _quant(quant.scale, quant.zero_point + UINT8_SHIFT))
                self.emit(onnx_ir.ONNX_REQUANTIZE, [q.tensor], [out], onnx_ir.OnnxRequantizeAttrs(0, 255))
                q.tensor.name = f"{name}_s8"
                return out
            if q is not v or any(q.tensor is o for o in self.inputs):
                if any(q.tensor is o for o in self.inputs):
                    raise UnsupportedModelError(f"graph output '{name}' is a graph input; there is nothing to compute")
                if not any(v.tensor is o for o in self.inputs):
                    v.tensor.name = f"{name}_nhwc"
                q.tensor.name = name
            elif q.tensor.name != name and q.tensor.name not in self.output_names:
                q.tensor.name = name  # the float op's tensor is the QuantizeLinear's output
            return q.tensor
        if isinstance(v, FloatValue):
            raise UnsupportedModelError(f"graph output '{name}' is a graph input; there is nothing to compute")
        if isinstance(v, ConstValue):
            raise UnsupportedModelError(f"graph output '{name}' is a constant; there is nothing to compute")
        raise UnsupportedModelError(
            f"graph output '{name}' is an unquantized float value; end the model with DequantizeLinear: {QUANTIZE_HINT}"
        )


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def broadcast_shape(*shapes) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))


