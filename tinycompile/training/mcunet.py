"""Read the int8 model format of the tiny-training code (MCUNet and MobileNet variants) into the IR.

A model is a `.json` file with the layer structure and scalars plus a `.npz` file beside it that
holds the arrays; each `{"__array__": KEY}` in the JSON names an array in the npz. The network is
`first_conv`, a list of inverted-residual `blocks` (optional `pointwise1`, `depthwise`,
`pointwise2`, optional `residual`), an optional `feature_mix` convolution, and a `classifier`.
Weights are int8 OIHW with per-output-channel symmetric scales (`w_scales`), biases int32 in
units of x_scale * w_scale, activations int8 per-tensor asymmetric, layout NCHW.

The IR is NHWC like TFLite, so filters are transposed to OHWI (depthwise to 1HWC). Layers have
no separate activation: the int8 output range is the activation (a ReLU6 becomes an output scale
of 6/255 with zero point -128), so operators get Activation.NONE and clamp to [-128, 127].
Convolutions pad k // 2 on every side as PyTorch does, which differs from TFLite's SAME padding
for stride 2; the operators keep SAME (same output size) and record the explicit padding in
`TorchConvAttrs`, which the training lowering applies. Global average pooling becomes an
AVERAGE_POOL_2D over the whole feature map and the classifier a FULLY_CONNECTED layer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinycompile import ir
from tinycompile.errors import ModelFormatError, UnsupportedModelError

log = logging.getLogger(__name__)


@dataclass
class TorchConvAttrs(ir.DepthwiseConv2DAttrs):
    """Convolution attributes with the explicit padding before the first row and column."""

    pad_top: int = 0
    pad_left: int = 0


class _Builder:
    def __init__(self, name: str, source: str, arrays: Any):
        self.name = name
        self.source = source
        self.arrays = arrays
        self.tensors: list[ir.Tensor] = []
        self.operators: list[ir.Operator] = []

    def array(self, value: Any, where: str) -> np.ndarray:
        if not isinstance(value, dict) or "__array__" not in value:
            raise ModelFormatError(f"'{self.source}': {where} is not an array reference {{\"__array__\": KEY}}")
        key = value["__array__"]
        if key not in self.arrays:
            raise ModelFormatError(f"'{self.source}': array '{key}' of {where} is missing from the .npz file")
        return np.asarray(self.arrays[key])

    def tensor(self, name: str, shape: tuple[int, ...], dtype: ir.DType, scale, zero_point,
               data: np.ndarray | None = None, axis: int = 0) -> ir.Tensor:
        quant = None
        if scale is not None:
            quant = ir.Quantization(scale=np.atleast_1d(np.asarray(scale, np.float32)),
                                    zero_point=np.atleast_1d(np.asarray(zero_point, np.int64)), axis=axis)
        t = ir.Tensor(index=len(self.tensors), name=name, shape=tuple(int(d) for d in shape), dtype=dtype,
                      quant=quant, data=data)
        self.tensors.append(t)
        return t

    def op(self, op_type: str, inputs: list, outputs: list, attrs: Any) -> ir.Operator:
        op = ir.Operator(index=len(self.operators), op_type=op_type, inputs=inputs, outputs=outputs, attrs=attrs)
        self.operators.append(op)
        return op

    def conv(self, layer: dict, name: str, x: ir.Tensor) -> ir.Tensor:
        where = f"layer '{name}'"
        try:
            p = layer["params"]
            w = self.array(p["weight"], f"{where} weight").astype(np.int8)
            b = self.array(p["bias"], f"{where} bias").astype(np.int32)
            w_scales = self.array(p["w_scales"], f"{where} w_scales").astype(np.float32).reshape(-1)
            x_scale, x_zero = float(p["x_scale"]), int(p["x_zero"])
            y_scale, y_zero = float(p["y_scale"]), int(p["y_zero"])
            stride = int(layer.get("stride", 1))
            groups = int(layer.get("groups", 1))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"'{self.source}': {where} lacks a valid field ({exc})") from None
        if w.ndim != 4:
            raise ModelFormatError(f"'{self.source}': {where} weight has shape {list(w.shape)}, expected OIHW")
        out_c, in_per_group, kh, kw = w.shape
        n, in_h, in_w, in_c = x.shape
        if kh % 2 == 0 or kw % 2 == 0:
            raise UnsupportedModelError(f"'{self.source}': {where} has an even kernel {kh}x{kw}; only odd kernels are read")
        if x.quant is None or abs(float(x.quant.scalar_scale) - x_scale) > 1e-6 * x_scale \
                or int(x.quant.scalar_zero_point) != x_zero:
            log.debug("%s: x_scale %g differs from the producer's %g", where, x_scale,
                      float(x.quant.scalar_scale) if x.quant else float("nan"))
        depthwise = groups == in_c and in_per_group == 1 and groups > 1
        if not depthwise and groups != 1:
            raise UnsupportedModelError(f"'{self.source}': {where} is a grouped convolution with {groups} groups")
        if not depthwise and in_per_group != in_c:
            raise ModelFormatError(f"'{self.source}': {where} weight has {in_per_group} input channels, input has {in_c}")
        pad_h, pad_w = kh // 2, kw // 2
        out_h = (in_h + 2 * pad_h - kh) // stride + 1
        out_w = (in_w + 2 * pad_w - kw) // stride + 1
        y = self.tensor(name, (n, out_h, out_w, out_c), ir.DType.INT8, y_scale, y_zero)
        bias = self.tensor(f"{name}.bias", (out_c,), ir.DType.INT32, x_scale * w_scales,
                           np.zeros(out_c, np.int64), data=b.copy())
        attrs = TorchConvAttrs(stride_h=stride, stride_w=stride, padding=ir.Padding.SAME,
                               activation=ir.Activation.NONE, pad_top=pad_h, pad_left=pad_w,
                               depth_multiplier=1)
        if depthwise:
            filt = np.ascontiguousarray(w.transpose(1, 2, 3, 0))      # [C,1,kh,kw] -> [1,kh,kw,C]
            weight = self.tensor(f"{name}.weight", filt.shape, ir.DType.INT8, w_scales,
                                 np.zeros(out_c, np.int64), data=filt, axis=3)
            self.op("DEPTHWISE_CONV_2D", [x, weight, bias], [y], attrs)
        else:
            filt = np.ascontiguousarray(w.transpose(0, 2, 3, 1))      # OIHW -> OHWI
            weight = self.tensor(f"{name}.weight", filt.shape, ir.DType.INT8, w_scales,
                                 np.zeros(out_c, np.int64), data=filt, axis=0)
            self.op("CONV_2D", [x, weight, bias], [y], attrs)
        return y

    def add(self, residual: dict, name: str, shortcut: ir.Tensor, branch: ir.Tensor) -> ir.Tensor:
        try:
            p = residual["params"]
            y_scale, y_zero = float(p["y_scale"]), int(p["y_zero"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"'{self.source}': residual of '{name}' lacks a valid field ({exc})") from None
        y = self.tensor(name, branch.shape, ir.DType.INT8, y_scale, y_zero)
        self.op("ADD", [shortcut, branch], [y], ir.ActivationAttrs(activation=ir.Activation.NONE))
        return y


def load_mcunet(path: str | Path) -> ir.Graph:
    """Read a tiny-training int8 model (`.json` plus the `.npz` beside it) into a Graph."""
    path = Path(path)
    npz_path = path.with_suffix(".npz")
    if not path.is_file():
        raise ModelFormatError(f"model file '{path}' not found")
    if not npz_path.is_file():
        raise ModelFormatError(f"'{path}' needs its arrays in '{npz_path}', which is missing")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFormatError(f"'{path}' is not valid JSON ({exc})") from None
    if not isinstance(spec, dict) or "first_conv" not in spec or "blocks" not in spec or "classifier" not in spec:
        raise ModelFormatError(
            f"'{path}' is not a tiny-training model: it needs first_conv, blocks and classifier entries"
        )
    with np.load(npz_path, allow_pickle=False) as arrays:
        return _build_graph(spec, dict(arrays.items()), path)


def _build_graph(spec: dict, arrays: dict, path: Path) -> ir.Graph:
    b = _Builder(path.stem, str(path), arrays)
    first = spec["first_conv"]
    p = first["params"]
    size = int(first.get("in_shape", 128))
    in_c = int(first.get("in_channel", 3))
    x = b.tensor("input", (1, size, size, in_c), ir.DType.INT8, float(p["x_scale"]), int(p["x_zero"]))
    graph_input = x
    x = b.conv(first, "first_conv", x)
    for i, block in enumerate(spec["blocks"]):
        shortcut = x
        for part in ("pointwise1", "depthwise", "pointwise2"):
            if block.get(part) is not None:
                x = b.conv(block[part], f"blocks.{i}.{part}", x)
        if block.get("se") is not None:
            raise UnsupportedModelError(f"'{path}': block {i} has a squeeze-and-excitation module, which is not read")
        if block.get("residual") is not None:
            x = b.add(block["residual"], f"blocks.{i}.add", shortcut, x)
    if spec.get("feature_mix") is not None:
        x = b.conv(spec["feature_mix"], "feature_mix", x)

    n, h, w, c = x.shape
    pooled = b.tensor("global_pool", (n, 1, 1, c), ir.DType.INT8, x.quant.scale.copy(), x.quant.zero_point.copy())
    b.op("AVERAGE_POOL_2D", [x], [pooled], ir.Pool2DAttrs(filter_h=h, filter_w=w, stride_h=1, stride_w=1,
                                                           padding=ir.Padding.VALID))
    flat = b.tensor("global_pool.flat", (n, c), ir.DType.INT8, x.quant.scale.copy(), x.quant.zero_point.copy())
    b.op("RESHAPE", [pooled], [flat], ir.ReshapeAttrs(new_shape=(n, c)))

    cls = spec["classifier"]
    cp = cls["params"]
    w = b.array(cp["weight"], "classifier weight").astype(np.int8)
    w = w.reshape(w.shape[0], -1)
    if w.shape[1] != c:
        raise ModelFormatError(f"'{path}': classifier has {w.shape[1]} inputs, but the features have {c} channels")
    w_scales = b.array(cp["w_scales"], "classifier w_scales").astype(np.float32).reshape(-1)
    bias = b.array(cp["bias"], "classifier bias").astype(np.int32)
    out = w.shape[0]
    x_scale = float(cp["x_scale"])
    weight = b.tensor("classifier.weight", w.shape, ir.DType.INT8, w_scales, np.zeros(out, np.int64), data=w.copy())
    bias_t = b.tensor("classifier.bias", (out,), ir.DType.INT32, x_scale * w_scales, np.zeros(out, np.int64),
                      data=bias.copy())
    logits = b.tensor("logits", (n, out), ir.DType.INT8, float(cp["y_scale"]), int(cp["y_zero"]))
    b.op("FULLY_CONNECTED", [flat, weight, bias_t], [logits], ir.FullyConnectedAttrs())
    return ir.Graph(name=path.stem, tensors=b.tensors, operators=b.operators, inputs=[graph_input],
                    outputs=[logits], source_format="json")
