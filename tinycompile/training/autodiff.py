"""Derive and prune the backward graph of a training step at compile time.

A tensor needs a gradient when it depends on an updated parameter: its producer updates a bias
or weights, or reads a tensor that needs a gradient. Only operators whose output needs a gradient
get a backward pass, so differentiation runs from the loss back to the earliest updated layer and
no further. Within an operator, an input gradient is computed only for inputs that need one,
a weight gradient only for layers with a weight update, and only for the selected channels.

The analysis also decides what the forward pass must keep for the backward pass: a layer's int8
output when a clamp (fused or the int8 range) masks its gradient, the input of a MAX_POOL_2D for
the argmax, and for a weight update the layer's input, either whole (all channels updated) or as
a compact copy of the selected channels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinycompile import ir
from tinycompile.errors import UnsupportedModelError
from tinycompile.training.model import TrainableLayer, TrainingGraph

PARAMETER_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
ALIAS_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
BACKWARD_OPS = (*PARAMETER_OPS, "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", *ALIAS_OPS)


@dataclass(eq=False)
class BackwardOp:
    """The backward pass of one operator."""

    op: ir.Operator
    layer: TrainableLayer | None        # set for conv, depthwise and FC layers
    grad_inputs: list[int]              # input positions that need a gradient
    mask_output: bool                   # the output's clamp masks the gradient (needs the saved output)
    save_input_slice: bool = False      # the weight update reads a compact copy of the selected channels

    @property
    def weight_update(self) -> bool:
        return self.layer is not None and self.layer.updates_weights

    @property
    def bias_update(self) -> bool:
        return self.layer is not None and self.layer.update_bias


@dataclass
class BackwardGraph:
    """The pruned backward graph: operators in reverse execution order."""

    ops: list[BackwardOp] = field(default_factory=list)
    requires_grad: set[int] = field(default_factory=set)     # id() of tensors that need a gradient

    def needs_grad(self, tensor: ir.Tensor | None) -> bool:
        return tensor is not None and id(tensor) in self.requires_grad


def derive_backward(tg: TrainingGraph) -> BackwardGraph:
    """Return the backward graph of `tg`, raising UnsupportedModelError for an op without a rule."""
    graph = tg.graph
    requires: set[int] = set()
    # The first updated layer upstream of each tensor, for error messages.
    origin: dict[int, TrainableLayer] = {}
    for op in graph.operators:
        layer = tg.layer_of(op)
        source = layer if layer is not None and layer.trained else None
        if source is None:
            for t in op.inputs:
                if t is not None and id(t) in requires:
                    source = origin[id(t)]
                    break
        if source is not None:
            for t in op.outputs:
                requires.add(id(t))
                origin[id(t)] = source

    result = BackwardGraph(requires_grad=requires)
    for op in reversed(graph.operators):
        if id(op.outputs[0]) not in requires:
            continue
        if op.op_type not in BACKWARD_OPS:
            source = origin[id(op.outputs[0])]
            raise UnsupportedModelError(
                f"{op.describe()} lies on the backward path from the loss to {source.label}, and {op.op_type} "
                f"has no backward rule (supported: {', '.join(BACKWARD_OPS)}); update only layers after it"
            )
        layer = tg.layer_of(op)
        grad_inputs = [i for i, t in enumerate(op.inputs)
                       if t is not None and not t.is_constant and id(t) in requires]
        _check_backward(op, grad_inputs)
        mask = op.op_type in (*PARAMETER_OPS, "ADD") or (
            op.op_type in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and op.attrs.activation != ir.Activation.NONE
        )
        bop = BackwardOp(op=op, layer=layer, grad_inputs=grad_inputs, mask_output=mask)
        if bop.weight_update:
            bop.save_input_slice = layer.channels.size < int(layer.weight.shape[-1])
        result.ops.append(bop)
    return result


def _check_backward(op: ir.Operator, grad_inputs: list[int]) -> None:
    if op.op_type == "ADD" and grad_inputs:
        a, b = op.inputs[0], op.inputs[1]
        if tuple(a.shape) != tuple(b.shape):
            raise UnsupportedModelError(
                f"{op.describe()} broadcasts {list(a.shape)} with {list(b.shape)}; the ADD backward rule needs "
                "inputs of one shape"
            )
