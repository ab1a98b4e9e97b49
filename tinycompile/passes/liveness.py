"""Turn lowered layers into planner buffers: one buffer per activation or alias group, plus scratch.

Step k is the k-th layer. A tensor is alive from the step that writes it (step 0 for graph inputs)
to the last step that reads it; graph outputs stay alive one step past the last layer so that
nothing overwrites them before the caller reads them. Tensors that alias each other (a RESHAPE's
output is its input) share one buffer whose lifetime covers all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinycompile import ir
from tinycompile.codegen.lowering import Layer
from tinycompile.planning.base import Buffer


@dataclass
class BufferMap:
    """The planner's buffers and how tensors and scratch map onto them."""

    buffers: list[Buffer]
    tensor_buffer: dict[int, int]                 # id(tensor) -> buffer id
    scratch_buffer: dict[int, int]                # id(Scratch) -> buffer id
    members: dict[int, list[ir.Tensor]] = field(default_factory=dict)  # buffer id -> tensors in it


def build_buffers(graph: ir.Graph, layers: list[Layer]) -> BufferMap:
    # Union-find over aliased tensors.
    parent: dict[int, ir.Tensor] = {}

    def root(t: ir.Tensor) -> ir.Tensor:
        while id(parent.get(id(t), t)) != id(t):
            t = parent[id(t)]
        return t

    for layer in layers:
        if layer.alias_of is not None:
            out = layer.op.outputs[0]
            parent[id(root(out))] = root(layer.alias_of)

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    group: dict[int, ir.Tensor] = {}

    def touch(t: ir.Tensor, step: int) -> None:
        r = root(t)
        group[id(r)] = r
        first[id(r)] = min(first.get(id(r), step), step)
        last[id(r)] = max(last.get(id(r), step), step)

    for t in graph.inputs:
        touch(t, 0)
    for step, layer in enumerate(layers):
        for t in layer.op.inputs:
            if t is not None and not t.is_constant:
                touch(t, step)
        for t in layer.op.outputs:
            touch(t, step)
    end = len(layers)
    for t in graph.outputs:
        touch(t, end)

    buffers: list[Buffer] = []
    tensor_buffer: dict[int, int] = {}
    members: dict[int, list[ir.Tensor]] = {}
    root_buffer: dict[int, int] = {}
    activations = graph.activations()
    group_size: dict[int, int] = {}
    for t in activations:
        r = root(t)
        group_size[id(r)] = max(group_size.get(id(r), 0), t.nbytes)
    for t in activations:
        r = root(t)
        if id(r) not in root_buffer:
            size = group_size[id(r)]
            bid = len(buffers)
            root_buffer[id(r)] = bid
            buffers.append(Buffer(id=bid, name=r.name, size=max(size, 1), first=first[id(r)], last=last[id(r)]))
            members[bid] = []
        bid = root_buffer[id(r)]
        tensor_buffer[id(t)] = bid
        members[bid].append(t)

    scratch_buffer: dict[int, int] = {}
    for step, layer in enumerate(layers):
        for s in layer.scratch:
            if s.nbytes <= 0:
                continue
            bid = len(buffers)
            buffers.append(Buffer(id=bid, name=f"scratch of layer {layer.op.index} ({layer.op.op_type})",
                                  size=s.nbytes, first=step, last=step))
            scratch_buffer[id(s)] = bid
    return BufferMap(buffers, tensor_buffer, scratch_buffer, members)
