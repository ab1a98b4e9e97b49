"""Lower FULLY_CONNECTED with per-tensor or per-channel weights and keep_num_dims."""

from __future__ import annotations

from tinycompile import ir
from tinycompile.codegen.lowering import CStruct, Layer, LoweringOptions, register, require_constant, require_int8
from tinycompile.codegen.ops.common import bias_arg, check_activation, layer_symbol, requant_struct
from tinycompile.codegen.ops.specialize import specialize_layer
from tinycompile.errors import UnsupportedModelError


@register("FULLY_CONNECTED")
def lower_fully_connected(op: ir.Operator, options: LoweringOptions) -> Layer:
    a: ir.FullyConnectedAttrs = op.attrs
    check_activation(op, a.activation)
    x = require_int8(op, op.inputs[0], "input")
    w = require_int8(op, require_constant(op, op.inputs[1], "weights"), "weights")
    y = require_int8(op, op.outputs[0], "output")
    if len(w.shape) != 2:
        raise UnsupportedModelError(f"{op.describe()}: weights '{w.name}' must be 2-D [out, in], got {list(w.shape)}")
    out_features, in_features = w.shape
    if x.num_elements % in_features != 0:
        raise UnsupportedModelError(
            f"{op.describe()}: input '{x.name}' has {x.num_elements} elements, not a multiple of {in_features}"
        )
    batches = x.num_elements // in_features
    if y.num_elements != batches * out_features:
        raise UnsupportedModelError(
            f"{op.describe()}: output '{y.name}' has {y.num_elements} elements, expected {batches * out_features}"
        )
    bias = bias_arg(op, op.inputs[2] if len(op.inputs) > 2 else None, out_features)
    params = CStruct("tc_fc_params", {
        "batches": batches,
        "in_features": in_features,
        "out_features": out_features,
        "q": requant_struct(op, layer_symbol(op), x, w, y, out_features, a.activation, options),
    })
    layer = Layer(op, "tc_fully_connected_s8", [params, x, w, bias, y],
                  sources=("tc_fully_connected_s8.c",), macs=batches * in_features * out_features)
    return specialize_layer(layer, options)
