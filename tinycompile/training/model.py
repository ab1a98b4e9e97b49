"""Bind a training configuration to a model: loss input, classifier head and the updated slices.

The loss is the softmax cross-entropy of the int8 logits, so a trailing SOFTMAX is dropped and
its input becomes the logits. The layer that produces the logits must be a FULLY_CONNECTED
classifier; it is always trained in full, and a configured head replaces it with a new one
for `num_classes` classes. The other trainable layers (CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED, in execution order, numbered from 0) get a bias update when they are among the
last k, and a weight update of a fraction of the input channels (channels of a depthwise layer)
when listed. Channels are chosen by the largest L2 norm of their real-valued weights (the
"magnitude+" criterion of the tiny-training code) or, with channel_selection "first", as the
first ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tinycompile import ir
from tinycompile.errors import TinyCompileError, UnsupportedModelError
from tinycompile.training.config import TrainingConfig

log = logging.getLogger(__name__)

TRAINABLE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(eq=False)
class TrainableLayer:
    """A layer with parameters and which of them a training step updates."""

    index: int                        # position among trainable layers; the head is last
    op: ir.Operator
    is_head: bool
    update_bias: bool
    channels: np.ndarray | None       # selected indices along the weight's last axis, or None: frozen

    @property
    def weight(self) -> ir.Tensor:
        return self.op.inputs[1]

    @property
    def bias(self) -> ir.Tensor | None:
        return self.op.inputs[2] if len(self.op.inputs) > 2 else None

    @property
    def updates_weights(self) -> bool:
        return self.channels is not None and self.channels.size > 0

    @property
    def trained(self) -> bool:
        return self.update_bias or self.updates_weights

    @property
    def label(self) -> str:
        return f"layer {self.index} ({self.op.op_type} '{self.op.short_name}')"


@dataclass(eq=False)
class TrainingGraph:
    """The forward graph up to the logits, with its trainable layers bound to a configuration."""

    graph: ir.Graph
    logits: ir.Tensor
    layers: list[TrainableLayer]
    config: TrainingConfig

    @property
    def head(self) -> TrainableLayer:
        return self.layers[-1]

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[-1])

    def layer_of(self, op: ir.Operator) -> TrainableLayer | None:
        for layer in self.layers:
            if layer.op is op:
                return layer
        return None


def bind_config(graph: ir.Graph, config: TrainingConfig) -> TrainingGraph:
    """Cut `graph` at the logits, attach the configured head and mark the updated parameters."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise UnsupportedModelError(
            f"model '{graph.name}' has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
            "training needs one input and one classifier output"
        )
    x = graph.inputs[0]
    if x.dtype != ir.DType.INT8:
        raise UnsupportedModelError(
            f"model input '{x.name}' is {x.dtype.value}; training needs an int8 input (convert with int8 I/O)"
        )
    logits = _find_logits(graph)
    producers = graph.producers()
    head_op = producers.get(id(logits))
    if head_op is None or head_op.op_type != "FULLY_CONNECTED":
        found = head_op.describe() if head_op is not None else "a graph input"
        raise UnsupportedModelError(
            f"the logits '{logits.name}' come from {found}; training needs a FULLY_CONNECTED classifier "
            "as the last layer before the loss"
        )
    operators = graph.operators[: graph.operators.index(head_op) + 1]
    if config.head is not None:
        head_op = _replace_head(graph, head_op, config)
        operators[-1] = head_op
        logits = head_op.outputs[0]
    cut = ir.Graph(name=graph.name, tensors=graph.tensors, operators=operators, inputs=list(graph.inputs),
                   outputs=[logits], source_format=graph.source_format)

    body = [op for op in operators[:-1] if op.op_type in TRAINABLE_OPS]
    layers = [TrainableLayer(i, op, False, False, None) for i, op in enumerate(body)]
    layers.append(TrainableLayer(len(body), head_op, True, True, None))
    _select_biases(layers, config)
    _select_weights(layers, config)
    head = layers[-1]
    head.channels = np.arange(head.weight.shape[-1], dtype=np.int32)
    for layer in layers:
        if layer.update_bias and layer.bias is None:
            _add_zero_bias(cut, layer)
    log.info("training %d of %d layers (%d with weight updates)", sum(l.trained for l in layers), len(layers),
             sum(l.updates_weights for l in layers))
    return TrainingGraph(cut, logits, layers, config)


def _add_zero_bias(graph: ir.Graph, layer: TrainableLayer) -> None:
    """Give a layer without a bias (converters drop all-zero ones) a zero int32 bias to train."""
    old = layer.op
    channels = int(old.outputs[0].shape[-1])
    s_x = float(old.inputs[0].quant.scalar_scale)
    s_w = np.asarray(old.inputs[1].quant.scale, np.float64)
    s_w = np.full(channels, s_w[0]) if s_w.size == 1 else s_w
    bias = ir.Tensor(len(graph.tensors), f"{old.short_name}.bias", (channels,), ir.DType.INT32,
                     ir.Quantization((s_x * s_w).astype(np.float32), np.zeros(channels, np.int64), 0),
                     np.zeros(channels, np.int32))
    graph.tensors.append(bias)
    op = ir.Operator(old.index, old.op_type, [old.inputs[0], old.inputs[1], bias], list(old.outputs), old.attrs,
                     old.version)
    graph.operators[graph.operators.index(old)] = op
    layer.op = op


def _find_logits(graph: ir.Graph) -> ir.Tensor:
    out = graph.outputs[0]
    producers = graph.producers()
    op = producers.get(id(out))
    if op is not None and op.op_type == "SOFTMAX":
        return op.inputs[0]
    if out.dtype != ir.DType.INT8:
        raise UnsupportedModelError(
            f"model output '{out.name}' is {out.dtype.value}; training needs int8 logits (convert with int8 I/O)"
        )
    return out


def _replace_head(graph: ir.Graph, old: ir.Operator, config: TrainingConfig) -> ir.Operator:
    """Return a FULLY_CONNECTED operator with a new weight, bias and output for the new classes."""
    head = config.head
    x = old.inputs[0]
    old_w = old.inputs[1]
    old_y = old.outputs[0]
    in_features = int(old_w.shape[-1])
    n = head.num_classes
    scale = head.weight_scale if head.weight_scale is not None else float(np.mean(old_w.quant.scale))
    rng = np.random.default_rng(config.seed)
    if head.init == "random":
        # Uniform initialization with bound 1 / sqrt(in_features), as common frameworks use for Dense.
        bound = 1.0 / np.sqrt(in_features)
        data = np.clip(np.round(rng.uniform(-bound, bound, (n, in_features)) / scale), -127, 127).astype(np.int8)
    else:
        data = np.zeros((n, in_features), np.int8)
    base = len(graph.tensors)
    w_scales = np.full(n, scale, np.float32)
    weight = ir.Tensor(base, "head.weight", (n, in_features), ir.DType.INT8,
                       ir.Quantization(w_scales, np.zeros(n, np.int64), 0), data)
    bias = ir.Tensor(base + 1, "head.bias", (n,), ir.DType.INT32,
                     ir.Quantization((x.quant.scalar_scale * w_scales).astype(np.float32), np.zeros(n, np.int64), 0),
                     np.zeros(n, np.int32))
    batch = int(np.prod(old_y.shape[:-1])) if len(old_y.shape) > 1 else 1
    y = ir.Tensor(base + 2, "head.logits", (batch, n), ir.DType.INT8,
                  ir.Quantization(old_y.quant.scale.copy(), old_y.quant.zero_point.copy(), 0))
    graph.tensors.extend([weight, bias, y])
    return ir.Operator(old.index, "FULLY_CONNECTED", [x, weight, bias], [y], ir.FullyConnectedAttrs(), old.version)


def _select_biases(layers: list[TrainableLayer], config: TrainingConfig) -> None:
    body = layers[:-1]
    k = len(body) if config.bias_last_k is None else config.bias_last_k
    if k > len(body):
        raise TinyCompileError(
            f"training config '{config.source}': bias_update.last_k {k} exceeds the model's {len(body)} "
            f"trainable layers (0-{len(body) - 1}, classifier excluded); use at most {len(body)} or 'all'"
        )
    for layer in body[len(body) - k:]:
        layer.update_bias = True


def _select_weights(layers: list[TrainableLayer], config: TrainingConfig) -> None:
    body = layers[:-1]
    by_name = {layer.op.name: layer for layer in body}
    for i, update in enumerate(config.weight_updates):
        where = f"training config '{config.source}': weight_update[{i}].layer"
        if isinstance(update.layer, int):
            if update.layer >= len(body):
                raise TinyCompileError(
                    f"{where} {update.layer} does not exist; the model has {len(body)} trainable layers "
                    f"(0-{len(body) - 1}, classifier excluded)"
                )
            layer = body[update.layer]
        else:
            layer = by_name.get(update.layer)
            if layer is None:
                raise TinyCompileError(
                    f"{where} '{update.layer}' names no trainable layer; use a layer index 0-{len(body) - 1} "
                    "or the output tensor name of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED layer"
                )
        if update.ratio == 0.0:
            continue   # a ratio of 0 keeps the weights frozen: only the bias may be updated
        w = layer.weight
        if layer.op.op_type == "CONV_2D" and layer.op.inputs[0].shape[-1] != w.shape[-1]:
            raise UnsupportedModelError(
                f"{where}: {layer.label} is a grouped convolution; weight updates of grouped convolutions "
                "are not supported"
            )
        columns = int(w.shape[-1])
        count = int(columns * update.ratio)
        if count == 0:
            raise TinyCompileError(
                f"{where}: ratio {update.ratio} of {columns} channels of {layer.label} selects no channel; "
                f"use at least {1 / columns:.4g} or 0 for a bias-only update"
            )
        layer.channels = _choose_channels(layer, count, config.channel_selection)


def _choose_channels(layer: TrainableLayer, count: int, selection: str) -> np.ndarray:
    w = layer.weight
    columns = int(w.shape[-1])
    if selection == "first":
        return np.arange(count, dtype=np.int32)
    real = w.data.astype(np.float64)
    scales = np.asarray(w.quant.scale, np.float64)
    axis = w.quant.axis if scales.size > 1 else None
    if axis is not None:
        shape = [1] * real.ndim
        shape[axis] = scales.size
        real = real * scales.reshape(shape)
    else:
        real = real * scales[0]
    norms = np.sqrt((real.reshape(-1, columns) ** 2).sum(axis=0))
    # Largest norm first; a stable sort keeps the lower index on ties.
    order = np.argsort(-norms, kind="stable")[:count]
    return np.sort(order).astype(np.int32)
