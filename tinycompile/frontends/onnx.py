"""Read a quantized ONNX model into the graph IR.

The frontend accepts the two forms that `onnxruntime.quantization.quantize_static` writes: QDQ
(float ops between DequantizeLinear and QuantizeLinear nodes) and QOperator (QLinearConv,
QLinearMatMul, the com.microsoft QLinear* ops, ConvInteger, MatMulInteger). Both become the same
IR: int8 tensors with their scales and zero points, and operators with TFLite op names wherever a
TFLite lowering computes the same thing, else the ONNX-only ops of `onnx_ir`.

This module loads and checks the file (external data, opsets, float or dynamically quantized
models, dynamic input shapes) and hands the graph to `onnx_import.Importer`, which converts
nodes. Layout: activations become NHWC inside the graph while graph inputs and outputs keep the
model's NCHW shape, with TRANSPOSE operators at the boundary (see docs/onnx.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
from onnx import external_data_helper

from tinycompile import ir
from tinycompile.errors import ModelFormatError, UnsupportedModelError

log = logging.getLogger(__name__)

MIN_OPSET = 10  # QuantizeLinear, QLinearConv and ConvInteger first appear in opset 10
MICROSOFT_DOMAIN = "com.microsoft"

QUANTIZE_HINT = (
    "quantize it to int8 first with onnxruntime.quantization.quantize_static(model_input, model_output, "
    "calibration_data_reader, quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, "
    "weight_type=QuantType.QInt8)"
)

# Nodes that mark a statically quantized model.
QUANTIZED_OPS = {
    "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
    "QLinearAdd", "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool", "QGemm", "QLinearSoftmax",
    "QLinearConcat",
}


class OnnxFloatModelError(UnsupportedModelError):
    """The ONNX model computes in float: it was not quantized, or only dynamically."""


class OnnxUnsupportedOpError(UnsupportedModelError):
    """A node's op type, domain or opset is outside what the ONNX frontend converts."""


class OnnxDynamicShapeError(UnsupportedModelError):
    """A graph input has a dimension that is not fixed and no --input-shape override fixes it."""


class OnnxExternalDataError(ModelFormatError):
    """The model keeps tensors in an external data file that is missing or unreadable."""


def load_onnx(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> ir.Graph:
    """Parse the quantized ONNX model at `path` into a Graph.

    `input_shapes` fixes the shape of graph inputs by name; it is required for inputs whose
    shape has symbolic or unknown dimensions.
    """
    from tinycompile.frontends.onnx_import import Importer

    path = Path(path)
    model = read_model(path)
    check_opsets(model, path)
    check_quantized(model, path)
    shapes = resolve_input_shapes(model, path, input_shapes or {})
    graph = Importer(model, path.stem, shapes).run()
    log.info("imported '%s': %d operators, %d tensors", path, len(graph.operators), len(graph.tensors))
    return graph


def read_model(path: Path) -> onnx.ModelProto:
    """Load the protobuf and the external data files that it names."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except OSError as exc:
        raise ModelFormatError(f"cannot read model file '{path}': {exc.strerror}") from None
    except Exception as exc:  # protobuf raises its own DecodeError, and onnx wraps others
        raise ModelFormatError(
            f"'{path}' is not a valid ONNX model ({type(exc).__name__}: {str(exc)[:120]}); "
            "export it again with torch.onnx.export or onnx.save"
        ) from None
    if not model.HasField("graph") or not model.graph.node:
        raise ModelFormatError(f"'{path}' contains no ONNX graph nodes; pass a model saved with onnx.save")
    base = path.parent
    for tensor in external_data_helper._get_all_tensors(model):
        if not external_data_helper.uses_external_data(tensor):
            continue
        info = external_data_helper.ExternalDataInfo(tensor)
        data_file = base / info.location
        if not data_file.is_file():
            raise OnnxExternalDataError(
                f"tensor '{tensor.name}' of '{path}' keeps its data in '{info.location}', which is not found "
                f"next to the model ({data_file}); copy the data file there or save the model with "
                "onnx.save(model, path, save_as_external_data=False)"
            )
    try:
        external_data_helper.load_external_data_for_model(model, str(base))
    except (OSError, ValueError) as exc:
        raise OnnxExternalDataError(f"cannot read the external data of '{path}': {exc}") from None
    return model


def opset_versions(model: onnx.ModelProto) -> dict[str, int]:
    return {("" if o.domain in ("", "ai.onnx") else o.domain): int(o.version) for o in model.opset_import}


def check_opsets(model: onnx.ModelProto, path: Path) -> None:
    newest = onnx.defs.onnx_opset_version()
    for domain, version in opset_versions(model).items():
        if domain == "":
            if not MIN_OPSET <= version <= newest:
                raise OnnxUnsupportedOpError(
                    f"'{path}' uses ONNX opset {version}; tinycompile reads opsets {MIN_OPSET} to {newest}: "
                    f"export with opset_version between {MIN_OPSET} and {newest} or convert with "
                    "onnx.version_converter.convert_version"
                )
        elif domain == MICROSOFT_DOMAIN:
            if version != 1:
                raise OnnxUnsupportedOpError(
                    f"'{path}' uses {MICROSOFT_DOMAIN} opset {version}; tinycompile reads version 1"
                )
        elif domain not in ("ai.onnx.ml",):
            raise OnnxUnsupportedOpError(
                f"'{path}' imports operator domain '{domain}' (version {version}), which tinycompile cannot read; "
                "use only standard ONNX ops and the com.microsoft quantized ops"
            )


def check_quantized(model: onnx.ModelProto, path: Path) -> None:
    """Reject float and dynamically quantized models with the way to quantize them statically."""
    ops = {node.op_type for node in model.graph.node}
    if "DynamicQuantizeLinear" in ops:
        node = next(n for n in model.graph.node if n.op_type == "DynamicQuantizeLinear")
        raise OnnxFloatModelError(
            f"'{path}' is dynamically quantized (node '{node.name or node.output[0]}' is DynamicQuantizeLinear) "
            f"and computes activations' scales at run time; {QUANTIZE_HINT}"
        )
    if ops & QUANTIZED_OPS:
        return
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                   onnx.TensorProto.BFLOAT16}
    has_float = any(t.data_type in float_types for t in model.graph.initializer)
    has_float |= any(v.type.tensor_type.elem_type in float_types for v in model.graph.input)
    if has_float:
        raise OnnxFloatModelError(f"'{path}' is a float model with no quantized ops; {QUANTIZE_HINT}")


def resolve_input_shapes(model: onnx.ModelProto, path: Path,
                         overrides: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Return the fixed shape of every graph input, applying the --input-shape overrides."""
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    names = [v.name for v in inputs]
    for name in overrides:
        if name not in names:
            raise OnnxInputShapeError(
                f"--input-shape names '{name}', which is not a graph input of '{path}'; inputs are {', '.join(names)}"
            )
    shapes: dict[str, tuple[int, ...]] = {}
    for value in inputs:
        dims = value.type.tensor_type.shape.dim
        declared = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in dims]
        if value.name in overrides:
            shape = tuple(int(d) for d in overrides[value.name])
            if value.type.tensor_type.HasField("shape") and len(shape) != len(declared):
                raise OnnxInputShapeError(
                    f"--input-shape {value.name}:{','.join(map(str, shape))} has {len(shape)} dimensions but "
                    f"input '{value.name}' has {len(declared)}"
                )
            for given, fixed in zip(shape, declared):
                if fixed is not None and given != fixed:
                    raise OnnxInputShapeError(
                        f"--input-shape {value.name}:{','.join(map(str, shape))} conflicts with the fixed shape "
                        f"{_shape_text(dims)} of input '{value.name}'"
                    )
            shapes[value.name] = shape
            continue
        if not value.type.tensor_type.HasField("shape") or any(d is None for d in declared):
            example = ",".join(str(d) if d is not None else "1" for d in declared) or "1,3,32,32"
            raise OnnxDynamicShapeError(
                f"input '{value.name}' of '{path}' has the dynamic shape {_shape_text(dims)}; fix it with "
                f"--input-shape {value.name}:{example}"
            )
        shapes[value.name] = tuple(int(d) for d in declared)
    return shapes


class OnnxInputShapeError(UnsupportedModelError):
    """Invalid --input-shape override: an unknown input name, or a shape that contradicts the model."""


def _shape_text(dims) -> str:
    parts = []
    for d in dims:
        if d.HasField("dim_value") and d.dim_value > 0:
            parts.append(str(d.dim_value))
        else:
            parts.append(d.dim_param or "?")
    return "[" + ", ".join(parts) + "]"
